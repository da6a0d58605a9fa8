// Co-simulation of the SystemVerilog engine (hw_sim/rtl) against L1, bit for bit: every referenced sample (the
// core's monitor port), every event and every sorted spike (label, features, snippet, table writes at their samples),
// on random vectors, corner cases and simulated recordings, with and without random idle cycles on the input and
// back-pressure on the outputs.
#include "backend/backend.hpp"
#include "backend/detect_settings.hpp"
#include "detect_core_sim.hpp"
#include "io/npy.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "sort/sort_settings.hpp"
#include "spikeline/hw/detector.hpp"
#include "temp_dir_test.hpp"
#include "test_sorter.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace spikeline {
namespace {

using hw::SpikeEvent;

std::vector<std::int16_t> simulate(int channels, double seconds, std::uint64_t seed) {
    sim::SimulationConfig config;
    config.n_channels = channels;
    config.duration_s = seconds;
    config.seed = seed;
    sim::Simulator simulator(config, probe::default_probe(channels));
    std::vector<std::int16_t> data(simulator.info().n_frames * static_cast<std::size_t>(channels));
    for (std::size_t done = 0; done < simulator.info().n_frames;)
        done += simulator.read(&data[done * static_cast<std::size_t>(channels)], simulator.info().n_frames - done);
    return data;
}

struct Outputs {
    std::vector<SpikeEvent> events;
    std::vector<std::int32_t> referenced; ///< frame-major
    std::uint64_t lost = 0;
    std::vector<hw::ArtifactEvent> artifacts;
    std::uint64_t artifact_candidates = 0;
    rtl::CycleStats stats;
};

Outputs run_l1(const HwParams& params, const std::vector<std::int16_t>& data) {
    Outputs run;
    auto state = std::make_unique<hw::DetectState<HwConfig>>();
    hw::reset_detect(*state, params);
    const auto channels = static_cast<std::size_t>(params.n_channels);
    auto emit = [&run](const SpikeEvent& e) { run.events.push_back(e); };
    std::uint64_t artifacts_taken = 0;
    for (std::size_t f = 0; f < data.size() / channels; ++f) {
        hw::detect_one_frame(*state, params, &data[f * channels], emit);
        run.referenced.insert(run.referenced.end(), state->referenced, state->referenced + channels);
        take_logged_artifacts(state->dedup.artifacts, artifacts_taken, run.artifacts);
    }
    hw::detect_flush(*state, params, emit);
    take_logged_artifacts(state->dedup.artifacts, artifacts_taken, run.artifacts);
    run.lost = state->dedup.dropped;
    run.artifact_candidates = state->dedup.artifacts.dropped_candidates;
    return run;
}

Outputs run_rtl(const HwParams& params, const std::vector<std::int16_t>& data, rtl::SimOptions options,
                std::size_t block_frames, int min_channels = 0) {
    options.capture_monitor = true;
    auto core = rtl::make_detect_core_sim(params, options, min_channels);
    Outputs run;
    const auto channels = static_cast<std::size_t>(params.n_channels);
    const std::size_t frames = data.size() / channels;
    for (std::size_t f = 0; f < frames; f += block_frames)
        core->process(&data[f * channels], std::min(block_frames, frames - f), run.events);
    core->finish(run.events);
    run.referenced = core->monitor();
    run.lost = core->read_register(rtl::reg::dropped);
    core->take_artifacts(run.artifacts);
    run.artifact_candidates = core->read_register(rtl::reg::artifact_candidates);
    run.stats = core->stats();
    return run;
}

void expect_bit_exact(const Outputs& expected, const Outputs& actual, int channels) {
    ASSERT_EQ(expected.referenced.size(), actual.referenced.size());
    for (std::size_t i = 0; i < expected.referenced.size(); ++i)
        ASSERT_EQ(expected.referenced[i], actual.referenced[i])
            << "referenced sample differs at frame " << i / static_cast<std::size_t>(channels) << ", channel "
            << i % static_cast<std::size_t>(channels);
    ASSERT_EQ(expected.events.size(), actual.events.size());
    for (std::size_t i = 0; i < expected.events.size(); ++i)
        ASSERT_EQ(expected.events[i], actual.events[i])
            << "event " << i << ": expected sample " << expected.events[i].sample << " channel "
            << expected.events[i].channel << " amplitude " << expected.events[i].amplitude << ", got sample "
            << actual.events[i].sample << " channel " << actual.events[i].channel << " amplitude "
            << actual.events[i].amplitude;
    EXPECT_EQ(expected.lost, actual.lost);
    EXPECT_EQ(expected.artifacts, actual.artifacts);
    EXPECT_EQ(expected.artifact_candidates, actual.artifact_candidates);
}

/// L1 against the core, without and with random idle/back-pressure, in blocks of block_frames.
void check_core(const HwParams& params, const std::vector<std::int16_t>& data, std::size_t min_events,
                std::size_t block_frames = 1000, int min_channels = 0) {
    const Outputs expected = run_l1(params, data);
    ASSERT_GE(expected.events.size(), min_events) << "the input should produce events";
    {
        SCOPED_TRACE("no idle, no back-pressure");
        expect_bit_exact(expected, run_rtl(params, data, {}, block_frames, min_channels), params.n_channels);
    }
    {
        SCOPED_TRACE("random idle and back-pressure");
        rtl::SimOptions stressed;
        stressed.idle_probability = 0.2;
        stressed.backpressure_probability = 0.6;
        stressed.seed = 7;
        expect_bit_exact(expected, run_rtl(params, data, stressed, block_frames / 3 + 1, min_channels),
                         params.n_channels);
    }
}

std::unique_ptr<HwParams> default_params(int channels, std::uint32_t warmup_frames = 300,
                                         const DetectSettings& settings = {}) {
    auto params = make_detect_params(settings, probe::default_probe(channels), 30000);
    params->warmup_frames = warmup_frames;
    return params;
}

/// After a test rewrote group_of: keeps each channel's spatial partners that share its group, in order (the core
/// references a partner with its channel's group mean, so make_detect_params only pairs channels of one group).
void keep_partners_within_groups(HwParams& params) {
    for (int ch = 0; ch < params.n_channels; ++ch) {
        int kept = 0;
        for (int k = 0; k < HwConfig::max_partners; ++k) {
            const int partner = params.partners[ch][k];
            if (partner >= 0 && params.group_of[partner] == params.group_of[ch])
                params.partners[ch][kept++] = static_cast<std::int16_t>(partner);
        }
        for (int k = kept; k < HwConfig::max_partners; ++k)
            params.partners[ch][k] = -1;
    }
}

TEST(RtlCosim, SimulatedRecordingSegment) {
    constexpr int channels = 64;
    const auto data = simulate(channels, 0.4, 3);
    check_core(*default_params(channels), data, 20);
}

TEST(RtlCosim, RandomVectorsAndRandomParameters) {
    std::mt19937 rng(21);
    for (int trial = 0; trial < 3; ++trial) {
        SCOPED_TRACE("trial " + std::to_string(trial));
        const int channels = std::uniform_int_distribution<int>(9, 64)(rng);
        auto params = default_params(channels, std::uniform_int_distribution<std::uint32_t>(0, 200)(rng));
        params->polarity = static_cast<hw::Polarity>(trial % 3);
        params->threshold_gain = std::uniform_int_distribution<std::int32_t>(400, 1200)(rng);
        params->align_window = std::uniform_int_distribution<std::int32_t>(1, 20)(rng);
        params->dead_time = std::uniform_int_distribution<std::int32_t>(0, 40)(rng);
        params->dedup_window = std::uniform_int_distribution<std::int32_t>(0, 30)(rng);
        params->shadow_window = std::uniform_int_distribution<std::int32_t>(0, 128)(rng);
        params->shadow_ratio = std::uniform_int_distribution<std::int32_t>(0, 256)(rng);
        params->noise_step_fast = std::uniform_int_distribution<std::int32_t>(1, 200)(rng);
        params->noise_initial = std::uniform_int_distribution<std::int32_t>(0, 5000)(rng);
        params->artifact_window = std::uniform_int_distribution<std::int32_t>(0, HwConfig::max_artifact_window)(rng);
        params->artifact_blank = std::uniform_int_distribution<std::int32_t>(0, 60)(rng);
        for (int g = 0; g < HwConfig::max_groups; ++g)
            params->artifact_limit[g] = std::uniform_int_distribution<std::int32_t>(0, 20)(rng);
        // random near and far marks on the neighbour lists
        for (int ch = 0; ch < channels; ++ch)
            for (int k = 0; k < HwConfig::max_neighbours && params->neighbours[ch][k] >= 0; ++k)
                params->neighbours[ch][k] = static_cast<std::int16_t>(
                    (params->neighbours[ch][k] & (hw::kFarNeighbour - 1)) | (rng() % 2 ? hw::kFarNeighbour : 0));
        // random shanks and a few unreferenced channels
        const int groups = std::uniform_int_distribution<int>(1, 4)(rng);
        std::vector<int> members(static_cast<std::size_t>(groups));
        for (int ch = 0; ch < channels; ++ch) {
            const int group = std::uniform_int_distribution<int>(-1, groups - 1)(rng);
            params->group_of[ch] = static_cast<std::int16_t>(group);
            if (group >= 0)
                ++members[static_cast<std::size_t>(group)];
        }
        for (int g = 0; g < groups; ++g)
            params->group_inverse_size[g] =
                members[static_cast<std::size_t>(g)] ? 65536 / members[static_cast<std::size_t>(g)] : 0;
        keep_partners_within_groups(*params);
        std::normal_distribution<double> noise(0, 40);
        std::uniform_int_distribution<int> spike(-3000, 3000);
        std::vector<std::int16_t> data(2000 * static_cast<std::size_t>(channels));
        for (auto& v : data)
            v = static_cast<std::int16_t>(
                std::clamp(noise(rng) + (rng() % 200 == 0 ? spike(rng) : 0), -32768.0, 32767.0));
        check_core(*params, data, 10, 333);
    }
}

TEST(RtlCosim, SaturationFullScaleStepsAndAllChannelsSpikingAtOnce) {
    constexpr int channels = 64;
    constexpr std::size_t frames = 3000;
    std::mt19937 rng(3);
    std::normal_distribution<double> noise(0, 30);
    std::vector<std::int16_t> data(frames * channels);
    for (std::size_t f = 0; f < frames; ++f)
        for (int ch = 0; ch < channels; ++ch) {
            double v = noise(rng);
            if (f > 1200 && f < 1500) // full-scale square wave: saturates the filter states
                v = ((f / 50) % 2) ? 32767 : -32768;
            if (f % 400 == 399) // every channel spikes in the same frame (1999: the last frame of a block)
                v = -2000 - ch * 10;
            if (ch == 7 && f > 2000) // one channel stuck at the rail
                v = -32768;
            data[f * channels + static_cast<std::size_t>(ch)] =
                static_cast<std::int16_t>(std::clamp(v, -32768.0, 32767.0));
        }
    DetectSettings without_rejection;
    without_rejection.artifact_rejection = false;
    {
        SCOPED_TRACE("artefact rejection off");
        check_core(*default_params(channels, 300, without_rejection), data, 15, 1000);
    }
    {
        SCOPED_TRACE("artefact rejection on");
        DetectSettings small_shank; // see RtlAdversarial.AllChannelsBurstingTogether
        small_shank.artifact_reach_um = 50;
        const auto params = default_params(channels, 300, small_shank);
        EXPECT_GE(run_l1(*params, data).artifacts.size(), 1u) << "the square wave";
        check_core(*params, data, 1, 1000);
    }
}

TEST(RtlCosim, BackPressureReachesTheInput) {
    // Many events and an m_axis that rarely takes one: the event FIFO, the candidate FIFO and the frame slots fill,
    // and s_axis_tready must fall without losing or reordering anything.
    constexpr int channels = 64;
    std::mt19937 rng(8);
    std::normal_distribution<double> noise(0, 40);
    std::vector<std::int16_t> data(1500 * static_cast<std::size_t>(channels));
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<std::int16_t>(noise(rng) + (rng() % 25 == 0 ? -2500 : 0));
    DetectSettings many_events; // one neighbourhood of 50 um: fewer candidates merge
    many_events.dedup_radius_um = 50;
    auto params = default_params(channels, 100, many_events);
    const Outputs expected = run_l1(*params, data);
    ASSERT_GT(expected.events.size(), 500u);
    rtl::SimOptions slow_sink;
    slow_sink.backpressure_probability = 0.99;
    const Outputs actual = run_rtl(*params, data, slow_sink, 1500);
    expect_bit_exact(expected, actual, channels);
    EXPECT_GT(actual.stats.input_stalls, 10000u) << "m_axis back-pressure should have stalled s_axis";
}

TEST(RtlCosim, StartBeginsAFreshStreamOnTheSameCore) {
    // START after a finished stream clears every channel's state, the frame count and the pending list.
    constexpr int channels = 64;
    const auto data = simulate(channels, 0.1, 21);
    const auto params = default_params(channels, 150);
    const Outputs expected = run_l1(*params, data);
    ASSERT_FALSE(expected.events.empty());
    auto core = rtl::make_detect_core_sim(*params);
    for (int stream = 0; stream < 2; ++stream) {
        SCOPED_TRACE("stream " + std::to_string(stream));
        if (stream > 0)
            core->configure(*params);
        std::vector<SpikeEvent> events;
        core->process(data.data(), data.size() / channels, events);
        core->finish(events);
        EXPECT_TRUE(events == expected.events);
        EXPECT_EQ(core->read_register(rtl::reg::frames_low), data.size() / channels);
        EXPECT_EQ(core->read_register(rtl::reg::events_out), expected.events.size());
    }
}

TEST(RtlCosim, OtherSettings) {
    constexpr int channels = 64;
    const auto data = simulate(channels, 0.1, 5);
    DetectSettings both;
    both.polarity = hw::Polarity::both;
    both.threshold_sigma = 4.0;
    DetectSettings positive;
    positive.polarity = hw::Polarity::positive;
    positive.common_reference = false;
    positive.threshold_sigma = 3.5;
    DetectSettings narrow;
    narrow.band_low_hz = 500;
    narrow.band_high_hz = 3000;
    narrow.align_ms = 0.0; // a one-sample window: the crossing itself is the peak
    narrow.dead_time_ms = 0.0;
    narrow.dedup_ms = 1.0;
    DetectSettings spatial; // partners in rows above and below: earlier and later channels of the frame
    spatial.threshold_sigma = 5.0;
    spatial.spatial_sigma = 5.75;
    DetectSettings spatial_both = spatial;
    spatial_both.polarity = hw::Polarity::both;
    spatial_both.common_reference = false;
    spatial_both.spatial_sigma = 4.0; // many gate crossings pass
    for (const DetectSettings& settings : {both, positive, narrow, spatial, spatial_both}) {
        auto params = make_detect_params(settings, probe::default_probe(channels), 30000);
        params->warmup_frames = 300;
        check_core(*params, data, 5, 500);
    }
}

TEST(RtlCosim, ClippedReferenceOverThreeReferencePeriods) {
    // The common reference's clip levels (hw/common_reference.hpp) are taken from the noise tracker at frames 0, 4096
    // and 8192 and used through the next period, from alternating banks. Large spikes on a few channels are clipped
    // out of their group's mean; spikes on 23, 24 and 25 of group 0's 32 channels sit around the switch to the plain
    // mean (24 x 2048 = 3 x 2^14 is not above it), and a common-mode square wave on every channel takes the plain mean.
    constexpr int channels = 64;
    constexpr std::size_t period = HwConfig::reference_period;
    constexpr std::size_t frames = 2 * period + 700;
    DetectSettings settings;
    settings.artifact_rejection = false; // the groups below are not the probe's shanks
    auto params = default_params(channels, 300, settings);
    params->reference_clip_gain = 768; // 3 x median |x|
    // frame 0's estimate gives the second period's clip levels: non-zero ones (about the filtered noise's median |x|)
    params->noise_initial = 3000;
    // groups of 32 and 31 channels, and one channel in none
    for (int ch = 0; ch < channels; ++ch)
        params->group_of[ch] = static_cast<std::int16_t>(ch < 32 ? 0 : (ch < channels - 1 ? 1 : -1));
    std::fill(std::begin(params->group_inverse_size), std::end(params->group_inverse_size), 0);
    params->group_inverse_size[0] = 2048; // round(2^16 / 32)
    params->group_inverse_size[1] = 2114; // round(2^16 / 31)
    keep_partners_within_groups(*params);

    std::mt19937 rng(17);
    std::normal_distribution<double> noise(0, 30);
    // a trough and a slow after-hyperpolarisation, the shape the plain mean carried to every other channel
    const double spike[] = {-0.3, -1.0, -0.8, -0.4, 0.1, 0.3, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05};
    const std::size_t spike_length = std::size(spike);
    std::vector<std::int16_t> data(frames * channels);
    for (std::size_t f = 0; f < frames; ++f)
        for (int ch = 0; ch < channels; ++ch) {
            double v = noise(rng);
            const std::size_t phase = (f + 37 * static_cast<std::size_t>(ch)) % 240;
            if ((ch == 3 || ch == 11 || ch == 40 || ch == 52) && phase < spike_length)
                v += 4000 * spike[phase];
            // every 300 frames from 4500, a spike on the first 23, 24 or 25 channels of group 0
            const std::size_t burst = f >= 4500 ? (f - 4500) / 300 : 0;
            if (f >= 4500 && (f - 4500) % 300 < spike_length && ch < 23 + static_cast<int>(burst % 3))
                v += 3000 * spike[(f - 4500) % 300];
            if (f >= 7000 && f < 7060) // common mode on every channel
                v += (f / 15) % 2 ? 2500 : -2500;
            data[f * channels + static_cast<std::size_t>(ch)] =
                static_cast<std::int16_t>(std::clamp(v, -32768.0, 32767.0));
        }

    // The clip is zero through the first period (the plain mean) and changes the reference in the next two.
    // (Without noise_initial, frame 0's zero estimate would keep the plain mean through the second period too.)
    const Outputs clipped = run_l1(*params, data);
    auto plain_params = std::make_unique<HwParams>(*params);
    plain_params->reference_clip_gain = 0;
    const Outputs plain = run_l1(*plain_params, data);
    std::size_t differing[3] = {};
    for (std::size_t i = 0; i < clipped.referenced.size(); ++i)
        if (clipped.referenced[i] != plain.referenced[i])
            ++differing[i / channels / period];
    EXPECT_EQ(differing[0], 0u);
    EXPECT_GT(differing[1], 1000u);
    EXPECT_GT(differing[2], 100u);

    check_core(*params, data, 20, 1000);
    EXPECT_EQ(rtl::make_detect_core_sim(*params)->read_register(rtl::reg::reference_clip_gain), 768u);
}

TEST(RtlCosim, FewerChannelsThanThePipelineIsDeep) {
    // Below 8 channels a frame waits for the previous one to leave each stage's pipeline.
    for (int channels : {1, 3, 5}) {
        SCOPED_TRACE(std::to_string(channels) + " channels");
        std::mt19937 rng(static_cast<unsigned>(channels));
        std::normal_distribution<double> noise(0, 40);
        std::vector<std::int16_t> data(3000 * static_cast<std::size_t>(channels));
        for (std::size_t i = 0; i < data.size(); ++i)
            data[i] = static_cast<std::int16_t>(noise(rng) + (i % 97 == 0 ? -1500 : 0));
        auto params = default_params(channels);
        params->group_of[0] = -1; // a lone channel minus its own mean is zero
        keep_partners_within_groups(*params);
        check_core(*params, data, 5, 250);
    }
}

TEST(RtlCosim, SimulatedSegmentOnThe1024ChannelCore) {
    constexpr int channels = 1024;
    const auto data = simulate(channels, 0.05, 13);
    auto params = default_params(channels, 150);
    const Outputs expected = run_l1(*params, data);
    ASSERT_GE(expected.events.size(), 20u);
    expect_bit_exact(expected, run_rtl(*params, data, {}, 500), channels);
}

TEST(RtlCosim, SmallRecordingOnTheLargeCore) {
    // 64 channels on the 1024-channel core: N_CHANNELS below MAX_CHANNELS
    constexpr int channels = 64;
    const auto data = simulate(channels, 0.05, 15);
    auto params = default_params(channels, 150);
    const Outputs expected = run_l1(*params, data);
    expect_bit_exact(expected, run_rtl(*params, data, {}, 500, 1024), channels);
}

TEST(RtlCosim, RejectsWhatTheCoreCannotHold) {
    auto params = default_params(64);
    params->n_channels = 1025;
    EXPECT_THROW(rtl::make_detect_core_sim(*params), rtl::UnsupportedParams);
    params = default_params(64);
    params->threshold_gain = 70000;
    EXPECT_THROW(rtl::make_detect_core_sim(*params), rtl::UnsupportedParams);
    params = default_params(64);
    params->group_of[3] = 64;
    EXPECT_THROW(rtl::make_detect_core_sim(*params), rtl::UnsupportedParams);
    params = default_params(64);
    params->reference_clip_gain = 70000;
    EXPECT_THROW(rtl::make_detect_core_sim(*params), rtl::UnsupportedParams);
}

TEST(RtlCycles, OneSamplePerClockWithoutBackPressure) {
    constexpr int channels = 64;
    const auto data = simulate(channels, 0.1, 3);
    const Outputs run = run_rtl(*default_params(channels), data, {}, 3000);
    const double clocks = static_cast<double>(run.stats.last_sample_cycle - run.stats.first_sample_cycle + 1);
    const double rate = static_cast<double>(run.stats.samples_in) / clocks;
    RecordProperty("samples_per_clock", std::to_string(rate));
    EXPECT_GE(rate, 0.99);
}

TEST(RtlBackend, VerilatorBackendSaysWhichSettingsTheCoreCannotHold) {
    auto params = default_params(64);
    params->threshold_gain = 1 << 20;
    try {
        make_backend({"verilator", 1}, *params);
        FAIL() << "expected an InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("threshold gain"), std::string::npos) << e.what();
    }
    EXPECT_EQ(make_backend({"verilator", 1}, *default_params(64))->name(), "verilator");
}

// ---- the sorting stage ----

/// Random table writes at the frames before which they are queued, as motion tracking sends them.
std::vector<std::pair<std::size_t, std::vector<hw::TableWrite>>>
test_writes(const HwSortParams& sorter, std::size_t frames, std::size_t block, std::mt19937& rng) {
    std::vector<std::pair<std::size_t, std::vector<hw::TableWrite>>> batches;
    for (std::size_t at = block; at < frames; at += block) {
        std::vector<hw::TableWrite> batch;
        std::uint64_t sample = at;
        for (int i = 0; i < 6; ++i) {
            sample += rng() % 200;
            hw::TableWrite write{};
            write.sample = sample;
            write.channel = static_cast<std::int32_t>(rng() % static_cast<unsigned>(sorter.n_channels));
            write.slot = static_cast<std::int32_t>(rng() % 9) - 1;
            write.n_entries = static_cast<std::int32_t>(rng() % 9);
            const int from = static_cast<int>(rng() % static_cast<unsigned>(sorter.n_channels));
            write.entry = sorter.entries[from][rng() % HwSortConfig::max_entries];
            batch.push_back(write);
        }
        batches.emplace_back(at, batch);
    }
    return batches;
}

SortOutput sort_with_l1(const HwParams& detect, const std::shared_ptr<HwSortParams>& sorter,
                        const std::vector<std::int16_t>& data,
                        const std::vector<std::pair<std::size_t, std::vector<hw::TableWrite>>>& writes,
                        std::size_t block) {
    auto backend = make_reference_backend(detect);
    backend->enable_sorting(sorter, true);
    const auto channels = static_cast<std::size_t>(detect.n_channels);
    std::vector<SpikeEvent> events;
    auto next = writes.begin();
    for (std::size_t f = 0; f < data.size() / channels; f += block) {
        for (; next != writes.end() && next->first == f; ++next)
            backend->queue_table_writes(next->second);
        backend->process(&data[f * channels], std::min(block, data.size() / channels - f), events);
    }
    backend->finish(events);
    SortOutput out;
    backend->take_sorted(out);
    return out;
}

struct RtlSorted {
    SortOutput sorted;
    rtl::CycleStats stats;
    std::uint32_t dropped_events = 0, dropped_writes = 0;
};

RtlSorted sort_with_rtl(const HwParams& detect, const HwSortParams& sorter, const std::vector<std::int16_t>& data,
                        const std::vector<std::pair<std::size_t, std::vector<hw::TableWrite>>>& writes,
                        std::size_t block, const rtl::SimOptions& options, int min_channels = 0) {
    auto core = rtl::make_detect_core_sim(detect, options, min_channels);
    core->configure_sorting(sorter, true);
    const auto channels = static_cast<std::size_t>(detect.n_channels);
    std::vector<SpikeEvent> events;
    RtlSorted run;
    auto next = writes.begin();
    for (std::size_t f = 0; f < data.size() / channels; f += block) {
        for (; next != writes.end() && next->first == f; ++next)
            core->queue_table_writes(next->second);
        core->process(&data[f * channels], std::min(block, data.size() / channels - f), events);
        core->take_sorted(run.sorted.spikes, run.sorted.snippets);
    }
    core->finish(events);
    core->take_sorted(run.sorted.spikes, run.sorted.snippets);
    run.stats = core->stats();
    run.dropped_events = core->read_register(rtl::sort_reg::dropped_events);
    run.dropped_writes = core->read_register(rtl::sort_reg::dropped_writes);
    return run;
}

void expect_same_sorting(const SortOutput& expected, const SortOutput& actual) {
    ASSERT_EQ(expected.spikes.size(), actual.spikes.size());
    for (std::size_t i = 0; i < expected.spikes.size(); ++i) {
        const hw::SortedSpike &e = expected.spikes[i], &a = actual.spikes[i];
        ASSERT_EQ(e.event, a.event) << "spike " << i;
        ASSERT_EQ(e.unit, a.unit) << "spike " << i << " (sample " << e.event.sample << ", channel " << e.event.channel
                                  << ")";
        ASSERT_EQ(e.template_id, a.template_id) << "spike " << i;
        for (int v = 0; v < HwSortConfig::n_values; ++v)
            ASSERT_EQ(e.features[v], a.features[v]) << "spike " << i << " feature " << v;
    }
    ASSERT_EQ(expected.snippets.size(), actual.snippets.size());
    for (std::size_t i = 0; i < expected.snippets.size(); ++i)
        ASSERT_EQ(expected.snippets[i], actual.snippets[i]) << "snippet value " << i;
}

class RtlSort : public ::testing::Test {
protected:
    static constexpr int kChannels = 64;
    void SetUp() override {
        data_ = simulate(kChannels, 1.0, 41);
        detect_ = default_params(kChannels, 300);
        sorter_ = testing::test_sorter(*detect_, data_, rng_);
    }
    std::mt19937 rng_{5};
    std::vector<std::int16_t> data_;
    std::unique_ptr<HwParams> detect_;
    std::shared_ptr<HwSortParams> sorter_;
};

TEST_F(RtlSort, LabelsFeaturesAndSnippetsEqualL1WithTableWritesAndBackPressure) {
    const std::size_t frames = data_.size() / kChannels;
    const auto writes = test_writes(*sorter_, frames, 1500, rng_);
    const SortOutput expected = sort_with_l1(*detect_, sorter_, data_, writes, 1500);
    ASSERT_GT(expected.spikes.size(), 80u);
    std::size_t labelled = 0, anonymous = 0;
    for (const hw::SortedSpike& spike : expected.spikes) {
        labelled += spike.unit >= 0;
        anonymous += spike.unit >= 0 && spike.template_id < 0;
    }
    ASSERT_GT(labelled, 10u) << "the gates should accept some spikes";
    ASSERT_LT(labelled, expected.spikes.size() - 10) << "and reject others";
    EXPECT_GT(anonymous, 0u) << "an entry with a negative template id should match";
    {
        SCOPED_TRACE("no idle, no back-pressure");
        const RtlSorted run = sort_with_rtl(*detect_, *sorter_, data_, writes, 1500, {});
        expect_same_sorting(expected, run.sorted);
        EXPECT_EQ(run.dropped_events, 0u);
        EXPECT_EQ(run.dropped_writes, 0u);
        EXPECT_EQ(run.stats.input_stalls, 0u) << "the sorting stage never holds up the detection core";
        EXPECT_EQ(run.stats.spike_latency_cycles.size(), expected.spikes.size());
    }
    {
        SCOPED_TRACE("random idle and back-pressure");
        rtl::SimOptions stressed;
        stressed.idle_probability = 0.2;
        stressed.backpressure_probability = 0.5;
        stressed.seed = 11;
        expect_same_sorting(expected, sort_with_rtl(*detect_, *sorter_, data_, writes, 1500, stressed).sorted);
    }
}

TEST_F(RtlSort, WideSnippetsAndTheStreamsEdges) {
    // The widest window (64 samples: 8 reads per row), spikes within `pre` of the first frame and within `post` of
    // the last (zeros there, as L1), on the 1024-channel core.
    auto wide = std::make_shared<HwSortParams>(*sorter_);
    wide->pre = 20;
    wide->post = 43;
    std::uniform_int_distribution<int> basis(-16384, 16383);
    for (int p = 0; p < HwSortConfig::n_features; ++p)
        for (int t = 0; t < HwSortConfig::max_snippet_samples; ++t)
            wide->basis[p][t] = static_cast<std::int16_t>(basis(rng_));
    std::vector<std::int16_t> data(data_.begin(), data_.begin() + 4000 * kChannels);
    for (int ch = 0; ch < kChannels; ch += 3) { // spikes at both ends of the stream
        data[static_cast<std::size_t>(ch)] = -8000;
        data[(3990 + static_cast<std::size_t>(ch % 9)) * kChannels + static_cast<std::size_t>(ch)] = -8000;
    }
    auto detect = default_params(kChannels, 0);
    detect->noise_initial = 2000; // thresholds from the first frame on
    detect->artifact_window = 0;  // a third of the channels at once would be an artefact
    const SortOutput expected = sort_with_l1(*detect, wide, data, {}, 4000);
    ASSERT_GT(expected.spikes.size(), 20u);
    const bool early = std::any_of(expected.spikes.begin(), expected.spikes.end(),
                                   [&](const hw::SortedSpike& s) { return s.event.sample < 20; });
    const bool late = std::any_of(expected.spikes.begin(), expected.spikes.end(),
                                  [&](const hw::SortedSpike& s) { return s.event.sample + 43 >= 4000; });
    EXPECT_TRUE(early && late) << "spikes at both edges";
    expect_same_sorting(expected, sort_with_rtl(*detect, *wide, data, {}, 700, {}, 1024).sorted);
}

TEST_F(RtlSort, EveryChannelSpikingAtOnceIsSortedAsL1SortsIt) {
    // Bursts of 64 events in one frame (every channel at once, alternating sign) reach the stage's event FIFO
    // together: none is dropped, each is sorted as L1 sorts it, and the stage takes every event the core sends.
    std::vector<std::int16_t> data(data_.begin(), data_.begin() + 6000 * kChannels);
    for (std::size_t f = 700; f < 6000; f += 700)
        for (int ch = 0; ch < kChannels; ++ch)
            data[f * kChannels + static_cast<std::size_t>(ch)] = static_cast<std::int16_t>(ch % 2 ? 9000 : -9000);
    auto detect = default_params(kChannels, 300);
    detect->polarity = hw::Polarity::both;
    detect->artifact_window = 0;                // no artefact rejection: the bursts are the stage's load
    for (auto& neighbours : detect->neighbours) // no spatial de-duplication: every channel's event survives
        std::fill(std::begin(neighbours), std::end(neighbours), std::int16_t{-1});
    const SortOutput expected = sort_with_l1(*detect, sorter_, data, {}, 6000);
    const auto near_burst = std::count_if(expected.spikes.begin(), expected.spikes.end(), [](const hw::SortedSpike& s) {
        return s.event.sample % 700 < 10 || s.event.sample % 700 > 690;
    });
    ASSERT_GT(near_burst, 5 * kChannels / 2) << "the bursts should give many events";
    const RtlSorted run = sort_with_rtl(*detect, *sorter_, data, {}, 2000, {});
    expect_same_sorting(expected, run.sorted);
    EXPECT_EQ(run.dropped_events, 0u);
    EXPECT_EQ(run.stats.spikes_out, run.stats.events_out) << "every event the core sent was sorted";
}

TEST_F(RtlSort, RejectsASorterTheStageCannotHold) {
    auto core = rtl::make_detect_core_sim(*detect_);
    HwSortParams too_wide = *sorter_;
    too_wide.post = 60;
    EXPECT_THROW(core->configure_sorting(too_wide, false), rtl::UnsupportedParams);
}

class RtlCli : public testing::TempDirTest {
protected:
    int run_cli(const std::string& arguments) {
        const std::string command = std::string(SPIKELINE_CLI) + " " + arguments + " 2> " + (dir_ / "err.txt").string();
        return std::system(command.c_str());
    }
    std::string read_file(const std::filesystem::path& path) {
        std::ifstream in(path, std::ios::binary);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }
};

TEST_F(RtlCli, DetectWithTheVerilatorBackendWritesTheCpuBackendsFiles) {
    const std::string recording = (dir_ / "sim" / "recording.bin").string();
    ASSERT_EQ(run_cli("simulate --out " + (dir_ / "sim").string() + " --channels 64 --duration 2 --seed 5 -q"), 0)
        << read_file(dir_ / "err.txt");
    ASSERT_EQ(run_cli("detect " + recording + " --out " + (dir_ / "cpu").string() + " --threads 2 -q"), 0)
        << read_file(dir_ / "err.txt");
    ASSERT_EQ(run_cli("detect " + recording + " --out " + (dir_ / "rtl").string() + " --backend verilator -q"), 0)
        << read_file(dir_ / "err.txt");
    for (const char* file : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy"}) {
        const std::string expected = read_file(dir_ / "cpu" / file);
        ASSERT_GT(expected.size(), 600u) << file << " should hold dozens of events";
        EXPECT_TRUE(expected == read_file(dir_ / "rtl" / file)) << file << " differs between cpu and verilator";
    }
    EXPECT_NE(read_file(dir_ / "rtl" / "detect_info.json").find("\"verilator\""), std::string::npos);
    const auto info = nlohmann::json::parse(read_file(dir_ / "rtl" / "detect_info.json"));
    const auto& rtl = info.at("rtl");
    EXPECT_EQ(rtl.at("samples_in").get<std::uint64_t>(), 2u * 30000u * 64u);
    EXPECT_GE(rtl.at("samples_per_clock").get<double>(), 0.99);
    // Fed one sample per clock (a 64-channel frame in 64 clocks, against 8 333 at line rate), the core waits only
    // briefly, while de-duplication decides the extra candidates the spatial rule finds beside a spike.
    EXPECT_LT(rtl.at("input_stall_clocks").get<std::uint64_t>(), 4u * 30000u * 64u / 1000u);
    EXPECT_EQ(rtl.at("latency_to").get<std::string>(), "detection event");
    EXPECT_GT(rtl.at("latency_clocks").at("median").get<std::uint64_t>(), 64u * 9u) << "align + dedup windows";
    EXPECT_FALSE(nlohmann::json::parse(read_file(dir_ / "cpu" / "detect_info.json")).contains("rtl"));
}

TEST_F(RtlCli, SortWithTheVerilatorBackendWritesTheCpuBackendsPhyFolder) {
    const std::string recording = (dir_ / "sim" / "recording.bin").string();
    // Fast drift, so that the units move during the labelling pass and the backends apply table writes.
    ASSERT_EQ(
        run_cli("simulate --out " + (dir_ / "sim").string() + " --channels 64 --duration 4 --seed 6 --drift 10 -q"), 0)
        << read_file(dir_ / "err.txt");
    for (const std::string backend : {"cpu", "verilator"})
        ASSERT_EQ(run_cli("sort " + recording + " --out " + (dir_ / backend).string() + " --backend " + backend +
                          " --calibration-s 2 -q"),
                  0)
            << read_file(dir_ / "err.txt");
    int compared = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_ / "cpu")) {
        const auto name = entry.path().filename();
        // spikeline_sort.json names the backend and holds timings; manifest.json holds its hash
        if (name == "spikeline_sort.json" || name == "manifest.json")
            continue;
        EXPECT_TRUE(read_file(entry.path()) == read_file(dir_ / "verilator" / name))
            << name << " differs between cpu and verilator";
        ++compared;
    }
    EXPECT_EQ(compared, 29) << "the Phy folder (sparse templates, cluster_<metric>.tsv, whitening, shanks), "
                               "sorter.json, the motion estimate, the unit updates and the artefacts";
    EXPECT_GT(std::filesystem::file_size(dir_ / "cpu" / "spike_clusters.npy"), 600u) << "dozens of sorted spikes";
    EXPECT_GT(io::read_npy(dir_ / "cpu" / "unit_updates.npy").shape.at(0), 10u) << "the units followed the drift";
    const auto info = nlohmann::json::parse(read_file(dir_ / "verilator" / "spikeline_sort.json"));
    const auto& rtl = info.at("rtl");
    EXPECT_EQ(rtl.at("latency_to").get<std::string>(), "sorted spike");
    // Fed one sample per clock (a 64-channel frame in 64 clocks, against 8 333 at line rate), the core waits only
    // briefly, while de-duplication decides the extra candidates the spatial rule finds beside a spike.
    EXPECT_LT(rtl.at("input_stall_clocks").get<std::uint64_t>(), 4u * 30000u * 64u / 1000u);
    EXPECT_GT(rtl.at("latency_events").get<std::uint64_t>(), 50u);
    // a spike leaves once frame peak + post (30) has been referenced
    EXPECT_GT(rtl.at("latency_clocks").at("median").get<std::uint64_t>(), 64u * 30u);
    EXPECT_LE(rtl.at("latency_clocks").at("max").get<std::uint64_t>(), 250000u) << "1 ms at 250 MHz";
}

TEST_F(RtlCli, SortOfAStepDriftWithTheVerilatorBackendWritesTheCpuBackendsPhyFolder) {
    // A step of the probe mid-recording: units are rendered at their new place and reach the RTL stage as table
    // writes, applied at the same samples as the cpu backend's L1 stage.
    const std::string recording = (dir_ / "sim" / "recording.bin").string();
    ASSERT_EQ(run_cli("simulate --out " + (dir_ / "sim").string() +
                      " --channels 64 --duration 3 --seed 9 --drift-model step --drift-um 30 --drift-step-s 1.5 -q"),
              0)
        << read_file(dir_ / "err.txt");
    // Two passes (the default: the second labels with the sorter the first learnt) and one (learning's new units
    // reach the stage as table writes while it labels).
    for (const std::string passes : {"", " --one-pass"})
        for (const std::string backend : {"cpu", "verilator"}) {
            const std::filesystem::path out = dir_ / (backend + (passes.empty() ? "2" : "1"));
            ASSERT_EQ(run_cli("sort " + recording + " --out " + out.string() + " --backend " + backend +
                              " --calibration-s 1 -q" + passes),
                      0)
                << read_file(dir_ / "err.txt");
        }
    for (const std::string passes : {"1", "2"})
        for (const auto& entry : std::filesystem::directory_iterator(dir_ / ("cpu" + passes))) {
            const auto name = entry.path().filename();
            // spikeline_sort.json names the backend and holds timings; manifest.json holds its hash
            if (name == "spikeline_sort.json" || name == "manifest.json")
                continue;
            EXPECT_TRUE(read_file(entry.path()) == read_file(dir_ / ("verilator" + passes) / name))
                << name << " differs between cpu and verilator (" << passes << " passes)";
        }
    EXPECT_GT(io::read_npy(dir_ / "cpu1" / "unit_updates.npy").shape.at(0), 0u) << "learning added units";
    EXPECT_NE(read_file(dir_ / "cpu1" / "spike_clusters.npy"), read_file(dir_ / "cpu2" / "spike_clusters.npy"));
}

class RtlTrace : public testing::TempDirTest {};

TEST_F(RtlTrace, WritesAnFstWaveformOnlyWhenAsked) {
    constexpr int channels = 16;
    const auto params = default_params(channels);
    std::vector<std::int16_t> data(50 * channels, 100);
    rtl::SimOptions traced;
    traced.trace_path = (dir_ / "core.fst").string();
    std::vector<SpikeEvent> events;
    {
        auto core = rtl::make_detect_core_sim(*params, traced);
        core->process(data.data(), 50, events);
        core->finish(events);
    }
    ASSERT_TRUE(std::filesystem::is_regular_file(dir_ / "core.fst"));
    EXPECT_GT(std::filesystem::file_size(dir_ / "core.fst"), 1000u);
    auto untraced = rtl::make_detect_core_sim(*params);
    untraced->process(data.data(), 50, events);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()), 1);
}

// Adversarial input at the line rate: one 30 kHz frame per 8333 clocks at 250 MHz, whatever its channel count.
// Whatever the samples, the core must never stall the input, every event must leave within the documented bound and
// everything must equal L1, with artefact rejection on and off.
constexpr std::uint64_t kLinePeriodClocks = 8333;

// Peak sample -> event on m_axis: the peak's frame plus dedup_window + align_window - 1 frames must have arrived,
// a candidate may wait max_decision_delay more frame ends for its decision, and its last frame takes at most one
// more period through both stages and the frame end's work (hw_sim/README.md).
std::uint64_t latency_bound_clocks(const HwParams& params) {
    const auto frames =
        static_cast<std::uint64_t>(params.dedup_window + params.align_window - 1 + HwConfig::max_decision_delay + 1);
    return (frames + 1) * kLinePeriodClocks;
}

void check_at_line_rate(const HwParams& params, const std::vector<std::int16_t>& data, double backpressure,
                        int min_channels = 0) {
    const Outputs expected = run_l1(params, data);
    rtl::SimOptions line;
    line.frame_period_clocks = kLinePeriodClocks;
    line.backpressure_probability = backpressure;
    line.seed = 11;
    const Outputs actual = run_rtl(params, data, line, 4096, min_channels);
    expect_bit_exact(expected, actual, params.n_channels);
    EXPECT_EQ(actual.stats.input_stalls, 0u) << "the core fell behind the line";
    // Events decided while the stream runs; the end of the stream decides what is left at once.
    const std::uint64_t frames = data.size() / static_cast<std::size_t>(params.n_channels);
    const std::uint64_t bound = latency_bound_clocks(params);
    std::uint64_t worst = 0, checked = 0;
    for (std::size_t i = 0; i < actual.stats.event_latency_cycles.size(); ++i)
        if ((actual.stats.event_latency_samples[i] + 1) * kLinePeriodClocks + bound <= frames * kLinePeriodClocks) {
            worst = std::max(worst, actual.stats.event_latency_cycles[i]);
            ++checked;
        }
    EXPECT_TRUE(checked > 0 || actual.events.empty()) << "latencies of events before the end";
    EXPECT_LE(worst, bound);
    ::testing::Test::RecordProperty("max_latency_clocks", std::to_string(worst));
}

// Noise, then every `period` frames a burst of +-amplitude for `length` samples on every channel, alternating sign
// between channels so that the common reference does not cancel it.
std::vector<std::int16_t> bursts(int channels, std::size_t frames, std::size_t period, std::size_t length,
                                 double amplitude, std::uint64_t seed) {
    std::mt19937 rng(static_cast<std::uint32_t>(seed));
    std::normal_distribution<double> noise(0, 30);
    std::vector<std::int16_t> data(frames * static_cast<std::size_t>(channels));
    for (std::size_t f = 0; f < frames; ++f)
        for (int ch = 0; ch < channels; ++ch) {
            double v = noise(rng);
            if (f >= 400 && (f - 400) % period < length)
                v += ch % 2 ? amplitude : -amplitude;
            data[f * static_cast<std::size_t>(channels) + static_cast<std::size_t>(ch)] =
                static_cast<std::int16_t>(std::clamp(v, -32768.0, 32767.0));
        }
    return data;
}

std::unique_ptr<HwParams> without_rejection(int channels, std::uint32_t warmup_frames = 300) {
    DetectSettings settings;
    settings.artifact_rejection = false;
    return default_params(channels, warmup_frames, settings);
}

TEST(RtlAdversarial, AllChannelsBurstingTogether) {
    constexpr int channels = 64;
    const auto data = bursts(channels, 700, 150, 10, 3000, 5);
    {
        SCOPED_TRACE("artefact rejection on");
        // One 64-contact shank: with the default 150 um reach the limit (45) is above the half of the channels a
        // burst of alternating sign crosses at once; a 50 um reach leaves the fraction's 16.
        DetectSettings small_shank;
        small_shank.artifact_reach_um = 50;
        const auto params = default_params(channels, 300, small_shank);
        EXPECT_EQ(run_l1(*params, data).artifacts.size(), 2u) << "one artefact per burst";
        check_at_line_rate(*params, data, 0.0);
    }
    {
        SCOPED_TRACE("artefact rejection off: bounded by the per-frame limits alone");
        check_at_line_rate(*without_rejection(channels), data, 0.3);
    }
}

TEST(RtlAdversarial, EveryChannelOverThresholdEverySample) {
    // A zero threshold, both polarities, a one-sample window and no dead time: every channel is a candidate in every
    // frame, more than a frame may queue and a frame end may decide.
    constexpr int channels = 64;
    std::mt19937 rng(6);
    std::normal_distribution<double> noise(0, 200);
    std::vector<std::int16_t> data(400 * static_cast<std::size_t>(channels));
    for (auto& v : data)
        v = static_cast<std::int16_t>(noise(rng));
    for (const bool rejection : {false, true}) {
        SCOPED_TRACE(rejection ? "artefact rejection on" : "artefact rejection off");
        auto params = rejection ? default_params(channels, 0) : without_rejection(channels, 0);
        params->threshold_gain = 0;
        params->polarity = hw::Polarity::both;
        params->align_window = 1;
        params->dead_time = 0;
        const Outputs expected = run_l1(*params, data);
        EXPECT_GT(rejection ? expected.artifact_candidates : expected.lost, 1000u);
        check_at_line_rate(*params, data, 0.3);
    }
}

TEST(RtlAdversarial, AlternatingRailsAndInt16Extremes) {
    constexpr int channels = 64;
    constexpr std::size_t frames = 600;
    std::mt19937 rng(9);
    std::vector<std::int16_t> rails(frames * channels), extremes(frames * channels);
    for (std::size_t f = 0; f < frames; ++f)
        for (std::size_t ch = 0; ch < channels; ++ch) {
            // rails: full scale, flipping every sample and between neighbouring channels
            rails[f * channels + ch] = (f + ch) % 2 ? std::int16_t{32767} : std::int16_t{-32768};
            // extremes: the two rails, zero and -1 drawn at random, runs of each
            const std::int16_t values[] = {-32768, 32767, 0, -1};
            extremes[f * channels + ch] =
                f > 0 && rng() % 4 != 0 ? extremes[(f - 1) * channels + ch] : values[rng() % 4];
        }
    for (const bool rejection : {false, true}) {
        SCOPED_TRACE(rejection ? "artefact rejection on" : "artefact rejection off");
        const auto params = rejection ? default_params(channels, 100) : without_rejection(channels, 100);
        {
            SCOPED_TRACE("alternating rails");
            check_at_line_rate(*params, rails, 0.0);
        }
        {
            SCOPED_TRACE("int16 extremes");
            check_at_line_rate(*params, extremes, 0.5);
        }
    }
}

// Longer runs (CTest label cosim_long): seconds of simulated data on both cores, with back-pressure.
TEST(CosimLong, TenSecondsOfSimulatedRecording64) {
    constexpr int channels = 64;
    const auto data = simulate(channels, 10.0, 31);
    check_core(*default_params(channels, 1500), data, 600, 4096);
}

TEST(CosimLong, PendingListOverflowDropsWhatL1Drops) {
    // Every channel crosses in every frame (zero threshold, one-sample window, no dead time) and decided candidates
    // stay 128 frames (the shadow window): 48 channels x 128 frames > 512 pending entries, so both L1 and the
    // core drop candidates, and must drop the same ones.
    constexpr int channels = 48;
    auto params = default_params(channels, 0);
    params->threshold_gain = 0;
    params->polarity = hw::Polarity::both;
    params->align_window = 1;
    params->dead_time = 0;
    params->dedup_window = 0;
    params->shadow_window = 128;
    params->artifact_window = 0;
    std::mt19937 rng(4);
    std::normal_distribution<double> noise(0, 200);
    std::vector<std::int16_t> data(150 * static_cast<std::size_t>(channels));
    for (auto& v : data)
        v = static_cast<std::int16_t>(noise(rng));
    const Outputs expected = run_l1(*params, data);
    ASSERT_GT(expected.lost, 100u) << "the pending list should overflow";
    expect_bit_exact(expected, run_rtl(*params, data, {}, 150), channels);
}

TEST(CosimLong, AllChannelBurstOnThe1024ChannelCoreAtLineRate) {
    // The burst of issue 17: +-3000 LSB for 10 samples on all 1024 channels, alternating sign between channels.
    constexpr int channels = 1024;
    const auto data = bursts(channels, 700, 150, 10, 3000, 12);
    {
        SCOPED_TRACE("artefact rejection on");
        check_at_line_rate(*default_params(channels), data, 0.0);
    }
    {
        SCOPED_TRACE("artefact rejection off");
        check_at_line_rate(*without_rejection(channels), data, 0.3);
    }
}

TEST(CosimLong, HalfASecondOfSimulatedRecording1024) {
    constexpr int channels = 1024;
    const auto data = simulate(channels, 0.5, 33);
    check_core(*default_params(channels, 1500), data, 500, 4096);
}

} // namespace
} // namespace spikeline
