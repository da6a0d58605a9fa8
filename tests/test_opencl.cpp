// The OpenCL backend (on pocl's CPU device in CI) equals the plain L1 reference on every event, label, feature and
// snippet, on the recordings and corner cases the other backends' bit-true tests use; batches of probes equal single
// streams, also recordings with their own parameters sharing launches from their own threads; kernels come from the
// cache the second time; and each error a user can meet says what to do.
#include "backend/backend.hpp"
#include "backend/opencl_backend.hpp"
#include "backend_runs.hpp"
#include "probe/probe.hpp"
#include "simulated_recording.hpp"
#include "sort/calibration.hpp"
#include "sort/sort_settings.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>
#include <unistd.h>
#include <vector>

namespace spikeline {
namespace {

using testing::simulate_in_memory;

using testing::expect_same;
using testing::reference_events;
using testing::run;

std::unique_ptr<Backend> opencl(const HwParams& params) {
    return make_backend({"opencl", 1, 0, 0}, params);
}

class OpenclEquality : public ::testing::Test {
protected:
    static void SetUpTestSuite() { data_ = new std::vector<std::int16_t>(simulate_in_memory(kChannels, 3.0, 11)); }
    static void TearDownTestSuite() { delete data_; }
    static constexpr int kChannels = 256; // two shanks of the default probe, as BackendEquality
    static std::vector<std::int16_t>* data_;
};
std::vector<std::int16_t>* OpenclEquality::data_ = nullptr;

TEST_F(OpenclEquality, EqualsReferenceForBlocksSmallerAndLargerThanAChunk) {
    auto params = make_detect_params(DetectSettings{}, probe::default_probe(kChannels), 30000);
    params->reference_clip_gain = 768; // a clipped common reference, over 21 periods of clip levels
    const auto expected = reference_events(*params, *data_);
    ASSERT_GT(expected.size(), 500u) << "the simulated segment should hold many spikes";
    auto plain = std::make_unique<HwParams>(*params);
    plain->reference_clip_gain = 0;
    ASSERT_NE(expected, reference_events(*plain, *data_)) << "the spikes should be large enough to be clipped";
    // 7: many launches per dead time; 30: stream's 1 ms blocks; 333 and 4096: several chunks in flight, a partial one.
    for (std::size_t block : {std::size_t{7}, std::size_t{30}, std::size_t{333}, std::size_t{4096}}) {
        SCOPED_TRACE("block " + std::to_string(block));
        const std::vector<std::int16_t> segment =
            block == 7 ? std::vector<std::int16_t>(data_->begin(), data_->begin() + 15000 * kChannels) : *data_;
        const auto want = block == 7 ? reference_events(*params, segment) : expected;
        auto backend = opencl(*params);
        expect_same(want, run(*backend, segment, kChannels, block));
        EXPECT_EQ(backend->lost_events(), 0u);
    }
}

TEST_F(OpenclEquality, EqualsReferenceWithOtherSettings) {
    DetectSettings both;
    both.polarity = hw::Polarity::both;
    both.threshold_sigma = 4.0;
    DetectSettings positive;
    positive.polarity = hw::Polarity::positive;
    positive.common_reference = false;
    DetectSettings narrow;
    narrow.band_low_hz = 500;
    narrow.band_high_hz = 3000;
    narrow.align_ms = 0.0; // a one-sample window: a candidate can come every frame
    narrow.dead_time_ms = 0.0;
    narrow.dedup_ms = 1.0;
    DetectSettings spatial; // partners in other work items' vectors
    spatial.threshold_sigma = 5.0;
    spatial.spatial_sigma = 5.75;
    DetectSettings spatial_both = spatial;
    spatial_both.polarity = hw::Polarity::both;
    for (const DetectSettings& settings : {both, positive, narrow, spatial, spatial_both}) {
        const auto params = make_detect_params(settings, probe::default_probe(kChannels), 30000);
        const auto expected = reference_events(*params, *data_);
        ASSERT_FALSE(expected.empty());
        auto backend = opencl(*params);
        expect_same(expected, run(*backend, *data_, kChannels, 1000));
    }
}

TEST(OpenclCorners, InterleavedShanksUnreferencedChannelsAndOddChannelCounts) {
    probe::Probe probe = probe::default_probe(64);
    for (int ch = 0; ch < 64; ++ch)
        probe.contacts[static_cast<std::size_t>(ch)].shank = ch % 3;
    const auto data = simulate_in_memory(64, 2.0, 5);
    const auto params = make_detect_params(DetectSettings{}, probe, 30000);
    params->group_of[5] = -1; // an excluded (e.g. broken) channel
    const auto expected = reference_events(*params, data);
    ASSERT_FALSE(expected.empty());
    expect_same(expected, run(*opencl(*params), data, 64, 333));
    for (int channels : {1, 33, 337}) {
        SCOPED_TRACE(std::to_string(channels) + " channels");
        const auto odd = simulate_in_memory(channels, 1.5, 9);
        const auto odd_params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
        expect_same(reference_events(*odd_params, odd), run(*opencl(*odd_params), odd, channels, 1000));
    }
}

TEST(OpenclCorners, SaturationFullScaleStepsAndAllChannelsSpikingAtOnce) {
    constexpr int channels = 64;
    const std::vector<std::int16_t> data = testing::saturating_recording(channels);
    auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    params->reference_clip_gain = 768; // all channels beyond their clip: the plain mean
    const auto expected = reference_events(*params, data);
    ASSERT_FALSE(expected.empty());
    expect_same(expected, run(*opencl(*params), data, channels, 512));
}

// Sorting: the host runs L1's stage on the device's referenced samples.
class OpenclSorting : public ::testing::Test {
protected:
    static constexpr int kChannels = 128;
    static void SetUpTestSuite() {
        data_ = new std::vector<std::int16_t>(simulate_in_memory(kChannels, 6.0, 21));
        detect_ = make_detect_params(DetectSettings{}, probe::default_probe(kChannels), 30000).release();
        const auto geometry =
            sort::make_sort_params(sort::SortSettings{}, probe::default_probe(kChannels), 30000, *detect_);
        auto backend = make_reference_backend(*detect_);
        const SortOutput window = run_sorted(*backend, geometry, true, *data_, 1 << 20, {});
        calibration_ = new sort::Calibration(sort::calibrate(*geometry, window, sort::SortSettings{}));
    }
    static void TearDownTestSuite() {
        delete data_;
        delete detect_;
        delete calibration_;
    }

    static SortOutput run_sorted(Backend& backend, std::shared_ptr<const HwSortParams> params, bool keep,
                                 const std::vector<std::int16_t>& data, std::size_t block,
                                 const std::vector<hw::TableWrite>& writes) {
        backend.enable_sorting(std::move(params), keep);
        backend.queue_table_writes(writes);
        std::vector<SpikeEvent> events;
        const std::size_t frames = data.size() / kChannels;
        for (std::size_t f = 0; f < frames; f += block)
            backend.process(&data[f * kChannels], std::min(block, frames - f), events);
        backend.finish(events);
        SortOutput out;
        backend.take_sorted(out);
        EXPECT_EQ(out.spikes.size(), events.size()) << "every detected spike is sorted";
        return out;
    }

    static void expect_same_sorted(const SortOutput& expected, const SortOutput& actual) {
        ASSERT_EQ(expected.spikes.size(), actual.spikes.size());
        for (std::size_t i = 0; i < expected.spikes.size(); ++i) {
            const hw::SortedSpike& a = expected.spikes[i];
            const hw::SortedSpike& b = actual.spikes[i];
            ASSERT_EQ(a.event, b.event) << "spike " << i;
            ASSERT_EQ(a.unit, b.unit) << "spike " << i;
            ASSERT_EQ(a.template_id, b.template_id) << "spike " << i;
            for (int v = 0; v < HwSortConfig::n_values; ++v)
                ASSERT_EQ(a.features[v], b.features[v]) << "spike " << i << " feature " << v;
        }
        EXPECT_EQ(expected.snippets, actual.snippets);
    }

    static std::vector<std::int16_t>* data_;
    static HwParams* detect_;
    static sort::Calibration* calibration_;
};
std::vector<std::int16_t>* OpenclSorting::data_ = nullptr;
HwParams* OpenclSorting::detect_ = nullptr;
sort::Calibration* OpenclSorting::calibration_ = nullptr;

TEST_F(OpenclSorting, EqualsReferenceOnEveryLabelFeatureAndSnippet) {
    auto reference = make_reference_backend(*detect_);
    const SortOutput expected = run_sorted(*reference, calibration_->params, true, *data_, 1 << 20, {});
    std::size_t labelled = 0;
    for (const auto& s : expected.spikes)
        labelled += s.unit >= 0;
    ASSERT_GT(labelled, expected.spikes.size() / 2) << "most spikes of a simulated recording belong to a unit";
    for (std::size_t block : {std::size_t{30}, std::size_t{4096}}) {
        SCOPED_TRACE("block " + std::to_string(block));
        auto backend = opencl(*detect_);
        expect_same_sorted(expected, run_sorted(*backend, calibration_->params, true, *data_, block, {}));
    }
}

TEST_F(OpenclSorting, AppliesTableWritesAtTheirSamples) {
    // Channels lose their entries or take another channel's at random samples: labels change, identically.
    std::mt19937_64 rng(5);
    const HwSortParams& table = *calibration_->params;
    std::vector<std::uint64_t> samples;
    for (int i = 0; i < 30; ++i)
        samples.push_back(rng() % (data_->size() / kChannels));
    std::sort(samples.begin(), samples.end());
    std::vector<hw::TableWrite> writes;
    for (std::uint64_t sample : samples)
        for (int k = 0; k < 8; ++k) {
            const int channel = static_cast<int>(rng() % kChannels);
            const int from = static_cast<int>(rng() % kChannels);
            if (rng() % 2 == 0)
                writes.push_back({sample, channel, -1, 0, {}});
            else if (table.n_entries[from] > 0)
                writes.push_back({sample, channel, 0, 1, table.entries[from][0]});
        }
    auto reference = make_reference_backend(*detect_);
    const SortOutput expected = run_sorted(*reference, calibration_->params, false, *data_, 1 << 20, writes);
    auto unchanged = make_reference_backend(*detect_);
    const SortOutput without = run_sorted(*unchanged, calibration_->params, false, *data_, 1 << 20, {});
    std::size_t changed = 0;
    for (std::size_t i = 0; i < expected.spikes.size(); ++i)
        changed += expected.spikes[i].unit != without.spikes[i].unit;
    ASSERT_GT(changed, expected.spikes.size() / 20) << "the writes change many labels";
    auto backend = opencl(*detect_);
    expect_same_sorted(expected, run_sorted(*backend, calibration_->params, false, *data_, 3000, writes));
}

TEST(OpenclBatchTest, EachProbeOfABatchGivesItsOwnStreamsEvents) {
    constexpr int channels = 96;
    auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    params->reference_clip_gain = 768;
    std::vector<std::vector<std::int16_t>> probes;
    for (std::uint64_t seed : {3, 4, 5})
        probes.push_back(simulate_in_memory(channels, 1.5, seed));
    OpenclOptions options;
    options.probes = 3;
    // More than a period of clip levels: launches of 4096 and 2904 frames, some across the start of a period.
    options.chunk_frames = 5000;
    constexpr std::size_t block = 7000;
    OpenclBatch batch(*params, options);
    std::vector<std::vector<SpikeEvent>> events(3);
    const std::size_t frames = probes[0].size() / channels;
    for (std::size_t f = 0; f < frames; f += block) {
        std::vector<const std::int16_t*> pointers;
        for (const auto& p : probes)
            pointers.push_back(&p[f * channels]);
        batch.process(pointers, std::min(block, frames - f), events);
    }
    batch.finish(events);
    for (std::size_t p = 0; p < probes.size(); ++p) {
        SCOPED_TRACE("probe " + std::to_string(p));
        const auto expected = reference_events(*params, probes[p]);
        ASSERT_GT(expected.size(), 20u);
        expect_same(expected, events[p]);
    }
    EXPECT_NE(events[0], events[1]) << "the probes hold different data";
}

// Recordings of their own channel counts, sample rates, settings and lengths, each driven from its own thread with
// its own block sizes, share the launches and give each its own events; one that stops midway leaves the others be.
TEST(OpenclStreamsTest, RecordingsWithTheirOwnParametersShareLaunchesAndGiveTheirOwnEvents) {
    struct Recording {
        int channels;
        double sample_rate, seconds;
        std::uint64_t seed;
        std::size_t block;
        DetectSettings settings;
    };
    DetectSettings positive;
    positive.polarity = hw::Polarity::positive;
    positive.threshold_sigma = 4.0;
    DetectSettings wide;
    wide.align_ms = 0.5;
    wide.common_reference = false;
    const std::vector<Recording> recordings = {{96, 30000, 1.5, 3, 1000, DetectSettings{}},
                                               {37, 25000, 1.0, 4, 777, positive},
                                               {130, 30000, 2.0, 5, 3000, wide},
                                               {64, 30000, 2.0, 6, 500, DetectSettings{}}};
    const std::size_t stopping = 3; // gives up after its first blocks
    std::vector<std::shared_ptr<const HwParams>> params;
    std::vector<std::vector<std::int16_t>> data;
    for (const Recording& r : recordings) {
        auto p = make_detect_params(r.settings, probe::default_probe(r.channels), r.sample_rate);
        p->reference_clip_gain = 768; // each stream takes its clip levels at its own launches
        params.push_back(std::move(p));
        data.push_back(simulate_in_memory(r.channels, r.seconds, r.seed));
    }
    OpenclOptions options;
    options.chunk_frames = 900;
    OpenclStreams streams(params, options);
    ASSERT_EQ(streams.size(), recordings.size());
    std::vector<std::unique_ptr<Backend>> backends;
    for (std::size_t i = 0; i < recordings.size(); ++i)
        backends.push_back(streams.stream(i));
    EXPECT_THROW(streams.stream(0), InputError);
    std::vector<std::vector<SpikeEvent>> events(recordings.size());
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < recordings.size(); ++i)
        threads.emplace_back([&, i] {
            std::unique_ptr<Backend> backend = std::move(backends[i]);
            const std::size_t channels = static_cast<std::size_t>(recordings[i].channels);
            const std::size_t frames = data[i].size() / channels;
            for (std::size_t f = 0; f < frames; f += recordings[i].block) {
                if (i == stopping && f >= 2 * recordings[i].block)
                    return; // its backend destroyed unfinished, as when its thread meets an error
                backend->process(&data[i][f * channels], std::min(recordings[i].block, frames - f), events[i]);
            }
            backend->finish(events[i]);
        });
    for (std::thread& thread : threads)
        thread.join();
    for (std::size_t i = 0; i < recordings.size(); ++i) {
        if (i == stopping)
            continue;
        SCOPED_TRACE("recording " + std::to_string(i));
        const auto expected = reference_events(*params[i], data[i]);
        ASSERT_GT(expected.size(), 10u);
        expect_same(expected, events[i]);
    }
}

TEST(OpenclStreamsTest, AStreamRefusesSorting) {
    const std::shared_ptr<const HwParams> params =
        make_detect_params(DetectSettings{}, probe::default_probe(32), 30000);
    OpenclStreams streams({params}, OpenclOptions{});
    auto backend = streams.stream(0);
    EXPECT_THROW(backend->enable_sorting(nullptr, false), InputError);
}

class OpenclCache : public spikeline::testing::TempDirTest {};

TEST_F(OpenclCache, KernelsAreBuiltOnceAndThenLoadedFromTheCache) {
    constexpr int channels = 32;
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    const auto data = simulate_in_memory(channels, 1.0, 2);
    OpenclOptions options;
    options.cache_dir = dir_ / "cache";
    std::vector<std::vector<SpikeEvent>> first(1), second(1);
    {
        OpenclBatch built(*params, options);
        EXPECT_FALSE(built.kernels_from_cache());
        built.process({data.data()}, data.size() / channels, first);
        built.finish(first);
    }
    ASSERT_EQ(std::distance(std::filesystem::directory_iterator(options.cache_dir), {}), 1);
    OpenclBatch cached(*params, options);
    EXPECT_TRUE(cached.kernels_from_cache());
    cached.process({data.data()}, data.size() / channels, second);
    cached.finish(second);
    expect_same(reference_events(*params, data), second[0]);
    EXPECT_EQ(first, second);

    // A damaged cache file (here cut short) is rebuilt and replaced, never handed to the driver.
    const auto file = std::filesystem::directory_iterator(options.cache_dir)->path();
    const auto size = std::filesystem::file_size(file);
    std::filesystem::resize_file(file, size / 2);
    OpenclBatch rebuilt(*params, options);
    EXPECT_FALSE(rebuilt.kernels_from_cache());
    EXPECT_EQ(std::filesystem::file_size(file), size);
}

std::string error_of(const std::function<void()>& action) {
    try {
        action();
    } catch (const InputError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(OpenclErrors, UnknownPlatformOrDeviceNamesWhatExists) {
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(16), 30000);
    const std::string platform = error_of([&] { make_backend({"opencl", 1, 7, 0}, *params); });
    EXPECT_NE(platform.find("--opencl-platform 7 does not exist"), std::string::npos) << platform;
    EXPECT_NE(platform.find("spikeline devices"), std::string::npos) << platform;
    const std::string device = error_of([&] { make_backend({"opencl", 1, 0, 9}, *params); });
    EXPECT_NE(device.find("--opencl-device 9 does not exist"), std::string::npos) << device;
    EXPECT_NE(device.find("device(s)"), std::string::npos) << device;
}

TEST(OpenclErrors, AKernelBuildFailureShowsTheCompilersLog) {
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(16), 30000);
    OpenclOptions options;
    options.extra_source = "\n__kernel void broken(__global int* x) { x[0] = undeclared_name; }\n";
    const std::string message = error_of([&] { OpenclBatch batch(*params, options); });
    EXPECT_NE(message.find("the OpenCL kernels did not build"), std::string::npos) << message;
    EXPECT_NE(message.find("undeclared_name"), std::string::npos) << message;
}

TEST(OpenclErrors, BuffersBeyondTheDevicesMemoryAreRefusedBeforeAllocating) {
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(1024), 30000);
    OpenclOptions options;
    options.probes = 4096;
    options.chunk_frames = 1 << 20;
    const std::string message = error_of([&] { OpenclBatch batch(*params, options); });
    EXPECT_NE(message.find("use fewer --probes"), std::string::npos) << message;
    EXPECT_NE(message.find("need a buffer of"), std::string::npos) << message;
}

TEST(OpenclErrors, NoInstalledDriverSaysWhatToInstall) {
    // The ICD loader reads its vendor list once per process: a fresh one, told to look in an empty folder.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    const auto empty = std::filesystem::temp_directory_path() / ("spikeline-no-icd-" + std::to_string(::getpid()));
    std::filesystem::create_directories(empty);
    EXPECT_EXIT(
        {
            ::setenv("OCL_ICD_VENDORS", empty.c_str(), 1);
            std::fprintf(stderr, "%s\n", error_of([] { list_opencl_devices(); }).c_str());
            const auto params = make_detect_params(DetectSettings{}, probe::default_probe(16), 30000);
            std::fprintf(stderr, "%s\n", error_of([&] { make_backend({"opencl", 1, 0, 0}, *params); }).c_str());
            std::exit(0);
        },
        ::testing::ExitedWithCode(0),
        "no OpenCL platform found: install an OpenCL driver.*pocl-opencl-icd.*\n.*no "
        "OpenCL platform found");
    std::filesystem::remove_all(empty);
}

TEST(OpenclDevices, ListsPoclsCpuDevice) {
    const auto platforms = list_opencl_devices();
    ASSERT_FALSE(platforms.empty());
    bool cpu = false;
    for (const auto& platform : platforms)
        for (const auto& device : platform.devices)
            cpu |= device.type == "CPU" && device.global_memory_bytes > 0 && device.compute_units > 0;
    EXPECT_TRUE(cpu) << "pocl offers the CPU as a device";
}

} // namespace
} // namespace spikeline
