// Every backend equals the plain L1 reference on every event: thread counts, block sizes, settings, corner cases.
#include "backend/backend.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "simulated_recording.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace spikeline {
namespace {

using testing::simulate_in_memory;

std::vector<SpikeEvent> run(Backend& backend, const std::vector<std::int16_t>& data, int channels, std::size_t block) {
    std::vector<SpikeEvent> events;
    const std::size_t frames = data.size() / static_cast<std::size_t>(channels);
    for (std::size_t f = 0; f < frames; f += block)
        backend.process(&data[f * static_cast<std::size_t>(channels)], std::min(block, frames - f), events);
    backend.finish(events);
    return events;
}

std::vector<SpikeEvent> reference_events(const HwParams& params, const std::vector<std::int16_t>& data) {
    auto reference = make_reference_backend(params);
    return run(*reference, data, params.n_channels, 1 << 20);
}

void expect_same(const std::vector<SpikeEvent>& expected, const std::vector<SpikeEvent>& actual) {
    ASSERT_EQ(expected.size(), actual.size());
    for (std::size_t i = 0; i < expected.size(); ++i)
        ASSERT_EQ(expected[i], actual[i])
            << "first difference at event " << i << ": expected sample " << expected[i].sample << " channel "
            << expected[i].channel << ", got " << actual[i].sample << " channel " << actual[i].channel;
}

class BackendEquality : public ::testing::Test {
protected:
    static void SetUpTestSuite() { data_ = new std::vector<std::int16_t>(simulate_in_memory(kChannels, 3.0, 11)); }
    static void TearDownTestSuite() { delete data_; }
    static constexpr int kChannels = 256; // two shanks of the default probe
    static std::vector<std::int16_t>* data_;
};
std::vector<std::int16_t>* BackendEquality::data_ = nullptr;

TEST_F(BackendEquality, CpuEqualsReferenceForEveryThreadCountAndBlockSize) {
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(kChannels), 30000);
    const auto expected = reference_events(*params, *data_);
    ASSERT_GT(expected.size(), 500u) << "the simulated segment should hold many spikes";
    for (int threads : {1, 2, 3})
        for (std::size_t block : {std::size_t{1}, std::size_t{7}, std::size_t{30}, std::size_t{4096}}) {
            SCOPED_TRACE("threads " + std::to_string(threads) + ", block " + std::to_string(block));
            auto cpu = make_cpu_backend(*params, threads);
            expect_same(expected, run(*cpu, *data_, kChannels, block));
        }
}

TEST_F(BackendEquality, ReferenceIsBlockSizeInvariant) {
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(kChannels), 30000);
    const auto expected = reference_events(*params, *data_);
    for (std::size_t block : {std::size_t{1}, std::size_t{7}, std::size_t{30}, std::size_t{4096}}) {
        auto reference = make_reference_backend(*params);
        expect_same(expected, run(*reference, *data_, kChannels, block));
    }
}

TEST_F(BackendEquality, CpuEqualsReferenceWithOtherSettings) {
    DetectSettings both;
    both.polarity = hw::Polarity::both;
    both.threshold_sigma = 4.0;
    DetectSettings positive;
    positive.polarity = hw::Polarity::positive;
    positive.common_reference = false;
    DetectSettings narrow;
    narrow.band_low_hz = 500;
    narrow.band_high_hz = 3000;
    narrow.align_ms = 0.0; // a one-sample window: the crossing itself is the peak
    narrow.dead_time_ms = 0.0;
    narrow.dedup_ms = 1.0;
    for (const DetectSettings& settings : {both, positive, narrow}) {
        const auto params = make_detect_params(settings, probe::default_probe(kChannels), 30000);
        const auto expected = reference_events(*params, *data_);
        ASSERT_FALSE(expected.empty());
        auto cpu = make_cpu_backend(*params, 2);
        expect_same(expected, run(*cpu, *data_, kChannels, 100));
    }
}

TEST(BackendCorners, InterleavedShanksAndUnreferencedChannels) {
    // Channels alternate between shanks, so every reference group is split into one-channel runs.
    probe::Probe probe = probe::default_probe(64);
    for (int ch = 0; ch < 64; ++ch)
        probe.contacts[static_cast<std::size_t>(ch)].shank = ch % 3;
    const auto data = simulate_in_memory(64, 2.0, 5);
    const auto params = make_detect_params(DetectSettings{}, probe, 30000);
    params->group_of[5] = -1; // an excluded (e.g. broken) channel
    const auto expected = reference_events(*params, data);
    ASSERT_FALSE(expected.empty());
    auto cpu = make_cpu_backend(*params, 2);
    expect_same(expected, run(*cpu, data, 64, 333));
}

TEST(BackendCorners, ChannelCountsThatDoNotSplitEvenly) {
    for (int channels : {1, 33, 100}) {
        SCOPED_TRACE(std::to_string(channels) + " channels");
        const auto data = simulate_in_memory(channels, 1.5, 9);
        const auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
        const auto expected = reference_events(*params, data);
        for (int threads : {2, 3, 8}) {
            auto cpu = make_cpu_backend(*params, threads);
            expect_same(expected, run(*cpu, data, channels, 1000));
        }
    }
}

TEST(BackendCorners, SaturationFullScaleStepsAndAllChannelsSpikingAtOnce) {
    constexpr int channels = 64;
    constexpr std::size_t frames = 30000;
    std::mt19937 rng(3);
    std::normal_distribution<double> noise(0, 30);
    std::vector<std::int16_t> data(frames * channels);
    for (std::size_t f = 0; f < frames; ++f)
        for (int ch = 0; ch < channels; ++ch) {
            double v = noise(rng);
            if (f > 10000 && f < 12000) // full-scale square wave: saturates the filter states
                v = ((f / 50) % 2) ? 32767 : -32768;
            if (f % 3000 == 1500) // every channel spikes in the same frame
                v = -2000 - ch * 10;
            if (ch == 7 && f > 20000) // one channel stuck at the rail
                v = -32768;
            data[f * channels + ch] = static_cast<std::int16_t>(std::clamp(v, -32768.0, 32767.0));
        }
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    const auto expected = reference_events(*params, data);
    ASSERT_FALSE(expected.empty());
    for (int threads : {1, 2}) {
        auto cpu = make_cpu_backend(*params, threads);
        expect_same(expected, run(*cpu, data, channels, 512));
    }
}

TEST(BackendFactory, RejectsUnknownBackendAndBadThreadCounts) {
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(64), 30000);
    EXPECT_THROW(make_backend({"gpu", 1}, *params), InputError);
    EXPECT_THROW(make_backend({"cpu", 0}, *params), InputError);
    EXPECT_EQ(make_backend({"cpu", 2}, *params)->name(), "cpu");
    EXPECT_EQ(make_backend({"reference", 1}, *params)->name(), "reference");
}

} // namespace
} // namespace spikeline
