#pragma once
// Scoring against ground truth with the SpikeForest / SpikeInterface conventions.
#include "probe/probe.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spikeline::eval {

/// What a folder's metadata says about the recording its spikes come from (info.json, detect_info.json or
/// spikeline_sort.json); 0 when not stated.
struct RecordingShape {
    int n_channels = 0;
    double sample_rate = 0;
    std::string origin; ///< the metadata file, for messages
};

/// The simulator's drift (ground_truth/motion_*.npy, docs/FORMATS.md §2.6): the displacement of the units relative to
/// the probe along its y axis, on a grid of times and depths.
struct GroundTruthMotion {
    std::vector<double> times_s;   ///< T, increasing
    std::vector<double> depths_um; ///< D, increasing
    std::vector<double> um;        ///< T x D, row-major
    /// The displacement (um) at a time and depth: linear between grid points, held beyond the grid.
    double at(double time_s, double depth_um) const;
};

struct GroundTruth {
    double sample_rate = 0;
    std::vector<std::uint64_t> spike_times; ///< sorted
    std::vector<std::int32_t> spike_units;
    struct Unit {
        int id = 0;
        int peak_channel = 0;
        double snr = 0;
        double rate_hz = 0;
        std::uint64_t n_spikes = 0;
    };
    std::vector<Unit> units;
    RecordingShape recording;
    std::optional<GroundTruthMotion> motion; ///< with a drift model
};

/// Reads DIR/spike_times.npy, spike_units.npy, units.tsv and info.json (sample_rate), and with read_motion the drift
/// files when the folder has them (all three or none); clear InputError otherwise.
GroundTruth read_ground_truth(const std::filesystem::path& dir, bool read_motion = true);

struct DetectedSpikes {
    std::vector<std::uint64_t> times;
    std::vector<std::int32_t> channels;
    RecordingShape recording; ///< from detect_info.json
};

/// Reads DIR/spike_times.npy and spike_channels.npy (same length).
DetectedSpikes read_detected(const std::filesystem::path& dir);

struct DetectionCompareOptions {
    double window_ms = 0.4;  ///< +- match window
    double radius_um = 50.0; ///< event channel within this distance of the unit's peak channel
    /// With the ground truth's drift: the radius is around where the unit was at the spike (its peak contact moved by
    /// the displacement at that time and depth), not around its nominal peak contact.
    bool follow_motion = true;
};

struct SnrBinScore {
    std::string label; ///< "3-5", "5-8", "8-12", "12+"
    double snr_low = 0, snr_high = 0;
    int n_units = 0;
    std::uint64_t n_spikes = 0;
    std::uint64_t n_found = 0;
    double recall = 0;           ///< n_found / n_spikes (pooled)
    double mean_unit_recall = 0; ///< mean over the bin's units
};

/// The score of one ground-truth unit.
struct UnitScore {
    int unit_id = 0;
    int peak_channel = 0;
    double snr = 0;
    std::uint64_t n_spikes = 0; ///< counted in spike_units (not taken from units.tsv)
    std::uint64_t n_found = 0;
    double recall = 0; ///< n_found / n_spikes (NaN when the unit has no spikes)
};

/// Ratios whose denominator is zero (no events, no spikes in a bin, ...) are NaN, written as null in JSON.
struct DetectionScore {
    std::uint64_t window_samples = 0; ///< the +- match window actually used
    double radius_um = 0;
    bool followed_motion = false; ///< the radius followed the ground truth's drift
    std::uint64_t n_ground_truth = 0;
    std::uint64_t n_detected = 0;
    std::uint64_t n_matched = 0;
    double precision = 0;             ///< matched events / events
    double recall = 0;                ///< matched GT spikes / GT spikes
    double recall_snr_at_least_5 = 0; ///< pooled over units with SNR >= 5
    std::vector<SnrBinScore> bins;    ///< 3-5, 5-8, 8-12, 12+ (units below 3 only count in the totals)
    std::vector<double> unit_recall;  ///< per ground-truth unit, same order as GroundTruth::units
    std::vector<UnitScore> units;     ///< per ground-truth unit, same order as GroundTruth::units
};

/// One-to-one greedy matching in ground-truth time order: a GT spike is found by the not yet matched event
/// closest in time within +-window on a channel within radius of the unit's peak channel.
///  - window = round(window_ms * sample_rate / 1000) samples, inclusive: |t_event - t_gt| <= window.
///  - radius inclusive: probe.distance_um(peak_channel, event_channel) <= radius_um; with truth.motion and
///    options.follow_motion, from the peak contact moved along y by the displacement at the spike's time instead (a
///    unit that drifted 20 um matches the channels around where it was; the nominal radius would cut its events).
///  - ties in time distance go to the earlier event, then to the event that comes first in `detected`.
///  - GT spikes with equal times are processed in their order in `truth`; events need not be sorted.
///  - cost: O(E log E) only when the events are unsorted, plus one sweep with per-spike work proportional
///    to the number of events inside the window.
/// Bins: "3-5" [3,5), "5-8" [5,8), "8-12" [8,12), "12+" [12,inf); units with SNR < 3 only count in the totals.
/// Throws InputError when a unit's peak channel or an event's channel is outside the probe, a spike's unit is
/// not in truth.units, array lengths differ, or the options are negative or not finite.
DetectionScore compare_detection(const GroundTruth& truth, const DetectedSpikes& detected, const probe::Probe& probe,
                                 const DetectionCompareOptions& options = {});

nlohmann::json to_json(const DetectionScore& score);
/// A one-screen table of the score.
std::string format_report(const DetectionScore& score);

// ---------------------------------------------------------------------------------------------------------------
// Sorted output (SpikeForest conventions)

struct SortedSpikes {
    std::vector<std::uint64_t> times;
    std::vector<std::int32_t> clusters;
    std::vector<std::int32_t> excluded; ///< clusters labelled "noise" in cluster_group.tsv: not units
    RecordingShape recording;           ///< from spikeline_sort.json
};

/// Whether DIR holds sorted output (spike_clusters.npy) rather than detections only.
bool is_sorted_output(const std::filesystem::path& dir);

/// Reads a Phy folder: spike_times.npy, spike_clusters.npy and, when present, cluster_group.tsv.
SortedSpikes read_sorted(const std::filesystem::path& dir);

struct SortingCompareOptions {
    double window_ms = 0.4;     ///< +- match window
    double well_detected = 0.8; ///< accuracy of a well-detected unit
    double agreement = 0.2;     ///< accuracy above which a sorted unit counts as (partly) matching a GT unit
};

struct GroundTruthUnitScore {
    int unit_id = 0;
    int peak_channel = 0;
    double snr = 0;
    std::uint64_t n_spikes = 0;
    int best_cluster = -1; ///< sorted cluster of highest accuracy (-1: none shares a spike)
    std::uint64_t n_cluster_spikes = 0;
    std::uint64_t n_matched = 0;
    double accuracy = 0;  ///< n_matched / (n_spikes + n_cluster_spikes - n_matched)
    double recall = 0;    ///< n_matched / n_spikes
    double precision = 0; ///< n_matched / n_cluster_spikes
};

struct SortingBinScore {
    std::string label;
    double snr_low = 0, snr_high = 0;
    int n_units = 0;
    int n_well_detected = 0;
    double mean_accuracy = 0, mean_recall = 0, mean_precision = 0;
};

struct SortingScore {
    std::uint64_t window_samples = 0;
    std::vector<GroundTruthUnitScore> units; ///< GroundTruth::units order
    std::vector<SortingBinScore> bins;       ///< 3-5, 5-8, 8-12, 12+, then "SNR>8" and "all"
    int n_sorted_units = 0;
    int n_false_positive = 0; ///< sorted units agreeing with no GT unit (accuracy < agreement for all)
    int n_redundant = 0;      ///< sorted units agreeing with a GT unit whose best match is another unit
    int n_overmerged = 0;     ///< sorted units agreeing with two or more GT units
};

/// Agreement between every GT unit and every sorted cluster: a GT spike and a sorted spike match when within
/// +-window (each GT spike counts at most once per cluster); accuracy = n_match / (n_gt + n_sorted - n_match);
/// each GT unit is scored against its most accurate cluster. Clusters in sorted.excluded are left out.
SortingScore compare_sorting(const GroundTruth& truth, const SortedSpikes& sorted,
                             const SortingCompareOptions& options = {});

nlohmann::json to_json(const SortingScore& score);
std::string format_report(const SortingScore& score);

} // namespace spikeline::eval
