#pragma once
// Motion tracking around a backend's sorting stage: spikes (with snippets) in, motion estimates out, and for the
// labelling pass the classifier-table writes that keep the units on the contacts where the motion has taken them and
// that bring in what later calibrations learnt (new units, refined ones).
// Everything it computes depends only on the spikes and the frame count, never on how far a backend has got in
// sorting them, so every backend receives the same writes at the same samples.
#include "io/npy.hpp"
#include "motion/motion_estimator.hpp"
#include "motion/motion_history.hpp"
#include "sort/moving_units.hpp"

#include <filesystem>
#include <memory>
#include <vector>

namespace spikeline {

class MotionTracking {
public:
    /// estimate_motion false: no estimate (displacement 0), only the table writes of follow().
    MotionTracking(const probe::Probe& probe, double sample_rate, std::shared_ptr<const HwSortParams> geometry,
                   const motion::MotionSettings& settings, bool estimate_motion = true);

    /// Takes the spikes the backend sorted by the time it had processed `processed_frames` frames (with their
    /// snippets, in sample order). Spikes within the last frames, which a slower backend may not have sorted yet,
    /// wait for the next call. Returns whether a new motion estimate was made.
    bool add(const SortOutput& sorted, std::uint64_t processed_frames);

    /// The current displacement (um) of the tissue at a channel's contact.
    double displacement_at_channel(int channel) const;

    /// Units of `calibration` follow the motion from now on (the labelling pass); call again after each calibration.
    /// loaded: the backend was given calibration.params (enable_sorting); otherwise the next table_writes() take
    /// the backend's table to the new calibration's.
    void follow(const sort::Calibration& calibration, bool loaded);
    /// The writes that take the backend's table to the current motion's (empty when nothing changed).
    std::vector<hw::TableWrite> table_writes(std::uint64_t sample);

    const std::vector<motion::MotionEstimate>& estimates() const { return estimates_; }
    /// Every estimate so far, for looking back (a copy).
    motion::MotionHistory history() const { return {estimator_, probe_, sample_rate_, estimates_}; }
    const motion::MotionEstimator& estimator() const { return estimator_; }
    /// Keeps the estimates as they take effect (estimator().effects()), for a replay.
    void record_effects() { estimator_.record_effects(); }
    /// What another tracking over the same spikes and frames estimated (its estimator().effects()), taken instead of
    /// estimating again: add() then needs no snippets.
    void replay(std::vector<motion::MotionEffect> effects) { estimator_.replay(std::move(effects)); }
    int units_moved() const { return moving_ ? moving_->units_moved() : 0; }
    std::uint64_t n_writes() const { return n_writes_; }

    /// motion.npy, motion_times_s.npy, motion_blocks.npy (docs/FORMATS.md) into out_dir, atomically.
    void write_motion(const std::filesystem::path& out_dir) const;

private:
    probe::Probe probe_;
    double sample_rate_;
    std::shared_ptr<const HwSortParams> geometry_;
    motion::Localiser localiser_;
    motion::MotionEstimator estimator_;
    std::vector<SpikeEvent> held_events_;
    std::vector<motion::SpikePosition> held_positions_;
    std::vector<motion::MotionEstimate> estimates_;
    std::unique_ptr<sort::MovingUnits> moving_;
    std::unique_ptr<HwSortParams> backend_table_; ///< the table the backend holds once the queued writes apply
    std::unique_ptr<HwSortParams> spare_table_;   ///< the first MovingUnits' table
    bool estimate_motion_;
    bool new_estimate_ = false;
    std::uint64_t n_writes_ = 0;
};

/// unit_updates.npy: one int64 row per table write (sample, channel, slot, n_entries, unit, template_id, gate,
/// centroid x n_values), appended as they are made.
class TableWriteLog {
public:
    explicit TableWriteLog(const std::filesystem::path& path);
    void append(const std::vector<hw::TableWrite>& writes);
    void flush() { file_.flush(); }
    void finish() { file_.finish(); }

private:
    io::NpyAppendWriter<std::int64_t> file_;
};

} // namespace spikeline
