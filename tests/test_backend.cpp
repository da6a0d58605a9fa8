// Every backend equals the plain L1 reference on every event (thread counts, block sizes, settings, corner cases), and
// the CPU backend's vectorised kernels equal the L1 functions they replace on every output.
#include "backend/backend.hpp"
#include "backend/cpu_kernels.hpp"
#include "backend_runs.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "simulated_recording.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

namespace spikeline {
namespace {

using testing::simulate_in_memory;

using testing::expect_same;
using testing::reference_events;
using testing::run;

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
    // The clipped common reference acts on this recording (its levels change every 4096 frames, inside the blocks).
    auto plain_mean = std::make_unique<HwParams>(*params);
    plain_mean->reference_clip_gain = 0;
    ASSERT_NE(expected, reference_events(*plain_mean, *data_));
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

TEST_F(BackendEquality, CpuEqualsReferenceWithTheSpatialRule) {
    // Partners lie across the workers' channel ranges for 2 and 3 threads.
    DetectSettings negative;
    negative.threshold_sigma = 5.0;
    negative.spatial_sigma = 5.75;
    DetectSettings both = negative;
    both.polarity = hw::Polarity::both;
    both.common_reference = false;
    const auto plain =
        reference_events(*make_detect_params(DetectSettings{}, probe::default_probe(kChannels), 30000), *data_);
    for (const DetectSettings& settings : {negative, both}) {
        const auto params = make_detect_params(settings, probe::default_probe(kChannels), 30000);
        const auto expected = reference_events(*params, *data_);
        ASSERT_GT(expected.size(), plain.size() / 2);
        for (int threads : {1, 2, 3}) {
            SCOPED_TRACE("threads " + std::to_string(threads));
            auto cpu = make_cpu_backend(*params, threads);
            expect_same(expected, run(*cpu, *data_, kChannels, 100));
        }
    }
}

TEST_F(BackendEquality, CpuEqualsReferenceWhereALargerSpikeEndsTheDeadTime) {
    // The CPU backend leaves hw::outgrows_peak to its sparse pass (kHeldCrossing); this recording has such spikes.
    DetectSettings spatial;
    spatial.threshold_sigma = 5.0;
    spatial.spatial_sigma = 5.75;
    DetectSettings both = spatial;
    both.polarity = hw::Polarity::both;
    for (const DetectSettings& settings : {DetectSettings{}, spatial, both}) {
        const auto params = make_detect_params(settings, probe::default_probe(kChannels), 30000);
        const auto expected = reference_events(*params, *data_);
        std::vector<std::uint64_t> last_peak(kChannels, 0);
        int inside_dead_time = 0;
        for (const SpikeEvent& e : expected) {
            auto& last = last_peak[static_cast<std::size_t>(e.channel)];
            inside_dead_time += last != 0 && e.sample - last < static_cast<std::uint64_t>(params->dead_time);
            last = e.sample;
        }
        EXPECT_GT(inside_dead_time, 0) << "no spike ended a dead time: the test does not test it";
        for (int threads : {1, 2}) {
            SCOPED_TRACE("threads " + std::to_string(threads));
            auto cpu = make_cpu_backend(*params, threads);
            expect_same(expected, run(*cpu, *data_, kChannels, 100));
        }
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
    const std::vector<std::int16_t> data = testing::saturating_recording(channels);
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    const auto expected = reference_events(*params, data);
    ASSERT_FALSE(expected.empty());
    for (int threads : {1, 2}) {
        auto cpu = make_cpu_backend(*params, threads);
        expect_same(expected, run(*cpu, data, channels, 512));
    }
}

TEST(BackendCorners, GroupsLongerThanABandpassTileAndOfOddSizes) {
    // 300 channels (two full band-pass tiles and a partial one) and 37 (a partial vector), one of them unreferenced.
    constexpr int channels = 337;
    probe::Probe probe = probe::default_probe(channels);
    for (int ch = 0; ch < channels; ++ch)
        probe.contacts[static_cast<std::size_t>(ch)].shank = ch < 300 ? 0 : 1;
    const auto data = simulate_in_memory(channels, 2.0, 13);
    const auto params = make_detect_params(DetectSettings{}, probe, 30000);
    params->group_of[310] = -1;
    const auto expected = reference_events(*params, data);
    ASSERT_FALSE(expected.empty());
    for (int threads : {1, 2}) {
        SCOPED_TRACE("threads " + std::to_string(threads));
        auto cpu = make_cpu_backend(*params, threads);
        expect_same(expected, run(*cpu, data, channels, 1000));
    }
}

// Frame-major frames of `channels` channels: noise, full-range random samples, then a full-scale square wave.
std::vector<std::int16_t> bandpass_test_frames(int channels, std::size_t frames) {
    std::mt19937 rng(17);
    std::normal_distribution<double> noise(0, 60);
    std::uniform_int_distribution<int> full_range(-32768, 32767);
    std::vector<std::int16_t> data(frames * static_cast<std::size_t>(channels));
    for (std::size_t f = 0; f < frames; ++f)
        for (int ch = 0; ch < channels; ++ch) {
            const int phase = static_cast<int>(f) + 5 * ch;
            const int value = f < frames / 3       ? static_cast<int>(noise(rng))
                              : f < 2 * frames / 3 ? full_range(rng)
                                                   : ((phase / 20) % 2 ? 32767 : -32768);
            data[f * static_cast<std::size_t>(channels) + static_cast<std::size_t>(ch)] =
                static_cast<std::int16_t>(value);
        }
    return data;
}

// Element by element, reporting the first difference as (row, column) of rows of `row_length` values.
void expect_same_rows(const std::vector<std::int32_t>& expected, const std::vector<std::int32_t>& actual,
                      std::size_t row_length, const char* what) {
    ASSERT_EQ(expected.size(), actual.size());
    const auto difference = std::mismatch(expected.begin(), expected.end(), actual.begin());
    if (difference.first == expected.end())
        return;
    const auto at = static_cast<std::size_t>(difference.first - expected.begin());
    ADD_FAILURE() << what << " differ first at row " << at / row_length << ", column " << at % row_length
                  << ": expected " << *difference.first << ", got " << *difference.second;
}

TEST(ExcludedChannels, LeftOutOfTheReferenceAndSeenAsZerosByTheBackend) {
    constexpr int channels = 64;
    probe::Probe probe = probe::default_probe(channels);
    probe.contacts[3].excluded = true; // e.g. flagged unused in a SpikeGLX ~snsGeomMap
    DetectSettings settings;
    settings.excluded_channels = {10, 20};
    EXPECT_EQ(excluded_channels(settings, probe), (std::vector<int>{3, 10, 20}));
    const auto params = make_detect_params(settings, probe, 30000);
    for (int ch : {3, 10, 20})
        EXPECT_EQ(params->group_of[ch], -1) << ch;
    EXPECT_EQ(params->group_of[4], 0);
    EXPECT_EQ(params->group_inverse_size[0], std::lround(65536.0 / 61));

    // The wrapped backend gives the events of the same backend on data with those channels zeroed, and leaves the
    // caller's frames alone.
    const auto data = simulate_in_memory(channels, 2.0, 5);
    std::vector<std::int16_t> zeroed = data;
    for (std::size_t f = 0; f < data.size() / channels; ++f)
        for (int ch : {3, 10, 20})
            zeroed[f * channels + static_cast<std::size_t>(ch)] = 0;
    const auto expected = reference_events(*params, zeroed);
    ASSERT_GT(expected.size(), 50u);
    for (const SpikeEvent& e : expected)
        EXPECT_TRUE(e.channel != 3 && e.channel != 10 && e.channel != 20) << "event on excluded channel " << e.channel;
    const std::vector<std::int16_t> original = data;
    auto wrapped = with_channels_zeroed(make_cpu_backend(*params, 2), channels, excluded_channels(settings, probe));
    expect_same(expected, run(*wrapped, data, channels, 100));
    EXPECT_EQ(data, original);

    settings.excluded_channels = {64};
    EXPECT_THROW(excluded_channels(settings, probe), InputError);
}

TEST(CpuKernels, BandpassTileEqualsL1BandpassFrameWithGroupSums) {
    constexpr int channels = 256;
    constexpr std::size_t frames = 768;
    constexpr std::int32_t sample_max = (1 << (HwConfig::sample_bits - 1)) - 1;
    const auto data = bandpass_test_frames(channels, frames);
    const auto real = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    // Poles on the unit circle next to z = 1, the largest coefficients (the range is symmetric): the states run into
    // saturation within a few frames.
    constexpr std::int32_t coef_max = (1 << (HwConfig::coef_bits - 1)) - 1;
    auto unstable = std::make_unique<HwParams>(*real);
    for (auto& section : unstable->sections)
        section = {coef_max, -coef_max, 1 << HwConfig::coef_frac_bits};
    for (const HwParams* params : {real.get(), unstable.get()})
        for (int width : {1, 7, 8, 100, 128})
            for (std::size_t per_call : {std::size_t{1}, std::size_t{256}}) {
                SCOPED_TRACE("width " + std::to_string(width) + ", " + std::to_string(per_call) + " frames per call" +
                             (params == real.get() ? "" : ", unstable filter"));
                const int begin = 3; // not at a vector boundary
                const int end = begin + width;
                auto expected_state = std::make_unique<hw::BandpassState<HwConfig>>();
                auto state = std::make_unique<hw::BandpassState<HwConfig>>();
                // Columns outside [begin, end) keep the marker: the tile writes no other channel.
                std::vector<std::int32_t> expected(frames * channels, -7), actual(expected);
                // Clip levels from 0 to about the filtered samples' size, a different one per channel.
                auto reference = std::make_unique<hw::ReferenceState<HwConfig>>();
                for (int ch = 0; ch < channels; ++ch)
                    reference->clip[0][ch] = (ch * 37) % 3000;
                std::vector<std::int32_t> expected_sums(3 * frames, 0), sums(expected_sums);
                for (std::size_t f = 0; f < frames; ++f) {
                    std::int32_t* row = &expected[f * channels];
                    hw::bandpass_frame(*expected_state, *params, &data[f * channels], row, begin, end);
                    hw::GroupSums<HwConfig> l1_sums;
                    hw::clear_group_sums(l1_sums);
                    hw::accumulate_group_sums(*params, *reference, 0, row, l1_sums, begin, end);
                    for (int g = 0; g < HwConfig::max_groups; ++g) { // the tile sums whatever groups it spans
                        expected_sums[f] += l1_sums.plain[g];
                        expected_sums[frames + f] += l1_sums.clipped[g];
                        expected_sums[2 * frames + f] += l1_sums.beyond[g];
                    }
                }
                const bool may_saturate = cpu::bandpass_states_may_saturate(*params);
                EXPECT_EQ(may_saturate, params == unstable.get());
                for (std::size_t f = 0; f < frames; f += per_call)
                    cpu::bandpass_tile(*state, *params, may_saturate, &data[f * channels], &actual[f * channels],
                                       channels, per_call, begin, end,
                                       {&sums[f], &sums[frames + f], &sums[2 * frames + f], reference->clip[0]});
                expect_same_rows(expected, actual, channels, "outputs");
                expect_same_rows(expected_sums, sums, 1, "group sums");
                for (int k = 0; k <= HwConfig::n_sections; ++k)
                    for (int j = 0; j < 2; ++j)
                        for (int ch = 0; ch < channels; ++ch)
                            ASSERT_EQ(expected_state->history[k][j][ch], state->history[k][j][ch])
                                << "history[" << k << "][" << j << "][" << ch << "]";
                if (params == unstable.get()) {
                    EXPECT_NE(std::count(expected.begin(), expected.end(), sample_max), 0) << "no saturation reached";
                }
            }
}

TEST(CpuKernels, FlaggedBytesSetsTheBitsOfNonZeroFlags) {
    std::mt19937 rng(3);
    std::vector<std::uint8_t> flags(80);
    for (int n : {1, 5, 16, 33, 63, 64}) {
        for (auto& flag : flags)
            flag = static_cast<std::uint8_t>(rng() % 4 == 0 ? 1 + rng() % 3 : 0);
        std::uint64_t expected = 0;
        for (int k = 0; k < n; ++k)
            expected |= static_cast<std::uint64_t>(flags[static_cast<std::size_t>(k)] != 0) << k;
        EXPECT_EQ(cpu::flagged_bytes(flags.data(), n), expected) << n << " flags";
    }
}

// The CPU band-pass leaves out the state saturation when a bound says it never acts. The bound holds for the bands
// people use, and the input that drives each section's output furthest (full scale, signs matching the impulse
// response) does not reach the state range.
TEST(CpuKernels, BandpassSaturationBoundHoldsOnTheWorstInput) {
    constexpr int channels = 16;
    for (const auto& [low, high, rate] :
         {std::tuple{300.0, 6000.0, 30000.0}, std::tuple{150.0, 3000.0, 30000.0}, std::tuple{500.0, 10000.0, 30000.0},
          std::tuple{300.0, 5000.0, 20000.0}, std::tuple{250.0, 7500.0, 40000.0}}) {
        SCOPED_TRACE(std::to_string(low) + "-" + std::to_string(high) + " Hz at " + std::to_string(rate) + " Hz");
        DetectSettings settings;
        settings.band_low_hz = low;
        settings.band_high_hz = high;
        const auto params = make_detect_params(settings, probe::default_probe(channels), rate);
        ASSERT_FALSE(cpu::bandpass_states_may_saturate(*params));
        // The impulse responses of the first section and of the cascade, in double.
        constexpr std::size_t length = 4096;
        std::vector<double> first(length), cascade(length);
        std::vector<double> signal(length, 0.0);
        signal[0] = 1;
        for (int k = 0; k < HwConfig::n_sections; ++k) {
            const hw::BiquadQ& c = params->sections[k];
            const double one = 1 << HwConfig::coef_frac_bits, m = HwConfig::numerator_middle(k);
            std::vector<double> y(length);
            for (std::size_t n = 0; n < length; ++n) {
                const double x1 = n >= 1 ? signal[n - 1] : 0, x2 = n >= 2 ? signal[n - 2] : 0;
                const double y1 = n >= 1 ? y[n - 1] : 0, y2 = n >= 2 ? y[n - 2] : 0;
                y[n] = (c.gain * (signal[n] + m * x1 + x2) - c.a1 * y1 - c.a2 * y2) / one;
            }
            signal = y;
            if (k == 0)
                first = y;
        }
        cascade = signal;
        // Channel 2j (2j + 1) ends with the input that drives the first section's (the cascade's) output to its largest
        // positive (negative) value at the last frame.
        std::vector<std::int16_t> data(length * channels);
        for (std::size_t f = 0; f < length; ++f)
            for (int ch = 0; ch < channels; ++ch) {
                const double h = (ch / 2) % 2 == 0 ? first[length - 1 - f] : cascade[length - 1 - f];
                const bool positive = (h >= 0) == (ch % 2 == 0);
                data[f * channels + static_cast<std::size_t>(ch)] = positive ? 32767 : -32768;
            }
        auto expected_state = std::make_unique<hw::BandpassState<HwConfig>>();
        auto state = std::make_unique<hw::BandpassState<HwConfig>>();
        std::vector<std::int32_t> expected(length * channels), actual(length * channels);
        std::int32_t largest_state = 0;
        for (std::size_t f = 0; f < length; ++f) {
            hw::bandpass_frame(*expected_state, *params, &data[f * channels], &expected[f * channels], 0, channels);
            for (int k = 1; k <= HwConfig::n_sections; ++k)
                for (int ch = 0; ch < channels; ++ch)
                    largest_state = std::max(largest_state, std::abs(expected_state->history[k][0][ch]));
        }
        cpu::bandpass_tile(*state, *params, false, data.data(), actual.data(), channels, length, 0, channels, {});
        expect_same_rows(expected, actual, channels, "outputs");
        EXPECT_LT(largest_state, (1 << (HwConfig::state_bits - 1)) - 1);
        // The input does drive the states far: the bound is not vacuous.
        EXPECT_GT(largest_state, 1 << (HwConfig::state_bits - 3));
    }
}

// The AVX-512 build runs reference_and_flag in intrinsics; the plain loop is what other machines run. Both must give
// the same bits, at the edges of every range too (saturated samples, a noise estimate at 0 or at its maximum).
TEST(CpuKernels, ReferenceAndFlagEqualsThePlainLoop) {
    constexpr int channels = 128;
    constexpr std::int32_t sample_max = (1 << (HwConfig::sample_bits - 1)) - 1;
    constexpr std::int32_t noise_max = (1 << HwConfig::noise_bits) - 1;
    const auto base = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    std::mt19937 rng(5);
    auto pick = [&rng](std::int32_t low, std::int32_t high) {
        return std::uniform_int_distribution<std::int32_t>(low, high)(rng);
    };
    for (const hw::Polarity polarity : {hw::Polarity::negative, hw::Polarity::positive, hw::Polarity::both})
        for (const bool rule : {false, true})
            for (const bool warm : {false, true})
                for (int width : {1, 7, 16, 100}) {
                    SCOPED_TRACE("polarity " + std::to_string(static_cast<int>(polarity)) + (rule ? ", rule" : "") +
                                 (warm ? ", warm" : ", warm-up") + ", width " + std::to_string(width));
                    auto params = std::make_unique<HwParams>(*base);
                    params->polarity = polarity;
                    params->spatial_gate_gain = rule ? params->threshold_gain * 3 / 4 : 0;
                    const cpu::ChannelRun run{3, 3 + width, 0};
                    const std::int32_t mean = pick(-5000, 5000);
                    std::vector<std::int32_t> filtered(channels);
                    auto state = std::make_unique<hw::DetectorState<HwConfig>>();
                    for (int ch = 0; ch < channels; ++ch) {
                        const int kind = pick(0, 9);
                        filtered[ch] = kind == 0   ? sample_max + 9000
                                       : kind == 1 ? -sample_max - 9000
                                                   : pick(-4000, 4000);
                        state->noise[ch] = kind == 2   ? 0
                                           : kind == 3 ? noise_max
                                                       : pick(0, 9000); // thresholds near the samples
                        state->hold[ch] = pick(0, 2) == 0 ? pick(1, 40) : 0;
                        state->searching[ch] = static_cast<std::uint8_t>(pick(0, 5) == 0);
                        state->opposite_run[ch] = pick(-4000, 4000);
                    }
                    auto plain = std::make_unique<hw::DetectorState<HwConfig>>(*state);
                    std::vector<std::int32_t> referenced(channels, -7), plain_referenced(channels, -7);
                    const std::uint64_t frame = warm ? params->warmup_frames : 0;
                    const bool any =
                        cpu::reference_and_flag(*state, *params, run, mean, frame, filtered.data(), referenced.data());
                    auto loop = rule ? cpu::reference_and_flag_loop<true> : cpu::reference_and_flag_loop<false>;
                    const bool plain_any =
                        loop(filtered.data(), plain_referenced.data(), plain->noise, plain->hold, plain->searching,
                             plain->attention, plain->level, run.begin, run.end, mean,
                             warm ? params->noise_step_slow : params->noise_step_fast, params->threshold_gain,
                             params->spatial_gate_gain, warm && polarity != hw::Polarity::positive,
                             warm && polarity != hw::Polarity::negative, plain->opposite_run,
                             polarity == hw::Polarity::both ? 0 : (polarity == hw::Polarity::negative ? 1 : -1));
                    EXPECT_EQ(any, plain_any);
                    EXPECT_EQ(referenced, plain_referenced);
                    for (int ch = 0; ch < channels; ++ch) {
                        ASSERT_EQ(state->noise[ch], plain->noise[ch]) << "noise of channel " << ch;
                        ASSERT_EQ(state->hold[ch], plain->hold[ch]) << "hold of channel " << ch;
                        ASSERT_EQ(state->opposite_run[ch], plain->opposite_run[ch]) << "run of channel " << ch;
                        ASSERT_EQ(state->attention[ch], plain->attention[ch]) << "attention of channel " << ch;
                        if (rule) {
                            ASSERT_EQ(state->level[ch], plain->level[ch]) << "level of channel " << ch;
                        }
                    }
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
