// Saved sorters (sorter.json): an exact round trip of a real calibration, identical labels from the loaded sorter,
// rejection of damaged or mismatching files, and `sort --sorter` reproducing the first sort's Phy labels.
#include "backend/backend.hpp"
#include "io/npy.hpp"
#include "io/recording.hpp"
#include "pipeline/sort_run.hpp"
#include "pipeline/spike_cache.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "simulated_recording.hpp"
#include "sort/calibration.hpp"
#include "sort/sorter_file.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>

namespace spikeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kChannels = 128;
constexpr double kSampleRate = 30000;

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

/// Same bits, so that -0.0 and 0.0 differ and a NaN equals itself.
bool same_bits(double a, double b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

void expect_same_doubles(const std::vector<double>& a, const std::vector<double>& b, const std::string& name) {
    ASSERT_EQ(a.size(), b.size()) << name;
    for (std::size_t i = 0; i < a.size(); ++i)
        ASSERT_TRUE(same_bits(a[i], b[i])) << name << "[" << i << "]: " << a[i] << " vs " << b[i];
}

/// Every field the backend reads, element by element (the struct itself may hold padding).
void expect_same_params(const HwSortParams& a, const HwSortParams& b) {
    EXPECT_EQ(a.n_channels, b.n_channels);
    EXPECT_EQ(a.pre, b.pre);
    EXPECT_EQ(a.post, b.post);
    for (int c = 0; c < HwSortConfig::max_channels; ++c)
        for (int k = 0; k < HwSortConfig::snippet_channels; ++k)
            ASSERT_EQ(a.snippet_channels[c][k], b.snippet_channels[c][k]) << "channel " << c << " row " << k;
    for (int p = 0; p < HwSortConfig::n_features; ++p)
        for (int s = 0; s < HwSortConfig::max_snippet_samples; ++s)
            ASSERT_EQ(a.basis[p][s], b.basis[p][s]) << "basis " << p << " sample " << s;
    for (int c = 0; c < HwSortConfig::max_channels; ++c) {
        ASSERT_EQ(a.n_entries[c], b.n_entries[c]) << "channel " << c;
        // All slots, used or not: unused ones must stay zero as calibrate leaves them.
        for (int e = 0; e < HwSortConfig::max_entries; ++e) {
            const hw::ClassifierEntry& x = a.entries[c][e];
            const hw::ClassifierEntry& y = b.entries[c][e];
            ASSERT_EQ(x.unit, y.unit) << "channel " << c << " entry " << e;
            ASSERT_EQ(x.template_id, y.template_id) << "channel " << c << " entry " << e;
            ASSERT_EQ(x.gate, y.gate) << "channel " << c << " entry " << e;
            for (int v = 0; v < HwSortConfig::n_values; ++v)
                ASSERT_EQ(x.centroid[v], y.centroid[v]) << "channel " << c << " entry " << e << " value " << v;
        }
    }
}

void expect_same_calibration(const sort::Calibration& a, const sort::Calibration& b) {
    ASSERT_TRUE(a.params && b.params);
    expect_same_params(*a.params, *b.params);
    EXPECT_EQ(a.width, b.width);
    EXPECT_EQ(a.n_spikes, b.n_spikes);
    expect_same_doubles(a.channel_noise, b.channel_noise, "channel_noise");
    ASSERT_EQ(a.entries.size(), b.entries.size());
    for (std::size_t i = 0; i < a.entries.size(); ++i) {
        const sort::Entry& x = a.entries[i];
        const sort::Entry& y = b.entries[i];
        EXPECT_EQ(x.template_id, y.template_id) << "entry " << i;
        EXPECT_EQ(x.unit, y.unit) << "entry " << i;
        EXPECT_EQ(x.channel, y.channel) << "entry " << i;
        EXPECT_EQ(x.n_members, y.n_members) << "entry " << i;
        EXPECT_TRUE(same_bits(x.gate, y.gate)) << "entry " << i;
        expect_same_doubles(x.centroid, y.centroid, "entry " + std::to_string(i) + " centroid");
        expect_same_doubles(x.mean_snippet, y.mean_snippet, "entry " + std::to_string(i) + " mean_snippet");
    }
    ASSERT_EQ(a.units.size(), b.units.size());
    for (std::size_t i = 0; i < a.units.size(); ++i) {
        EXPECT_EQ(a.units[i].id, b.units[i].id) << "unit " << i;
        EXPECT_EQ(a.units[i].peak_channel, b.units[i].peak_channel) << "unit " << i;
        EXPECT_TRUE(same_bits(a.units[i].amplitude, b.units[i].amplitude)) << "unit " << i;
        EXPECT_EQ(a.units[i].entries, b.units[i].entries) << "unit " << i;
    }
}

SortOutput run_sorted(Backend& backend, std::shared_ptr<const HwSortParams> params, bool keep,
                      const std::vector<std::int16_t>& data) {
    backend.enable_sorting(std::move(params), keep);
    std::vector<SpikeEvent> events;
    const std::size_t frames = data.size() / kChannels;
    for (std::size_t f = 0; f < frames; f += 3000)
        backend.process(&data[f * kChannels], std::min<std::size_t>(3000, frames - f), events);
    backend.finish(events);
    SortOutput out;
    backend.take_sorted(out);
    return out;
}

/// A calibration learnt from a simulated recording, made once for the suite.
class SorterFile : public testing::TempDirTest {
protected:
    static void SetUpTestSuite() {
        data_ = new std::vector<std::int16_t>(testing::simulate_in_memory(kChannels, 6.0, 21));
        context_ = new sort::SorterFileContext(sort::make_sorter_file_context(
            probe::default_probe(kChannels), kSampleRate, DetectSettings{}, sort::SortSettings{}));
        detect_ = make_detect_params(DetectSettings{}, probe::default_probe(kChannels), kSampleRate).release();
        auto backend = make_reference_backend(*detect_);
        const SortOutput window = run_sorted(*backend, context_->geometry, true, *data_);
        calibration_ = new sort::Calibration(sort::calibrate(*context_->geometry, window, sort::SortSettings{}));
    }
    static void TearDownTestSuite() {
        delete data_;
        delete context_;
        delete detect_;
        delete calibration_;
    }

    fs::path written() const {
        const fs::path path = dir_ / "sorter.json";
        sort::write_sorter_file(*calibration_, *context_, path);
        return path;
    }

    /// Writes the calibration, lets `edit` change its JSON, and expects read_sorter_file to refuse it with a message
    /// holding every fragment.
    void expect_rejected(const std::function<void(json&)>& edit, const std::vector<std::string>& fragments) const {
        const fs::path path = written();
        json root = json::parse(read_text(path));
        edit(root);
        write_text(path, root.dump());
        expect_rejected_file(path, *context_, fragments);
    }

    static void expect_rejected_file(const fs::path& path, const sort::SorterFileContext& context,
                                     const std::vector<std::string>& fragments) {
        try {
            sort::read_sorter_file(path, context);
            FAIL() << "expected InputError";
        } catch (const InputError& e) {
            for (const std::string& fragment : fragments)
                EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
                    << "expected '" << fragment << "' in: " << e.what();
        }
    }

    static std::vector<std::int16_t>* data_;
    static sort::SorterFileContext* context_;
    static HwParams* detect_;
    static sort::Calibration* calibration_;
};
std::vector<std::int16_t>* SorterFile::data_ = nullptr;
sort::SorterFileContext* SorterFile::context_ = nullptr;
HwParams* SorterFile::detect_ = nullptr;
sort::Calibration* SorterFile::calibration_ = nullptr;

TEST_F(SorterFile, RoundTripReproducesTheCalibrationFieldByField) {
    ASSERT_GE(calibration_->units.size(), 5u) << "a simulated recording holds units";
    const sort::Calibration loaded = sort::read_sorter_file(written(), *context_);
    expect_same_calibration(*calibration_, loaded);
}

TEST_F(SorterFile, LoadedSorterGivesTheBackendIdenticalLabels) {
    const sort::Calibration loaded = sort::read_sorter_file(written(), *context_);
    auto backend = make_cpu_backend(*detect_, 2);
    const SortOutput expected = run_sorted(*backend, calibration_->params, false, *data_);
    backend = make_cpu_backend(*detect_, 2);
    const SortOutput actual = run_sorted(*backend, loaded.params, false, *data_);
    ASSERT_EQ(expected.spikes.size(), actual.spikes.size());
    std::size_t labelled = 0;
    for (std::size_t i = 0; i < expected.spikes.size(); ++i) {
        ASSERT_EQ(expected.spikes[i].event, actual.spikes[i].event) << "spike " << i;
        ASSERT_EQ(expected.spikes[i].unit, actual.spikes[i].unit) << "spike " << i;
        ASSERT_EQ(expected.spikes[i].template_id, actual.spikes[i].template_id) << "spike " << i;
        labelled += expected.spikes[i].unit >= 0;
    }
    EXPECT_GT(labelled, expected.spikes.size() / 2);
}

TEST_F(SorterFile, DoublesSurviveBitForBit) {
    sort::Calibration calibration = *calibration_;
    const std::vector<double> awkward = {0.1,
                                         1.0 / 3.0,
                                         -0.0,
                                         5e-324,
                                         std::numeric_limits<double>::max(),
                                         std::numeric_limits<double>::min(),
                                         123456789.123456789,
                                         -2.5e-17};
    std::copy(awkward.begin(), awkward.end(), calibration.entries[0].mean_snippet.begin());
    calibration.entries[0].gate = 1e300 / 7.0;
    calibration.units[0].amplitude = std::nextafter(1000.0, 2000.0);
    const fs::path path = dir_ / "awkward.json";
    sort::write_sorter_file(calibration, *context_, path);
    expect_same_calibration(calibration, sort::read_sorter_file(path, *context_));
}

TEST_F(SorterFile, NotJsonAndTruncatedFilesAreRejected) {
    const fs::path path = dir_ / "bad.json";
    write_text(path, "spikes, not JSON");
    expect_rejected_file(path, *context_, {path.string(), "not valid JSON"});
    const std::string text = read_text(written());
    write_text(path, text.substr(0, text.size() / 2));
    expect_rejected_file(path, *context_, {path.string(), "not valid JSON"});
    expect_rejected_file(dir_ / "missing.json", *context_, {"cannot open sorter file", "missing.json"});
}

TEST_F(SorterFile, WrongFormatVersionOrMissingFieldsAreRejected) {
    expect_rejected([](json& j) { j["format"] = "spikeline decoder"; }, {"'format' is not \"spikeline sorter\""});
    expect_rejected([](json& j) { j["version"] = 2; }, {"version 2 is not supported"});
    expect_rejected([](json& j) { j.erase("units"); }, {"missing 'units'"});
    expect_rejected([](json& j) { j["valid_for"].erase("sample_rate"); }, {"missing 'valid_for.sample_rate'"});
    expect_rejected([](json& j) { j["entries"][0]["mean_snippet"][3] = nullptr; },
                    {"entries[0].mean_snippet", "finite number"});
}

TEST_F(SorterFile, AnotherChannelCountSampleRateOrProbeIsRejected) {
    const fs::path path = written();
    const auto other_channels =
        sort::make_sorter_file_context(probe::default_probe(64), kSampleRate, DetectSettings{}, sort::SortSettings{});
    expect_rejected_file(path, other_channels, {"128 channels", "64", "re-run `spikeline sort`"});
    const auto other_rate =
        sort::make_sorter_file_context(probe::default_probe(kChannels), 25000, DetectSettings{}, sort::SortSettings{});
    expect_rejected_file(path, other_rate, {"30000", "25000", "Hz"});
    sort::SorterFileContext other_probe = *context_;
    other_probe.probe_name = "another probe";
    expect_rejected_file(path, other_probe, {"probe", "another probe"});
}

TEST_F(SorterFile, OtherDetectionOrSnippetSettingsAreRejectedNamingTheSetting) {
    const fs::path path = written();
    DetectSettings detect;
    detect.threshold_sigma = 5.5;
    expect_rejected_file(
        path,
        sort::make_sorter_file_context(probe::default_probe(kChannels), kSampleRate, detect, sort::SortSettings{}),
        {"detection settings differ", "threshold_sigma", "5.5", "pass the probe and settings"});
    DetectSettings plain_mean; // a file written before the clipped reference has no reference_clip: this one's key
    plain_mean.reference_clip = 0;
    expect_rejected_file(
        path,
        sort::make_sorter_file_context(probe::default_probe(kChannels), kSampleRate, plain_mean, sort::SortSettings{}),
        {"detection settings differ", "reference_clip"});
    EXPECT_FALSE(to_json(plain_mean).contains("reference_clip"));
    sort::SortSettings snippet;
    snippet.post_ms = 1.2;
    expect_rejected_file(
        path, sort::make_sorter_file_context(probe::default_probe(kChannels), kSampleRate, DetectSettings{}, snippet),
        {"snippet settings differ", "snippet_post_ms"});
    // Settings that only steer how a calibration is learnt do not matter for labelling.
    sort::SortSettings learning;
    learning.calibration_s = 5;
    learning.split_dip = 0.5;
    EXPECT_NO_THROW(
        sort::read_sorter_file(path, sort::make_sorter_file_context(probe::default_probe(kChannels), kSampleRate,
                                                                    DetectSettings{}, learning)));
}

TEST_F(SorterFile, OutOfRangeOrInconsistentEntriesAreRejected) {
    expect_rejected([](json& j) { j["classifier"][0]["channel"] = kChannels; },
                    {"'classifier[0].channel' is 128, outside 0..127"});
    expect_rejected(
        [](json& j) {
            json& entries = j["classifier"][0]["entries"];
            while (entries.size() <= HwSortConfig::max_entries)
                entries.push_back(entries[0]);
        },
        {"classifier[0].entries", "9 elements", "1..8"});
    expect_rejected([](json& j) { j["classifier"][0]["entries"][0]["centroid"].erase(0); },
                    {"classifier[0].entries[0].centroid", "24 expected"});
    expect_rejected([](json& j) { j["classifier"][0]["entries"][0]["unit"] = 99999; },
                    {"no matching element in 'entries'"});
    expect_rejected([](json& j) { j["pre"] = 60; }, {"pre + 1 + post = 91 samples", "exceeds the 64 samples"});
    expect_rejected([](json& j) { j["snippet_channels"][5][2] = 500; }, {"snippet_channels[5]", "500"});
    expect_rejected([](json& j) { j["units"][0]["entries"].push_back(100000); }, {"units[0].entries"});
}

// ---------------------------------------------------------------------------------------------------------------
// sort --sorter

class SortWithSorter : public testing::TempDirTest {
protected:
    fs::path simulate_folder(double seconds, std::uint64_t seed) {
        sim::SimulationConfig config;
        config.n_channels = 64;
        config.duration_s = seconds;
        config.seed = seed;
        const auto dir = dir_ / "sim";
        sim::simulate_to_folder(config, probe::default_probe(64), dir);
        return dir;
    }

    SortRunResult sort_folder(const fs::path& sim, const fs::path& out, SortRunOptions options) {
        options.detect.backend = {"cpu", 2};
        auto open = [&] { return io::open_recording(sim / "recording.bin", {}); };
        return run_sorting(open, probe::read_probeinterface(sim / "probe.json"), options, out);
    }
};

TEST_F(SortWithSorter, ReproducesTheFirstSortsLabelsForTheWholeRecording) {
    const fs::path sim = simulate_folder(8.0, 31);
    SortRunOptions first;
    first.sort.calibration_s = 4.0;
    first.sort.keep_learning = false; // one calibration: the labels of the whole run come from the saved sorter
    const SortRunResult a = sort_folder(sim, dir_ / "a", first);
    ASSERT_TRUE(fs::is_regular_file(dir_ / "a" / "sorter.json"));
    EXPECT_TRUE(a.sorter_loaded.empty());

    SortRunOptions second;
    second.sort.calibration_s = 1.0; // ignored: nothing is learnt
    second.sorter_file = dir_ / "a" / "sorter.json";
    const SortRunResult b = sort_folder(sim, dir_ / "b", second);
    EXPECT_EQ(b.sorter_loaded, second.sorter_file);
    EXPECT_EQ(b.n_calibrations, 0);
    EXPECT_EQ(b.calibration_spikes, a.calibration_spikes);
    ASSERT_GT(a.spikes, 100u);
    EXPECT_EQ(a.spikes, b.spikes);
    EXPECT_EQ(a.unsorted, b.unsorted);
    for (const char* name : {"spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "templates.npy",
                             "template_ind.npy", "pc_features.npy", "sorter.json"})
        EXPECT_EQ(read_text(dir_ / "a" / name), read_text(dir_ / "b" / name)) << name;
    const json meta = json::parse(read_text(dir_ / "b" / "spikeline_sort.json"));
    EXPECT_EQ(meta["sorter_loaded_from"], second.sorter_file.string());
    EXPECT_EQ(meta["sorter_file"], "sorter.json");
}

TEST_F(SortWithSorter, TwoPassesLabelTheWholeRecordingWithTheSorterLearntAtItsEnd) {
    const fs::path sim = simulate_folder(10.0, 33);
    SortRunOptions one_pass;
    one_pass.sort.calibration_s = 2.0; // learns again at 4 and 8 s
    one_pass.sort.relearn_all = true;  // as the first of two passes does
    const SortRunResult a = sort_folder(sim, dir_ / "a", one_pass);
    ASSERT_GE(a.n_calibrations, 3);
    EXPECT_FALSE(a.relabelled);

    SortRunOptions two_passes = one_pass;
    two_passes.sort.relearn_all = false;
    two_passes.relabel = true;
    const SortRunResult r = sort_folder(sim, dir_ / "r", two_passes);
    EXPECT_TRUE(r.relabelled);
    EXPECT_EQ(r.n_calibrations, 2) << "the first pass learns once, at the end (learnings on the way change only ids)";
    EXPECT_EQ(r.calibration_spikes, a.calibration_spikes);
    EXPECT_TRUE(r.sorter_loaded.empty());
    EXPECT_GT(r.first_pass_wall_seconds, 0.0);
    EXPECT_FALSE(fs::exists(dir_ / "r" / ".first_pass")) << "the scratch folder is removed";

    // The labels of a sort with the sorter learnt at the end, from the first spike on; not the one pass's.
    SortRunOptions fixed;
    fixed.sorter_file = dir_ / "r" / "sorter.json";
    sort_folder(sim, dir_ / "b", fixed);
    for (const char* name : {"spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "pc_features.npy"})
        EXPECT_EQ(read_text(dir_ / "r" / name), read_text(dir_ / "b" / name)) << name;
    EXPECT_NE(read_text(dir_ / "r" / "spike_clusters.npy"), read_text(dir_ / "a" / "spike_clusters.npy"));
    const json meta = json::parse(read_text(dir_ / "r" / "spikeline_sort.json"));
    EXPECT_TRUE(meta["sorter_loaded_from"].is_null());
    EXPECT_EQ(meta["relabelled"]["first_pass_calibrations"], r.n_calibrations);
    EXPECT_EQ(meta["relabelled"]["end_learning_spikes"], r.end_learning_spikes);
    EXPECT_GT(r.end_learning_spikes, r.calibration_spikes) << "the whole recording's sample, not the window";

    // A fixed sorter learns nothing: one pass.
    two_passes.sorter_file = dir_ / "r" / "sorter.json";
    EXPECT_FALSE(sort_folder(sim, dir_ / "c", two_passes).relabelled);
    EXPECT_EQ(read_text(dir_ / "c" / "spike_clusters.npy"), read_text(dir_ / "b" / "spike_clusters.npy"));
}

TEST_F(SortWithSorter, TwoPassesOnAFullDiskFailWithAClearErrorAndLeaveNoScratch) {
    const fs::path sim = simulate_folder(3.0, 34);
    SortRunOptions two_passes;
    two_passes.sort.calibration_s = 1.0;
    two_passes.relabel = true;
    const fs::path out = dir_ / "full";
    fs::create_directories(out / ".first_pass");
    fs::create_symlink("/dev/full", out / ".first_pass" / "spikes.cache"); // every write fails with ENOSPC
    try {
        sort_folder(sim, out, two_passes);
        FAIL() << "a cache that cannot be written must stop the sort";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("disk full"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("--one-pass"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(out / ".first_pass"));
    EXPECT_FALSE(fs::exists(out / "spike_clusters.npy"));
}

TEST_F(SortWithSorter, SpikeCacheChunksComeBackAsWrittenAndACutFileIsRefused) {
    const fs::path path = dir_ / "spikes.cache";
    constexpr std::size_t values = 3;
    SortOutput first;
    first.spikes.resize(2);
    first.spikes[0].event = {100, 7, -250};
    first.spikes[0].unit = 4;
    first.spikes[1].event = {130, 9, -90};
    first.spikes[1].features[1] = -17;
    first.snippets = {1, 2, 3, -4, -5, -6};
    const std::vector<hw::ArtifactEvent> artifacts = {{120, 1, 40}};
    {
        SpikeCacheWriter writer(path, values);
        writer.append(first, artifacts, 3000);
        writer.append(SortOutput{}, {}, 0);
        writer.finish();
        EXPECT_EQ(writer.bytes(), fs::file_size(path));
    }
    SpikeCacheReader reader(path, values);
    CachedChunk chunk;
    ASSERT_TRUE(reader.next(chunk));
    EXPECT_EQ(chunk.n_frames, 3000u);
    ASSERT_EQ(chunk.sorted.spikes.size(), 2u);
    EXPECT_EQ(chunk.sorted.spikes[0].event, first.spikes[0].event);
    EXPECT_EQ(chunk.sorted.spikes[0].unit, 4);
    EXPECT_EQ(chunk.sorted.spikes[1].features[1], -17);
    EXPECT_EQ(chunk.sorted.snippets, first.snippets);
    EXPECT_EQ(chunk.artifacts, artifacts);
    ASSERT_TRUE(reader.next(chunk));
    EXPECT_EQ(chunk.n_frames, 0u);
    EXPECT_TRUE(chunk.sorted.spikes.empty());
    EXPECT_FALSE(reader.next(chunk));

    EXPECT_EQ(spike_cache_bytes(1000, values), 1000 * (sizeof(hw::SortedSpike) + values * 4));
    EXPECT_NO_THROW(require_cache_space(dir_, 1000));
    try {
        require_cache_space(dir_, std::uint64_t{1} << 62); // more than any disk here
        FAIL() << "a cache larger than the free space must be refused before it is written";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("GB free"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("--one-pass"), std::string::npos) << e.what();
    }

    fs::resize_file(path, fs::file_size(path) - 40);
    SpikeCacheReader cut(path, values);
    EXPECT_THROW(cut.next(chunk), InputError);
    EXPECT_THROW(SpikeCacheReader(path, values + 1), InputError) << "another run's snippet size";
}

TEST_F(SortWithSorter, TheLastRecalibrationIsSavedAndKeepsItsTemplateIds) {
    const fs::path sim = simulate_folder(12.0, 32);
    SortRunOptions first;
    first.sort.calibration_s = 4.0;
    first.sort.recalibrate_every_s = 5.0;
    const SortRunResult a = sort_folder(sim, dir_ / "a", first);
    ASSERT_GE(a.n_calibrations, 2);
    const auto context = sort::make_sorter_file_context(probe::read_probeinterface(sim / "probe.json"), kSampleRate,
                                                        sorting_detect_settings(), first.sort);
    const sort::Calibration last = sort::read_sorter_file(dir_ / "a" / "sorter.json", context);
    const int first_template = last.entries.front().template_id;
    EXPECT_GT(first_template, 0) << "the saved sorter is a recalibration, whose template ids continue";

    SortRunOptions second;
    second.sorter_file = dir_ / "a" / "sorter.json";
    second.sort.recalibrate_every_s = 1.0;
    EXPECT_THROW(sort_folder(sim, dir_ / "refused", second), InputError) << "--sorter with --recalibrate-every";
    EXPECT_FALSE(fs::exists(dir_ / "refused"));
    second.sort.recalibrate_every_s = 0;
    sort_folder(sim, dir_ / "b", second);

    // Spikes after the last recalibration were labelled by the saved sorter in both runs.
    const auto times_a = io::read_npy_vector<std::uint64_t>(dir_ / "a" / "spike_times.npy");
    const auto times_b = io::read_npy_vector<std::uint64_t>(dir_ / "b" / "spike_times.npy");
    const auto clusters_a = io::read_npy_vector<std::int32_t>(dir_ / "a" / "spike_clusters.npy");
    const auto clusters_b = io::read_npy_vector<std::int32_t>(dir_ / "b" / "spike_clusters.npy");
    // Phy's template ids are renumbered to the templates with spikes; templates_sorter_id.npy gives the sorter's.
    const auto sorter_templates = [](const fs::path& folder) {
        const auto phy_ids = io::read_npy_vector<std::int32_t>(folder / "spike_templates.npy");
        const auto sorter_ids = io::read_npy_vector<std::int32_t>(folder / "templates_sorter_id.npy");
        std::vector<std::int32_t> ids;
        for (std::int32_t id : phy_ids)
            ids.push_back(sorter_ids.at(static_cast<std::size_t>(id)));
        return ids;
    };
    const auto templates_a = sorter_templates(dir_ / "a");
    const auto templates_b = sorter_templates(dir_ / "b");
    ASSERT_EQ(times_a, times_b);
    const auto after = static_cast<std::uint64_t>(10.1 * kSampleRate);
    std::size_t compared = 0;
    for (std::size_t i = 0; i < times_a.size(); ++i) {
        if (clusters_b[i] > 0) {
            ASSERT_GE(templates_b[i], first_template) << "spike " << i;
        }
        if (times_a[i] < after)
            continue;
        ++compared;
        ASSERT_EQ(clusters_a[i], clusters_b[i]) << "spike " << i;
        if (clusters_a[i] > 0) {
            ASSERT_EQ(templates_a[i], templates_b[i]) << "spike " << i;
        }
    }
    EXPECT_GT(compared, 20u);
    const io::NpyArray templates = io::read_npy(dir_ / "b" / "templates.npy");
    const auto phy_templates_b = io::read_npy_vector<std::int32_t>(dir_ / "b" / "spike_templates.npy");
    EXPECT_EQ(templates.shape[0],
              static_cast<std::size_t>(*std::max_element(phy_templates_b.begin(), phy_templates_b.end())) + 1);
}

} // namespace
} // namespace spikeline
