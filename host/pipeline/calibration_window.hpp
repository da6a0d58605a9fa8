#pragma once
// The snippets a calibration learns from, collected while a backend sorts: the first spikes of a window, or a uniform
// sample of every spike so far, each with the displacement motion tracking had estimated when it was seen.
#include "backend/backend.hpp"
#include "pipeline/motion_tracking.hpp"
#include "sort/calibration.hpp"

#include <cstdint>
#include <random>

namespace spikeline {

struct CalibrationWindow {
    SortOutput data;
    std::size_t max_spikes = 0;
    sort::CalibrationMotion motion; ///< motion.probe set: displacements are recorded (motion tracking on)

    /// Keeps the spikes (and their snippets) while there is room: the first max_spikes of the window.
    void add(SortOutput& sorted, std::size_t values_per_spike, const MotionTracking* tracking);
    /// Keeps a uniform sample of every spike offered so far (reservoir sampling, deterministic): bounded memory
    /// however long the recording.
    void add_sampled(SortOutput& sorted, std::size_t values_per_spike, const MotionTracking* tracking);
    void clear();
    const sort::CalibrationMotion* motion_or_null() const { return motion.probe ? &motion : nullptr; }

    std::uint64_t offered = 0;
    std::mt19937_64 rng{1};
};

} // namespace spikeline
