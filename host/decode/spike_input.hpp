#pragma once
// Spike trains and kinematics as the decoders read them from disk.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace spikeline::decode {

/// What labels a spike: a sorted cluster (Phy folder), a ground-truth unit (simulator) or the channel of a
/// threshold crossing (`spikeline detect` output, the no-sorting baseline).
enum class UnitSource { clusters, units, channels };

const char* to_string(UnitSource source);
/// "clusters", "units" or "channels"; throws InputError otherwise.
UnitSource parse_unit_source(const std::string& text);

/// Spikes of one recording with a label per spike and the full list of labels a decoder sees as its inputs.
struct SpikeTrains {
    UnitSource source = UnitSource::units;
    double sample_rate = 30000.0;
    std::vector<std::uint64_t> times;   ///< samples from the start of the recording
    std::vector<std::int32_t> labels;   ///< unit, cluster or channel of each spike
    std::vector<std::int32_t> unit_ids; ///< ascending; every label is one of them (silent units included if known)
    /// Length of the recording the spikes come from, from the folder's metadata (n_frames over its sample rate in
    /// info.json, detect_info.json or spikeline_sort.json); unknown for folders without it.
    std::optional<double> recording_s;
    std::string recording_s_origin; ///< the file recording_s was read from, for messages
};

/// Reads a spike folder, recognised by its files (first match unless `source` says which):
/// spike_clusters.npy (Phy: clusters; sample rate from params.py), spike_units.npy (simulator ground truth: units;
/// ids from units.tsv, rate from info.json), spike_channels.npy (`detect`: channels 0..n_channels-1 from
/// detect_info.json). spike_times.npy (uint64) is always required. `sample_rate`, when given, overrides the
/// folder's; without either the rate is 30000 Hz. Throws InputError naming the file and what to do.
SpikeTrains read_spike_folder(const std::filesystem::path& dir, std::optional<UnitSource> source = std::nullopt,
                              std::optional<double> sample_rate = std::nullopt);

/// Cursor kinematics: one row per sample of time (s, strictly increasing), position and velocity.
struct Kinematics {
    std::vector<double> time_s, x, y, vx, vy;
    std::size_t size() const { return time_s.size(); }
};

/// Reads a float64 .npy of shape (n, 5) with columns time, x, y, vx, vy (as `simulate --behavior` writes).
Kinematics read_kinematics(const std::filesystem::path& path);

} // namespace spikeline::decode
