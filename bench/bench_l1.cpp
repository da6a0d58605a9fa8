// Micro-benchmarks of the L1 detection stages on 1024 channels of Gaussian noise (items = samples).
#include "backend/backend.hpp"
#include "backend/cpu_kernels.hpp"
#include "probe/probe.hpp"
#include "spikeline/hw/bandpass.hpp"
#include "spikeline/hw/common_reference.hpp"
#include "spikeline/hw/threshold_detector.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

namespace {

using namespace spikeline;

constexpr int kChannels = 1024;
constexpr std::size_t kFrames = 4096;

const std::vector<std::int16_t>& noise_frames() {
    static const std::vector<std::int16_t> frames = [] {
        std::mt19937 rng(7);
        std::normal_distribution<double> normal(0.0, 60.0);
        std::vector<std::int16_t> v(kFrames * kChannels);
        for (auto& s : v)
            s = static_cast<std::int16_t>(normal(rng));
        return v;
    }();
    return frames;
}

const HwParams& params() {
    static const std::unique_ptr<HwParams> p =
        make_detect_params(DetectSettings{}, probe::default_probe(kChannels), 30000);
    return *p;
}

void BM_Bandpass(benchmark::State& state) {
    auto filter = std::make_unique<hw::BandpassState<HwConfig>>();
    std::vector<std::int32_t> out(kChannels);
    const auto& frames = noise_frames();
    for (auto _ : state)
        for (std::size_t f = 0; f < kFrames; ++f)
            hw::bandpass_frame(*filter, params(), &frames[f * kChannels], out.data(), 0, kChannels);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFrames * kChannels));
}
BENCHMARK(BM_Bandpass);

// The CPU backend's band-pass: tiles of a reference group's channels through 256-frame blocks, with the group sums.
void BM_CpuBandpassTiles(benchmark::State& state) {
    constexpr std::size_t kBlock = 256;
    auto filter = std::make_unique<hw::BandpassState<HwConfig>>();
    std::vector<std::int32_t> out(kBlock * kChannels);
    std::vector<std::int32_t> plain(kBlock * HwConfig::max_groups), clipped(plain), beyond(plain);
    const std::vector<std::int32_t> clip(kChannels, 0); // the work does not depend on the levels
    const auto runs = cpu::reference_runs(params(), 0, kChannels);
    const auto& frames = noise_frames();
    const bool may_saturate = cpu::bandpass_states_may_saturate(params());
    for (auto _ : state)
        for (std::size_t start = 0; start < kFrames; start += kBlock) {
            for (auto* sums : {&plain, &clipped, &beyond})
                std::fill(sums->begin(), sums->end(), 0);
            for (const auto& run : runs)
                for (int first = run.begin; first < run.end; first += cpu::kBandpassTile) {
                    const std::size_t at = static_cast<std::size_t>(run.group) * kBlock;
                    cpu::bandpass_tile(*filter, params(), may_saturate, &frames[start * kChannels], out.data(),
                                       kChannels, kBlock, first, std::min(run.end, first + cpu::kBandpassTile),
                                       {&plain[at], &clipped[at], &beyond[at], clip.data()});
                }
        }
    benchmark::DoNotOptimize(plain.data());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFrames * kChannels));
}
BENCHMARK(BM_CpuBandpassTiles);

const std::vector<std::int32_t>& filtered_frames() {
    static const std::vector<std::int32_t> frames(noise_frames().begin(), noise_frames().end());
    return frames;
}

void BM_CommonReference(benchmark::State& state) {
    std::vector<std::int32_t> out(kChannels);
    static hw::ReferenceState<HwConfig> reference; // levels 0: every frame takes the plain mean, after the clipped sums
    const auto& frames = filtered_frames();
    for (auto _ : state)
        for (std::size_t f = 0; f < kFrames; ++f) {
            hw::GroupSums<HwConfig> sums;
            hw::clear_group_sums(sums);
            std::int32_t means[HwConfig::max_groups];
            hw::accumulate_group_sums(params(), reference, f, &frames[f * kChannels], sums, 0, kChannels);
            hw::group_means(params(), sums, means);
            hw::subtract_reference(params(), &frames[f * kChannels], means, out.data(), 0, kChannels);
        }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFrames * kChannels));
}
BENCHMARK(BM_CommonReference);

void BM_NoiseAndThreshold(benchmark::State& state) {
    auto detector = std::make_unique<hw::DetectorState<HwConfig>>();
    hw::reset_detector(*detector, params());
    const auto& frames = filtered_frames();
    std::uint64_t frame = 0, candidates = 0;
    for (auto _ : state)
        for (std::size_t f = 0; f < kFrames; ++f)
            hw::detect_frame(*detector, params(), frame++, &frames[f * kChannels], 0, kChannels,
                             [&candidates](const SpikeEvent&) { ++candidates; });
    benchmark::DoNotOptimize(candidates);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFrames * kChannels));
}
BENCHMARK(BM_NoiseAndThreshold);

// The CPU backend's fused, vectorised rewrite of common reference + noise tracker + threshold flags.
void BM_CpuReferenceAndFlag(benchmark::State& state) {
    auto detector = std::make_unique<hw::DetectorState<HwConfig>>();
    hw::reset_detector(*detector, params());
    const auto runs = cpu::reference_runs(params(), 0, kChannels);
    const auto& frames = filtered_frames();
    std::vector<std::int32_t> referenced(kChannels);
    std::uint64_t frame = 0;
    for (auto _ : state)
        for (std::size_t f = 0; f < kFrames; ++f, ++frame)
            for (const auto& run : runs)
                benchmark::DoNotOptimize(cpu::reference_and_flag(*detector, params(), run, 3, frame,
                                                                 &frames[f * kChannels], referenced.data()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFrames * kChannels));
}
BENCHMARK(BM_CpuReferenceAndFlag);

// Not part of spikeline: the same band-pass + threshold in float32, to show what a float datapath would cost
// (the point of comparison; float is not bit-exact with the RTL, so L1 does not use it).
void BM_FloatBandpassThresholdForComparison(benchmark::State& state) {
    const auto& frames = noise_frames();
    std::vector<float> h(6 * kChannels, 0.0f), threshold(kChannels, 150.0f);
    std::vector<std::uint8_t> flags(kChannels);
    const float g0 = 0.9565f, a01 = -1.9112f, a02 = 0.9150f, g1 = 0.2066f, a11 = -0.3695f, a12 = 0.1958f;
    for (auto _ : state)
        for (std::size_t f = 0; f < kFrames; ++f) {
            const std::int16_t* x = &frames[f * kChannels];
            float *x1 = &h[0], *x2 = &h[kChannels], *m1 = &h[2 * kChannels], *m2 = &h[3 * kChannels],
                  *y1 = &h[4 * kChannels], *y2 = &h[5 * kChannels];
            for (int c = 0; c < kChannels; ++c) {
                const float in = x[c];
                const float m = g0 * (in - 2 * x1[c] + x2[c]) - a01 * m1[c] - a02 * m2[c];
                const float y = g1 * (m + 2 * m1[c] + m2[c]) - a11 * y1[c] - a12 * y2[c];
                x2[c] = x1[c];
                x1[c] = in;
                m2[c] = m1[c];
                m1[c] = m;
                y2[c] = y1[c];
                y1[c] = y;
                flags[static_cast<std::size_t>(c)] = y < -threshold[static_cast<std::size_t>(c)];
            }
            benchmark::DoNotOptimize(flags.data());
        }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFrames * kChannels));
}
BENCHMARK(BM_FloatBandpassThresholdForComparison);

void BM_CpuBackend(benchmark::State& state) {
    const auto& frames = noise_frames();
    auto backend = make_cpu_backend(params(), static_cast<int>(state.range(0)));
    std::vector<SpikeEvent> events;
    for (auto _ : state) {
        backend->process(frames.data(), kFrames, events);
        events.clear();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFrames * kChannels));
}
BENCHMARK(BM_CpuBackend)->Arg(1)->Arg(2)->UseRealTime();

} // namespace
