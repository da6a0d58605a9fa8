#pragma once
// Offline units as the online sorter (`sort --units-from`, `stream --units-from`): the units of a Kilosort (2.5/3/4) or
// Phy folder, or of a spikeline sort folder, read onto the run's channels and turned into the classifier the L1 stage
// runs, so that online labels keep the offline cluster ids. What is read and required: docs/FORMATS.md.
#include "backend/backend.hpp"
#include "io/recording.hpp"
#include "probe/probe.hpp"
#include "sort/calibration.hpp"
#include "sort/sort_settings.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spikeline::sort {

/// One unit of an offline folder, on the run's channels.
struct OfflineUnit {
    int cluster_id = 0; ///< the folder's cluster id
    /// The online label: the cluster id; in a spikeline folder (whose cluster 0 holds the unsorted spikes and unit u
    /// is cluster u + 1) the unit id, cluster id - 1, so that the Phy folder written online shows the same clusters.
    int unit_id = 0;
    std::string group;    ///< curation label (good, mua, ...); empty when the folder has none
    int peak_channel = 0; ///< run channel of the template's largest |value|
    int trough = 0;       ///< template sample of that value
    /// Template rows on the run's channels (Q4 input LSB, the backend's scale), for channels above 2 % of the peak.
    std::map<int, std::vector<double>> waveform;
    std::vector<std::uint64_t> spike_times; ///< the folder's spikes of this unit (samples), ascending
};

struct OfflineUnits {
    std::filesystem::path folder;
    std::string layout;         ///< "spikeline" (a spikeline sort or stream folder) or "kilosort" (Kilosort / Phy)
    std::string labels_file;    ///< the curation file the units were chosen by; empty: none, every cluster
    std::size_t n_clusters = 0; ///< clusters with spikes in the folder, before the selection
    int template_samples = 0;
    std::vector<OfflineUnit> units;
};

struct UnitsFromOptions {
    bool all_units = false; ///< every cluster not labelled noise (default: the good ones)
};

/// Reads the folder's templates (dense, or sparse with templates_ind.npy / template_ind.npy; unwhitened with
/// whitening_mat_inv.npy when present), spike_times / spike_templates / spike_clusters / amplitudes, curation labels
/// (cluster_group.tsv, else cluster_KSLabel.tsv), channel_map.npy, channel_positions.npy and params.py, and maps them
/// onto the run's channels. Throws InputError naming the file and the problem: a missing or malformed file, a
/// channel count, sample rate or channel geometry that is not this recording's and probe's (naming both), no unit
/// selected.
OfflineUnits read_offline_units(const std::filesystem::path& folder, const io::RecordingInfo& info,
                                const probe::Probe& probe, const UnitsFromOptions& options);

/// How calibrate_from_units built the sorter.
struct UnitsFromReport {
    bool spike_times_used = false;  ///< the folder's spike times lined up with this recording's detections
    double spike_time_offset = 0;   ///< the most common (detected - folder) spike time, samples
    std::size_t matched_spikes = 0; ///< window spikes labelled with a folder unit through its spike times
    int units_from_spikes = 0;      ///< units with an entry learnt from their matched spikes
    int units_from_templates = 0;   ///< units whose entries come from their template alone
    int units_dropped = 0;          ///< units left without an entry (their channels' tables were full)
    nlohmann::json to_json() const;
};

/// Builds the sorter from offline units on a calibration window (the run's first seconds, sorted with `base`'s geometry
/// and no entries, with snippets): the basis and noise are learnt from the window as calibrate does; when the folder's
/// spike times line up with the window's detections (the same recording), each window spike takes the label of the
/// folder spike at its time, and every (unit, peak channel) with at least min_cluster_spikes spikes becomes an entry
/// (mean features, gate from its members' distances); a unit without one gets entries from its template (template
/// waveform -> features, refined on the window's spikes near it). Every unit is also registered on the nearest
/// contacts of its peak channel, as calibrate does. Unit ids are OfflineUnit::unit_id. Throws InputError when the
/// window holds no spikes or no unit could be registered.
Calibration calibrate_from_units(const HwSortParams& base, const SortOutput& window, const OfflineUnits& units,
                                 const SortSettings& settings, const CalibrationMotion* motion = nullptr,
                                 UnitsFromReport* report = nullptr);

} // namespace spikeline::sort
