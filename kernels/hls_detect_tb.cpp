// Vitis HLS C-simulation test bench: a synthetic 64-channel stream with injected spikes through the kernel top
// in two calls (reset, then flush). Exits non-zero when the events are not where the spikes were injected.
#include "spikeline_detect.hpp"

#include <cstdio>
#include <vector>

int main() {
    using namespace spikeline;
    const int channels = 64;
    const std::uint32_t frames = 6000;
    static kernels::DetectParams params; // large: not on the stack
    params.n_channels = channels;
    params.sections[0] = {15672, -31313, 14991}; // 300 Hz high-pass at 30 kHz, Q2.14
    params.sections[1] = {3384, -6054, 3208};    // 6 kHz low-pass
    for (int ch = 0; ch < channels; ++ch) {
        params.group_of[ch] = -1;
        for (int k = 0; k < kernels::DetectConfig::max_neighbours; ++k)
            params.neighbours[ch][k] = -1;
    }
    params.threshold_gain = 1803; // 4.75 sigma
    std::vector<std::int16_t> data(static_cast<std::size_t>(frames) * channels);
    unsigned seed = 1;
    for (auto& v : data) {
        seed = seed * 1664525u + 1013904223u;
        v = static_cast<std::int16_t>(static_cast<int>(seed >> 26) - 32); // uniform noise, +-32 LSB
    }
    for (std::uint32_t t = 2000; t < frames; t += 500) // a large spike on channel 10 every 500 frames
        for (int k = 0; k < 8; ++k)
            data[(t + k) * channels + 10] = static_cast<std::int16_t>(-600 + 60 * k);
    std::vector<hw::SpikeEvent> events(1024);
    std::uint32_t first = 0, second = 0;
    spikeline_detect(data.data(), frames / 2, &params, events.data(), 512, &first, kernels::kControlReset);
    spikeline_detect(data.data() + static_cast<std::size_t>(frames / 2) * channels, frames / 2, &params,
                     events.data() + first, 512, &second, kernels::kControlFlush);
    int on_channel_10 = 0;
    for (std::uint32_t i = 0; i < first + second; ++i)
        on_channel_10 += events[i].channel == 10;
    std::printf("%u events, %d on channel 10 (8 spikes injected)\n", first + second, on_channel_10);
    return on_channel_10 == 8 ? 0 : 1;
}
