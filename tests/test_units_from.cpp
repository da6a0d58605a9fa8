// Offline units as the sorter (`sort --units-from`): a spikeline sort folder round-trips with the same unit ids and
// accuracy; a Kilosort-layout folder is accepted and its cluster ids kept, through its spike times on the same
// recording and through its templates alone on another session; folders of another channel count or probe are
// refused, naming both.
#include "eval/compare.hpp"
#include "io/npy.hpp"
#include "io/recording.hpp"
#include "pipeline/sort_run.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "sort/units_from_folder.hpp"
#include "stream/stream_run.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

namespace spikeline {
namespace {

namespace fs = std::filesystem;

constexpr int kChannels = 64;
constexpr double kSeconds = 16;
constexpr double kCalibrationS = 12;
constexpr int kTemplateSamples = 61; ///< Kilosort's template length at 30 kHz
constexpr int kTemplateTrough = 20;  ///< Kilosort's nt0min

class UnitsFrom : public testing::TempDirTest {
protected:
    void SetUp() override {
        TempDirTest::SetUp();
        sim::SimulationConfig config;
        config.n_channels = kChannels;
        config.duration_s = kSeconds;
        config.seed = 7;
        sim_ = dir_ / "sim";
        sim::simulate_to_folder(config, probe::default_probe(kChannels), sim_);
        probe_ = probe::read_probeinterface(sim_ / "probe.json");
        truth_ = eval::read_ground_truth(sim_ / "ground_truth");
    }

    io::RecordingInfo info() const { return io::open_recording(sim_ / "recording.bin", {})->info(); }

    SortRunResult sort(const fs::path& out, const fs::path& units_from = {}, bool all_units = false) {
        SortRunOptions options;
        options.sort.calibration_s = kCalibrationS;
        options.detect.backend = {"cpu", 2};
        if (!units_from.empty())
            options.units_from = std::make_shared<const sort::OfflineUnits>(
                sort::read_offline_units(units_from, info(), probe_, {all_units}));
        auto open = [&] { return io::open_recording(sim_ / "recording.bin", {}); };
        return run_sorting(open, probe_, options, out);
    }

    /// The Kilosort cluster id of ground-truth unit index i: reversed, so that they are not the simulator's ids and
    /// include 0 (a real unit in Kilosort, the unsorted spikes in spikeline).
    int kilosort_id(std::size_t i) const { return static_cast<int>(truth_.units.size() - 1 - i); }
    bool kilosort_good(std::size_t i) const { return truth_.units[i].snr >= 6; }

    /// A Kilosort-layout folder of the ground-truth units: dense float32 templates (the mean raw snippet around each
    /// unit's first 200 spikes, minus its mean, 61 samples with the trough at 20) divided by 20, amplitudes 20 (so
    /// template x amplitude is the spike in the recording's sample units, as Kilosort's), no whitening, spike times
    /// `time_shift` later and one sample early (as Kilosort's alignment may put them), cluster_KSLabel.tsv.
    fs::path write_kilosort_folder(const std::string& name, std::int64_t time_shift) {
        const fs::path out = dir_ / name;
        fs::create_directories(out);
        auto source = io::open_recording(sim_ / "recording.bin", {});
        const io::RecordingInfo recording = source->info();
        std::vector<std::int16_t> data(recording.n_frames * kChannels);
        for (std::size_t done = 0; done < recording.n_frames;)
            done += source->read(&data[done * kChannels], recording.n_frames - done);

        const std::size_t n_units = truth_.units.size();
        std::map<int, std::size_t> index_of;
        for (std::size_t i = 0; i < n_units; ++i)
            index_of[truth_.units[i].id] = i;
        constexpr float kScale = 20;
        std::vector<float> templates(n_units * kTemplateSamples * kChannels, 0.0f);
        std::vector<int> counted(n_units, 0);
        std::vector<std::uint64_t> times;
        std::vector<std::uint32_t> spike_templates;
        std::vector<std::int32_t> spike_clusters;
        std::vector<double> amplitudes;
        for (std::size_t s = 0; s < truth_.spike_times.size(); ++s) {
            const std::uint64_t t = truth_.spike_times[s];
            const std::size_t i = index_of.at(truth_.spike_units[s]);
            times.push_back(t - 1 + static_cast<std::uint64_t>(time_shift));
            spike_templates.push_back(static_cast<std::uint32_t>(i));
            spike_clusters.push_back(kilosort_id(i));
            amplitudes.push_back(kScale);
            if (counted[i] == 200 || t < kTemplateTrough || t + kTemplateSamples >= recording.n_frames)
                continue;
            ++counted[i];
            for (int c = 0; c < kChannels; ++c) {
                double mean = 0;
                for (int k = 0; k < kTemplateSamples; ++k)
                    mean += data[(t - kTemplateTrough + k) * kChannels + c];
                mean /= kTemplateSamples;
                for (int k = 0; k < kTemplateSamples; ++k)
                    templates[(i * kTemplateSamples + k) * kChannels + c] +=
                        static_cast<float>(data[(t - kTemplateTrough + k) * kChannels + c] - mean);
            }
        }
        for (std::size_t i = 0; i < n_units; ++i)
            for (int k = 0; k < kTemplateSamples * kChannels; ++k)
                templates[i * kTemplateSamples * kChannels + k] /= static_cast<float>(std::max(counted[i], 1)) * kScale;
        io::write_npy(out / "templates.npy", templates.data(), {n_units, kTemplateSamples, kChannels});
        io::write_npy(out / "spike_times.npy", times);
        io::write_npy(out / "spike_templates.npy", spike_templates);
        io::write_npy(out / "spike_clusters.npy", spike_clusters);
        io::write_npy(out / "amplitudes.npy", amplitudes);
        std::vector<std::int32_t> channel_map;
        std::vector<double> positions;
        for (int c = 0; c < kChannels; ++c) {
            channel_map.push_back(c);
            // Another origin than the probe's, as Kilosort channel maps often have.
            positions.push_back(probe_.contacts[static_cast<std::size_t>(c)].x_um + 11);
            positions.push_back(probe_.contacts[static_cast<std::size_t>(c)].y_um + 100);
        }
        io::write_npy(out / "channel_map.npy", channel_map);
        io::write_npy(out / "channel_positions.npy", positions.data(), {kChannels, 2});
        std::ofstream labels(out / "cluster_KSLabel.tsv");
        labels << "cluster_id\tKSLabel\n";
        for (std::size_t i = 0; i < n_units; ++i)
            labels << kilosort_id(i) << '\t' << (kilosort_good(i) ? "good" : "mua") << '\n';
        std::ofstream(out / "params.py") << "dat_path = 'recording.bin'\nn_channels_dat = " << kChannels
                                         << "\ndtype = 'int16'\noffset = 0\nsample_rate = 30000.0\n"
                                         << "hp_filtered = False\n";
        return out;
    }

    /// Each good ground-truth unit of SNR >= 8 is found as the cluster of its Kilosort id (Phy cluster = unit + 1);
    /// returns their mean accuracy.
    double expect_kilosort_ids_kept(const fs::path& out, double min_share) {
        const eval::SortingScore score = eval::compare_sorting(truth_, eval::read_sorted(out));
        int checked = 0, kept = 0;
        double accuracy = 0;
        for (std::size_t i = 0; i < truth_.units.size(); ++i) {
            if (!kilosort_good(i) || truth_.units[i].snr < 8)
                continue;
            ++checked;
            kept += score.units[i].best_cluster == kilosort_id(i) + 1;
            accuracy += score.units[i].accuracy;
        }
        EXPECT_GE(checked, 3);
        EXPECT_GE(kept, min_share * checked) << eval::format_report(score);
        // Only good clusters' ids appear.
        std::set<int> good;
        for (std::size_t i = 0; i < truth_.units.size(); ++i)
            if (kilosort_good(i))
                good.insert(kilosort_id(i) + 1);
        for (std::int32_t cluster : io::read_npy_vector<std::int32_t>(out / "spike_clusters.npy")) {
            if (cluster != 0) {
                EXPECT_TRUE(good.count(cluster)) << "cluster " << cluster << " is not a good Kilosort unit + 1";
            }
        }
        return checked > 0 ? accuracy / checked : 0;
    }

    fs::path sim_;
    probe::Probe probe_;
    eval::GroundTruth truth_;
};

double snr8_accuracy(const eval::GroundTruth& truth, const fs::path& out) {
    const eval::SortingScore score = eval::compare_sorting(truth, eval::read_sorted(out));
    return score.bins[4].mean_accuracy;
}

TEST_F(UnitsFrom, ASpikelineSortFolderRoundTripsWithTheSameUnitIdsAndAccuracy) {
    const fs::path first = dir_ / "first", again = dir_ / "again";
    sort(first);
    const SortRunResult result = sort(again, first, true);
    EXPECT_TRUE(result.units_from.spike_times_used);
    EXPECT_EQ(result.units_from.spike_time_offset, 0);
    EXPECT_GT(result.units_from.units_from_spikes, 0);

    const auto times = io::read_npy_vector<std::uint64_t>(first / "spike_times.npy");
    ASSERT_EQ(times, io::read_npy_vector<std::uint64_t>(again / "spike_times.npy")); // the same detection
    const auto clusters = io::read_npy_vector<std::int32_t>(first / "spike_clusters.npy");
    const auto clusters_again = io::read_npy_vector<std::int32_t>(again / "spike_clusters.npy");
    ASSERT_EQ(clusters.size(), clusters_again.size());
    std::size_t same = 0;
    for (std::size_t i = 0; i < clusters.size(); ++i)
        same += clusters[i] == clusters_again[i];
    // Not all: units the first sort learnt later (from what it left unsorted) label their spikes from the start here.
    // (With the spatial detection rule on, 0.894: its smallest clusters, 20-35 spikes, are not rebuilt.) The first
    // sort also registers its units on rows kriged from their footprints (calibrate under motion), which templates
    // read back do not reproduce: 0.876 since 2026-12-07 (0.929 before), with both sorts more accurate (SNR > 8 0.818
    // and 0.802, against 0.790 and 0.767).
    EXPECT_GE(static_cast<double>(same), 0.85 * static_cast<double>(clusters.size()));
    const std::set<std::int32_t> ids(clusters.begin(), clusters.end());
    for (std::int32_t cluster : clusters_again)
        EXPECT_TRUE(ids.count(cluster)) << "cluster " << cluster << " is not one of the first sort's";
    EXPECT_NEAR(snr8_accuracy(truth_, again), snr8_accuracy(truth_, first), 0.03);

    std::ifstream record(again / "spikeline_sort.json");
    const nlohmann::json meta = nlohmann::json::parse(record);
    EXPECT_EQ(meta["units_from"]["layout"], "spikeline");
    EXPECT_EQ(meta["units_from"]["spike_times_used"], true);
}

TEST_F(UnitsFrom, AKilosortFolderOfThisRecordingKeepsItsClusterIdsThroughItsSpikeTimes) {
    const fs::path kilosort = write_kilosort_folder("kilosort", 0);
    const fs::path out = dir_ / "online";
    const SortRunResult result = sort(out, kilosort);
    EXPECT_TRUE(result.units_from.spike_times_used);
    // The folder's times are one sample early, and the detector aligns on the band-passed trough, a little later.
    EXPECT_GE(result.units_from.spike_time_offset, 1);
    EXPECT_LE(result.units_from.spike_time_offset, 4);
    EXPECT_GE(expect_kilosort_ids_kept(out, 1.0), 0.9);
}

TEST_F(UnitsFrom, AKilosortFolderOfAnotherSessionKeepsItsClusterIdsThroughItsTemplates) {
    // Spike times 3 s off: they do not line up with this recording, as another session's would not.
    const fs::path kilosort = write_kilosort_folder("kilosort", 90000);
    const fs::path out = dir_ / "online";
    const SortRunResult result = sort(out, kilosort);
    EXPECT_FALSE(result.units_from.spike_times_used);
    EXPECT_EQ(result.units_from.units_from_spikes, 0);
    EXPECT_GT(result.units_from.units_from_templates, 0);
    EXPECT_GE(expect_kilosort_ids_kept(out, 1.0), 0.85);
}

TEST_F(UnitsFrom, WhitenedTemplatesAreUnwhitenedWithTheInverseWhiteningMatrix) {
    // Templates read through their templates (spike times 3 s off), so that their scale matters: a folder whose
    // templates are whitened by a per-channel gain, with whitening_mat_inv.npy undoing it, labels as the plain one.
    const fs::path plain = write_kilosort_folder("plain", 90000);
    const fs::path whitened = write_kilosort_folder("whitened", 90000);
    std::vector<double> inverse(kChannels * kChannels, 0.0);
    std::vector<float> templates = io::read_npy(whitened / "templates.npy").as<float>();
    for (int c = 0; c < kChannels; ++c) {
        const double gain = 0.5 + 1.5 * c / (kChannels - 1);
        inverse[static_cast<std::size_t>(c * kChannels + c)] = gain;
        for (std::size_t v = static_cast<std::size_t>(c); v < templates.size(); v += kChannels)
            templates[v] = static_cast<float>(templates[v] / gain);
    }
    io::write_npy(whitened / "templates.npy", templates.data(),
                  {truth_.units.size(), static_cast<std::size_t>(kTemplateSamples), kChannels});
    io::write_npy(whitened / "whitening_mat_inv.npy", inverse.data(), {kChannels, kChannels});
    sort(dir_ / "from_plain", plain);
    sort(dir_ / "from_whitened", whitened);
    const auto expected = io::read_npy_vector<std::int32_t>(dir_ / "from_plain" / "spike_clusters.npy");
    const auto actual = io::read_npy_vector<std::int32_t>(dir_ / "from_whitened" / "spike_clusters.npy");
    ASSERT_EQ(actual.size(), expected.size());
    std::size_t same = 0;
    for (std::size_t i = 0; i < actual.size(); ++i)
        same += actual[i] == expected[i];
    // Float32 rounding of the whitened templates may move a spike at a gate's edge, no more.
    EXPECT_GE(static_cast<double>(same), 0.995 * static_cast<double>(actual.size()));
}

TEST_F(UnitsFrom, AStreamBuildsItsSorterFromTheFolderAtTheEndOfItsCalibrationWindow) {
    const fs::path kilosort = write_kilosort_folder("kilosort", 0);
    stream::StreamOptions options;
    options.source.source = (sim_ / "recording.bin").string();
    options.out_dir = dir_ / "stream";
    options.sort.calibration_s = 8;
    options.units_from = kilosort;
    options.save_raw = false;
    const std::atomic<bool> stop{false};
    const nlohmann::json summary = stream::run_stream(options, stop);
    const nlohmann::json& from = summary["calibration"]["units_from"];
    EXPECT_EQ(summary["calibration"]["done"], true) << summary.dump(2);
    EXPECT_EQ(from["spike_times_used"], true) << summary.dump(2);
    EXPECT_EQ(from["layout"], "kilosort");
    EXPECT_EQ(from["labels_file"], "cluster_KSLabel.tsv");
    EXPECT_EQ(summary["learning"]["enabled"], false); // a fixed sorter
    // The sorter the stream saved holds exactly the good units, under their Kilosort ids.
    std::set<int> good, saved;
    for (std::size_t i = 0; i < truth_.units.size(); ++i)
        if (kilosort_good(i))
            good.insert(kilosort_id(i));
    std::ifstream sorter_file(options.out_dir / "sorter.json");
    const nlohmann::json sorter = nlohmann::json::parse(sorter_file);
    for (const nlohmann::json& unit : sorter["units"])
        saved.insert(unit["id"].get<int>());
    EXPECT_EQ(saved, good);
}

TEST_F(UnitsFrom, FoldersOfAnotherChannelCountOrProbeAreRefusedNamingBoth) {
    const fs::path kilosort = write_kilosort_folder("kilosort", 0);
    io::RecordingInfo wider = info();
    wider.n_channels = 128;
    try {
        sort::read_offline_units(kilosort, wider, probe::default_probe(128), {});
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("channel count mismatch"), std::string::npos) << message;
        EXPECT_NE(message.find("64"), std::string::npos) << message;
        EXPECT_NE(message.find("128"), std::string::npos) << message;
    }
    probe::Probe stretched = probe_;
    stretched.name = "stretched";
    for (probe::Contact& contact : stretched.contacts)
        contact.y_um *= 2;
    try {
        sort::read_offline_units(kilosort, info(), stretched, {});
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("not this probe's (stretched)"), std::string::npos) << message;
        EXPECT_NE(message.find("channel_positions.npy"), std::string::npos) << message;
    }
    // No good unit: the message says how to take the others.
    std::ofstream(kilosort / "cluster_KSLabel.tsv") << "cluster_id\tKSLabel\n0\tmua\n";
    try {
        sort::read_offline_units(kilosort, info(), probe_, {});
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("--units-from-all"), std::string::npos) << e.what();
    }
}

} // namespace
} // namespace spikeline
