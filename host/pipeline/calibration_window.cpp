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

void CalibrationWindow::add_sampled(SortOutput& sorted, std::size_t values_per_spike, const MotionTracking* tracking) {
    for (std::size_t i = 0; i < sorted.spikes.size(); ++i, ++offered) {
        std::size_t slot = data.spikes.size();
        if (slot == max_spikes) {
            slot = static_cast<std::size_t>(rng() % (offered + 1));
            if (slot >= max_spikes)
                continue;
        }
        const double displacement = tracking ? tracking->displacement_at_channel(sorted.spikes[i].event.channel) : 0;
        const auto snippet = sorted.snippets.begin() + static_cast<std::ptrdiff_t>(i * values_per_spike);
        if (slot == data.spikes.size()) {
            data.spikes.push_back(sorted.spikes[i]);
            data.snippets.insert(data.snippets.end(), snippet, snippet + static_cast<std::ptrdiff_t>(values_per_spike));
            if (motion.probe)
                motion.displacement_um.push_back(displacement);
        } else {
            data.spikes[slot] = sorted.spikes[i];
            std::copy(snippet, snippet + static_cast<std::ptrdiff_t>(values_per_spike),
                      data.snippets.begin() + static_cast<std::ptrdiff_t>(slot * values_per_spike));
            if (motion.probe)
                motion.displacement_um[slot] = displacement;
        }
    }
}

void CalibrationWindow::clear() {
    data.spikes.clear();
    data.snippets.clear();
    motion.displacement_um.clear();
}

} // namespace spikeline
