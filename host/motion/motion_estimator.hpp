#pragma once
// Online estimation of the probe's motion against the tissue along depth, per shank, from detected spikes: each spike
// is localised (a footprint fitted to its trough amplitudes on its snippet's contacts), spikes are binned into
// depth x log-amplitude histograms over a sliding window, and each new window is registered to a reference histogram
// by normalised cross-correlation, rigidly per shank and then in overlapping depth blocks (non-rigid motion).
// Causal: an estimate uses only spikes up to its time.
#include "backend/backend.hpp"
#include "motion/localisation.hpp"
#include "probe/probe.hpp"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace spikeline::motion {

struct MotionSettings {
    double update_s = 0.5;       ///< a new estimate every update_s
    double window_s = 1.5;       ///< from the spikes of the last window_s
    double bin_um = 2.0;         ///< depth histogram bin
    double smooth_um = 4.0;      ///< Gaussian smoothing (sigma) of the histograms along depth
    double max_shift_um = 200;   ///< largest displacement searched (rigid), from the reference
    double search_um = 24;       ///< searched first around the last estimate (all of max_shift_um when at an edge)
    double block_um = 200;       ///< depth blocks for non-rigid motion (Gaussian windows, sigma block_um / 2); 0: rigid
    double block_range_um = 30;  ///< a block searches this far around its last estimate, also moved with the rigid one
    double reference_rate = 0.0; ///< share of each registered window mixed into the reference (slow changes)
    int min_spikes = 50;         ///< fewer spikes on a shank in a window: the estimate holds
    double apply_delay_s = 0.1;  ///< an estimate takes effect this long after its window ends (computed meanwhile)
    int velocity_windows = 6;    ///< velocity: least-squares slope of the last this many windows' positions (0: none)
    double velocity_scale =
        1.0; ///< um/s: slopes well below it are mostly noise and shrink towards 0 (v^2 / (v^2 + s^2))
    /// um/s: when the two halves of the velocity span both move faster than this, in opposite directions (a
    /// reversal), the late half's slope is the velocity (0: never; otherwise halves that disagree give 0)
    double reversal_um_per_s = 2.0;
};

/// The displacement of the tissue relative to the probe along the probe's y axis, in um, per shank and depth block:
/// a unit at depth y when the estimate was 0 now appears at y + displacement.
struct MotionEstimate {
    double time_s = 0;                ///< end of the window it was estimated from
    std::vector<double> displacement; ///< one per block (MotionEstimator::blocks()), at time_s
    std::vector<double> velocity;     ///< um/s per block, over the last velocity_windows windows
    std::vector<double> measured;     ///< per block: the window's own displacement, at its centre (not carried on)
};

struct MotionBlock {
    int shank = 0;
    double depth_um = 0; ///< where the block measures: the spike-weighted mean depth under its window
};

/// An estimate as it took effect: from frame `due` on, with the blocks' depths it came with.
struct MotionEffect {
    std::uint64_t due = 0;
    MotionEstimate estimate;
    std::vector<MotionBlock> blocks;
};

class MotionEstimator {
public:
    MotionEstimator(const probe::Probe& probe, double sample_rate, const MotionSettings& settings);
    ~MotionEstimator();
    MotionEstimator(const MotionEstimator&) = delete;
    MotionEstimator& operator=(const MotionEstimator&) = delete;

    const std::vector<MotionBlock>& blocks() const { return blocks_; }
    const MotionSettings& settings() const { return settings_; }

    /// Adds spikes (in sample order) up to frame `up_to` (exclusive; every spike before it has been added) and
    /// returns the estimates that took effect on the way. The window ending at each update_s boundary is registered
    /// on a worker thread while frames go on, and its estimate takes effect once `up_to` passes the boundary plus
    /// apply_delay_frames() (waiting for the worker only if it is that late): the estimates, and when they take
    /// effect, depend on the spikes and frame counts only, never on the threads' timing.
    std::vector<MotionEstimate> add(const std::vector<SpikeEvent>& events, const std::vector<SpikePosition>& positions,
                                    std::uint64_t up_to);

    /// From now on, keep every estimate as it takes effect (effects()): what replay() takes. Off by default, since a
    /// live stream would hold them for hours.
    void record_effects() { recording_ = true; }
    const std::vector<MotionEffect>& effects() const { return effects_; }

    /// From now on add() ignores its spikes and applies these effects (another estimator's effects() over the same
    /// frames, with the same settings) as each one's frame comes: the same estimates without registering again.
    void replay(std::vector<MotionEffect> effects);
    bool replaying() const { return replaying_; }

    /// Frames between the end of an estimate's window and the frame it takes effect at.
    std::uint64_t apply_delay_frames() const { return apply_delay_frames_; }

    /// The latest estimate in effect (all zero before the first window is complete).
    const MotionEstimate& current() const { return current_; }

    /// Displacement at depth y on a shank, interpolated between the blocks' centres of the current estimate, as
    /// predicted (with its velocity) for the middle of the update_s it is in effect: where units are meanwhile.
    double displacement_at(int shank, double y_um) const;

    /// How a value per block is interpolated at depth y on a shank: weight * per_block[upper] + (1 - weight) *
    /// per_block[lower] (the blocks' current depths; all zero for a shank without blocks).
    struct BlockWeights {
        int lower = -1, upper = -1;
        double weight = 0;
    };
    BlockWeights block_weights(int shank, double y_um) const;

private:
    struct Shank {
        double y_min = 0;
        int n_bins = 0;
        std::vector<std::vector<double>> slices; ///< per update slice: n_amplitude_bins x n_bins counts
        std::vector<int> blocks;                 ///< indices into blocks_
        std::vector<double> window_centres;      ///< of each block's Gaussian window, um
    };
    class Registration; ///< the worker's state: reference histograms, last estimates
    struct Pending {
        std::uint64_t due = 0; ///< frame the estimate takes effect at
        std::future<std::pair<MotionEstimate, std::vector<MotionBlock>>> result;
    };

    std::vector<double> window_histogram(const Shank& shank) const;
    void run_worker();

    probe::Probe probe_;
    double sample_rate_;
    MotionSettings settings_;
    std::uint64_t update_frames_;
    std::uint64_t apply_delay_frames_;
    int window_slices_;
    std::vector<Shank> shanks_;
    std::vector<int> shank_index_; ///< probe shank id -> index into shanks_ (-1: none)
    std::vector<MotionBlock> blocks_;
    std::uint64_t next_update_;
    int slice_ = 0; ///< index of the current slice in every shank's ring
    MotionEstimate current_;
    std::vector<MotionEffect> effects_; ///< made (when recording), or to replay
    bool recording_ = false;
    bool replaying_ = false;
    std::size_t next_effect_ = 0; ///< replaying: the next of effects_ to apply

    std::unique_ptr<Registration> registration_; ///< used by the worker only
    std::deque<Pending> pending_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::packaged_task<std::pair<MotionEstimate, std::vector<MotionBlock>>()>> jobs_;
    bool stopping_ = false;
    std::thread worker_;
};

} // namespace spikeline::motion
