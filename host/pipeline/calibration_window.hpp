#pragma once
// The snippets a calibration learns from, collected while a backend sorts: the first spikes of a window, each with the
// displacement motion tracking had estimated when it was seen. (Learning samples every spike: SpikeReservoir.)
#include "backend/backend.hpp"
#include "pipeline/motion_tracking.hpp"
#include "sort/calibration.hpp"

#include <cstdint>

namespace spikeline {

struct CalibrationWindow {
    SortOutput data;
    std::size_t max_spikes = 0;
    sort::CalibrationMotion motion; ///< motion.probe set: displacements are recorded (motion tracking on)

    /// Keeps the spikes (and their snippets) while there is room: the first max_spikes of the window.
    void add(SortOutput& sorted, std::size_t values_per_spike, const MotionTracking* tracking);
    void clear();
    const sort::CalibrationMotion* motion_or_null() const { return motion.probe ? &motion : nullptr; }
};

} // namespace spikeline
