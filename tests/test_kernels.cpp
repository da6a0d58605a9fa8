// C simulation of the FPGA kernel top: called as C++ on memory buffers, chunk by chunk, it must produce exactly
// the CPU backend's events.
#include "backend/backend.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "spikeline_detect.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace spikeline {
namespace {

std::vector<std::int16_t> simulate(int channels, double seconds) {
    sim::SimulationConfig config;
    config.n_channels = channels;
    config.duration_s = seconds;
    config.seed = 17;
    sim::Simulator simulator(config, probe::default_probe(channels));
    std::vector<std::int16_t> data(simulator.info().n_frames * static_cast<std::size_t>(channels));
    for (std::size_t done = 0; done < simulator.info().n_frames;)
        done += simulator.read(&data[done * static_cast<std::size_t>(channels)], simulator.info().n_frames - done);
    return data;
}

// Runs the kernel over the recording in chunks of chunk_frames, as a host would.
std::vector<SpikeEvent> run_kernel(const HwParams& params, const std::vector<std::int16_t>& data,
                                   std::uint32_t chunk_frames, std::uint32_t max_events,
                                   std::uint32_t* most = nullptr) {
    const std::size_t channels = static_cast<std::size_t>(params.n_channels);
    const auto frames = static_cast<std::uint32_t>(data.size() / channels);
    std::vector<SpikeEvent> all, buffer(max_events);
    for (std::uint32_t start = 0; start < frames; start += chunk_frames) {
        const std::uint32_t n = std::min(chunk_frames, frames - start);
        std::uint32_t control = start == 0 ? kernels::kControlReset : 0;
        if (start + n == frames)
            control |= kernels::kControlFlush;
        std::uint32_t count = 0;
        spikeline_detect(&data[start * channels], n, &params, buffer.data(), max_events, &count, control);
        if (most)
            *most = std::max(*most, count);
        all.insert(all.end(), buffer.begin(), buffer.begin() + std::min(count, max_events));
    }
    return all;
}

TEST(KernelCSimulation, EqualsTheCpuBackendChunkByChunk) {
    constexpr int channels = 256;
    const auto data = simulate(channels, 3.0);
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    auto cpu = make_cpu_backend(*params, 2);
    std::vector<SpikeEvent> expected;
    cpu->process(data.data(), data.size() / channels, expected);
    cpu->finish(expected);
    ASSERT_GT(expected.size(), 500u);
    for (std::uint32_t chunk : {30u, 1000u, 90000u}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        const auto actual = run_kernel(*params, data, chunk, 4096);
        ASSERT_EQ(actual.size(), expected.size());
        EXPECT_TRUE(std::equal(actual.begin(), actual.end(), expected.begin()));
    }
}

TEST(KernelCSimulation, ReportsEventsBeyondTheOutputCapacity) {
    constexpr int channels = 64;
    const auto data = simulate(channels, 1.0);
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    const auto complete = run_kernel(*params, data, 30000, 4096);
    ASSERT_GT(complete.size(), 20u);
    std::uint32_t most = 0;
    const auto truncated = run_kernel(*params, data, 30000, 10, &most);
    EXPECT_EQ(most, complete.size()) << "the count says how many events there were";
    ASSERT_EQ(truncated.size(), 10u);
    EXPECT_TRUE(std::equal(truncated.begin(), truncated.end(), complete.begin()));
}

} // namespace
} // namespace spikeline
