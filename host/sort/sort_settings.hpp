#pragma once
// Sorting settings in physical units, and the calibration-independent part of the L1 sorting parameters.
#include "backend/backend.hpp"
#include "probe/probe.hpp"

#include <memory>

#include <nlohmann/json.hpp>

namespace spikeline::sort {

/// What a user tunes. Defaults suit extracellular recordings at 20-40 kHz in general.
struct SortSettings {
    double pre_ms = 0.5;            ///< snippet before the aligned peak
    double post_ms = 1.0;           ///< snippet after it
    double calibration_s = 30.0;    ///< data the host learns the units from
    double recalibrate_every_s = 0; ///< 0: calibrate once
    int min_cluster_spikes = 10;    ///< smaller clusters of a calibration window stay unsorted
    double split_dip = 0.8;         ///< a cluster splits when its valley density is below this share of its peaks
    double merge_candidate_distance =
        0; ///< ... or below this one when their spikes form one cloud (0: off; 0.2 helps under drift)
    double merge_distance = 0.08;   ///< clusters on neighbouring channels merge below this normalised template distance
    double id_match_distance = 0.3; ///< on recalibration a unit keeps the id of the closest previous unit below this
    double gate_scale = 3.0; ///< an entry accepts spikes up to gate_scale x its members' 95th-percentile distance
    std::size_t max_calibration_spikes = 200000; ///< snippets kept for one calibration (memory bound)
    bool motion = true;        ///< estimate the probe's motion and move the units with it (off: fixed preparations)
    bool keep_learning = true; ///< calibrate again at 2, 4, 8... x calibration_s on all spikes so far (same basis)
    bool relearn_all = false;  ///< learning re-clusters every spike; off: only the unsorted ones, adding units
    /// Learning splits a unit whose spikes on a channel form several clusters; a part whose mean snippet is at least
    /// this normalised template distance from the largest part's becomes a new unit (0: never).
    double split_off_distance = 0.15;
    /// Under motion tracking, a spike seen at least this far (um) from displacement 0 is clustered as seen at 0 (its
    /// snippet kriged onto the contacts it would have peaked on); negative: never.
    double register_from_um = 5.0;
    /// Bursts: entries on one channel or neighbouring ones whose mean snippets have one shape (shape_distance at most
    /// burst_shape_distance) form one unit when, beyond chance, at least this share of the smaller one's spikes come
    /// 1-25 ms after one of the larger's (and at most half as many the other way): the attenuated later spikes of a
    /// bursting neuron (0: off).
    double burst_follow_share = 0.3;
    double burst_shape_distance = 0.05;
    /// Under motion tracking: entries on one channel or neighbouring ones whose spikes were recorded at displacements
    /// apart (means at least 5 um apart, each with at most a tenth of its spikes inside the other's 10th-90th
    /// percentile of displacement) form one unit below this normalised template distance: one neuron seen at two
    /// positions of the probe (a step, a ramp, an oscillation), whose waveform changes across contacts more than the
    /// kriging follows (0: off).
    double moved_merge_distance = 0.25;
    double sample_rate = 0; ///< Hz of the recording, set by the commands (0: unknown, bursts are not looked for)
    int threads = 1;        ///< threads that cluster the channels of a calibration (the result does not depend on it)
};

/// Snippet geometry for a probe: every channel's snippet rows are itself and its nearest contacts on its shank.
/// Checks that the snippet fits the L1 ring given the detection latency. Throws InputError on bad settings.
std::shared_ptr<HwSortParams> make_sort_params(const SortSettings& settings, const probe::Probe& probe,
                                               double sample_rate, const HwParams& detect);

nlohmann::json to_json(const SortSettings& settings);

} // namespace spikeline::sort
