#include "pipeline/calibration_window.hpp"

#include <algorithm>

namespace spikeline {

void CalibrationWindow::add(SortOutput& sorted, std::size_t values_per_spike, const MotionTracking* tracking) {
    const std::size_t room = max_spikes - std::min(max_spikes, data.spikes.size());
    const std::size_t n = std::min(room, sorted.spikes.size());
    if (tracking)
        for (std::size_t i = 0; i < n; ++i)
            motion.displacement_um.push_back(tracking->displacement_at_channel(sorted.spikes[i].event.channel));
    data.spikes.insert(data.spikes.end(), sorted.spikes.begin(),
                       sorted.spikes.begin() + static_cast<std::ptrdiff_t>(n));
    if (!sorted.snippets.empty())
        data.snippets.insert(data.snippets.end(), sorted.snippets.begin(),
                             sorted.snippets.begin() + static_cast<std::ptrdiff_t>(n * values_per_spike));
}

void CalibrationWindow::clear() {
    data.spikes.clear();
    data.snippets.clear();
    motion.displacement_um.clear();
}

} // namespace spikeline
