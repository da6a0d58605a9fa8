#include "eval/compare.hpp"
#include "io/npy.hpp"
#include "probe/probe.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

namespace fs = std::filesystem;
using spikeline::InputError;
using spikeline::eval::compare_detection;
using spikeline::eval::DetectedSpikes;
using spikeline::eval::DetectionCompareOptions;
using spikeline::eval::GroundTruth;

/// A single column of channels 20 um apart: channel c at y = 20 c.
spikeline::probe::Probe column_probe(int n_channels) {
    spikeline::probe::Probe probe;
    probe.name = "test column";
    for (int c = 0; c < n_channels; ++c) {
        spikeline::probe::Contact contact;
        contact.x_um = 0;
        contact.y_um = 20.0 * c;
        contact.id = std::to_string(c);
        contact.id.insert(0, 1, 'c');
        probe.contacts.push_back(contact);
    }
    return probe;
}

GroundTruth::Unit make_unit(int id, int peak_channel, double snr) {
    GroundTruth::Unit unit;
    unit.id = id;
    unit.peak_channel = peak_channel;
    unit.snr = snr;
    return unit;
}

/// Sample rate 30 kHz, so the default window (0.4 ms) is 12 samples.
GroundTruth make_truth(std::vector<GroundTruth::Unit> units, std::vector<std::uint64_t> times,
                       std::vector<std::int32_t> spike_units) {
    GroundTruth truth;
    truth.sample_rate = 30000;
    truth.units = std::move(units);
    truth.spike_times = std::move(times);
    truth.spike_units = std::move(spike_units);
    for (auto& unit : truth.units)
        for (std::int32_t id : truth.spike_units)
            unit.n_spikes += id == unit.id ? 1 : 0;
    return truth;
}

constexpr std::uint64_t kWindow = 12;

TEST(Compare, PerfectDetectionHasRecallAndPrecisionOne) {
    const auto probe = column_probe(16);
    const GroundTruth truth =
        make_truth({make_unit(1, 2, 6), make_unit(2, 9, 10)}, {100, 150, 400, 401, 900}, {1, 2, 1, 2, 1});
    DetectedSpikes detected;
    detected.times = truth.spike_times;
    detected.channels = {2, 9, 2, 9, 2};
    const auto score = compare_detection(truth, detected, probe);
    EXPECT_EQ(score.window_samples, kWindow);
    EXPECT_EQ(score.n_ground_truth, 5u);
    EXPECT_EQ(score.n_detected, 5u);
    EXPECT_EQ(score.n_matched, 5u);
    EXPECT_DOUBLE_EQ(score.recall, 1.0);
    EXPECT_DOUBLE_EQ(score.precision, 1.0);
    EXPECT_DOUBLE_EQ(score.recall_snr_at_least_5, 1.0);
    ASSERT_EQ(score.unit_recall.size(), 2u);
    EXPECT_DOUBLE_EQ(score.unit_recall[0], 1.0);
    EXPECT_DOUBLE_EQ(score.unit_recall[1], 1.0);
}

TEST(Compare, WindowIsInclusiveAndExact) {
    const auto probe = column_probe(4);
    // Four spikes far apart; events shifted by +-window match, by +-(window + 1) do not.
    const GroundTruth truth = make_truth({make_unit(7, 1, 6)}, {1000, 2000, 3000, 4000}, {7, 7, 7, 7});
    DetectedSpikes detected;
    detected.times = {1000 + kWindow, 2000 - kWindow, 3000 + kWindow + 1, 4000 - kWindow - 1};
    detected.channels = {1, 1, 1, 1};
    const auto score = compare_detection(truth, detected, probe);
    EXPECT_EQ(score.n_matched, 2u);
    EXPECT_DOUBLE_EQ(score.recall, 0.5);
    EXPECT_DOUBLE_EQ(score.precision, 0.5);

    // A wider window (in ms) takes the other two.
    DetectionCompareOptions wide;
    wide.window_ms = (kWindow + 1) / 30.0;
    EXPECT_EQ(compare_detection(truth, detected, probe, wide).n_matched, 4u);
    // window_ms = 0 needs exact times.
    DetectionCompareOptions exact;
    exact.window_ms = 0;
    detected.times = {1000, 2001, 2999, 4000};
    EXPECT_EQ(compare_detection(truth, detected, probe, exact).n_matched, 2u);
}

TEST(Compare, GroundTruthMotionInterpolatesInTimeAndDepthAndHoldsBeyond) {
    spikeline::eval::GroundTruthMotion motion;
    motion.times_s = {0.0, 1.0};
    motion.depths_um = {0.0, 100.0};
    motion.um = {0.0, 10.0,   // t = 0
                 40.0, 50.0}; // t = 1
    EXPECT_DOUBLE_EQ(motion.at(0.5, 0.0), 20.0);
    EXPECT_DOUBLE_EQ(motion.at(0.5, 50.0), 25.0);
    EXPECT_DOUBLE_EQ(motion.at(1.0, 100.0), 50.0);
    EXPECT_DOUBLE_EQ(motion.at(-1.0, -20.0), 0.0); // held before the first time and below the lowest depth
    EXPECT_DOUBLE_EQ(motion.at(7.0, 500.0), 50.0);
}

TEST(Compare, DetectionRadiusFollowsTheGroundTruthsDrift) {
    const auto probe = column_probe(16);
    // Unit 1 peaks on channel 2 (y = 40 um); the tissue has moved +60 um by then: the unit sits at channel 5.
    GroundTruth truth = make_truth({make_unit(1, 2, 10)}, {3000, 6000}, {1, 1});
    spikeline::eval::GroundTruthMotion motion;
    motion.times_s = {0.0, 1.0};
    motion.depths_um = {0.0, 300.0};
    motion.um = {60.0, 60.0, 60.0, 60.0};
    truth.motion = motion;
    DetectedSpikes detected;
    detected.times = {3000, 6000};
    detected.channels = {5, 0}; // 60 um from the nominal peak but where the unit was; 40 um from it but 100 from there
    const auto moving = compare_detection(truth, detected, probe);
    EXPECT_TRUE(moving.followed_motion);
    EXPECT_EQ(moving.n_matched, 1u);
    EXPECT_DOUBLE_EQ(moving.precision, 0.5);
    DetectionCompareOptions nominal;
    nominal.follow_motion = false;
    const auto fixed = compare_detection(truth, detected, probe, nominal);
    EXPECT_FALSE(fixed.followed_motion);
    EXPECT_EQ(fixed.n_matched, 1u);
    // The event each way matched is the other one: with the drift the first (channel 5), without it the second.
    detected.channels = {5, 5};
    EXPECT_EQ(compare_detection(truth, detected, probe).n_matched, 2u);
    EXPECT_EQ(compare_detection(truth, detected, probe, nominal).n_matched, 0u);
}

TEST(Compare, WindowNearTimeZeroDoesNotWrap) {
    const auto probe = column_probe(4);
    const GroundTruth truth = make_truth({make_unit(1, 0, 6)}, {3}, {1});
    DetectedSpikes detected;
    detected.times = {0};
    detected.channels = {0};
    EXPECT_EQ(compare_detection(truth, detected, probe).n_matched, 1u);
}

TEST(Compare, EventBeyondRadiusDoesNotMatch) {
    const auto probe = column_probe(16);
    const GroundTruth truth = make_truth({make_unit(1, 5, 6)}, {1000, 2000, 3000}, {1, 1, 1});
    DetectedSpikes detected;
    // Channel 7 is 40 um away, 8 is 60 um, 2 is 60 um: with radius 50 only the first matches.
    detected.times = {1000, 2000, 3000};
    detected.channels = {7, 8, 2};
    auto score = compare_detection(truth, detected, probe);
    EXPECT_EQ(score.n_matched, 1u);
    ASSERT_EQ(score.unit_recall.size(), 1u);
    EXPECT_DOUBLE_EQ(score.unit_recall[0], 1.0 / 3.0);

    // The radius is inclusive: exactly 60 um matches with radius 60.
    DetectionCompareOptions options;
    options.radius_um = 60;
    EXPECT_EQ(compare_detection(truth, detected, probe, options).n_matched, 3u);
    options.radius_um = 59.9;
    EXPECT_EQ(compare_detection(truth, detected, probe, options).n_matched, 1u);
}

TEST(Compare, OneEventMatchesAtMostOneSpike) {
    const auto probe = column_probe(8);
    // Two units on the same channel fire 2 samples apart; one event lies between them.
    const GroundTruth truth = make_truth({make_unit(1, 3, 6), make_unit(2, 3, 6)}, {500, 502}, {1, 2});
    DetectedSpikes detected;
    detected.times = {501};
    detected.channels = {3};
    auto score = compare_detection(truth, detected, probe);
    EXPECT_EQ(score.n_matched, 1u);
    EXPECT_DOUBLE_EQ(score.recall, 0.5);
    EXPECT_DOUBLE_EQ(score.precision, 1.0);
    // The earlier spike (time order) takes it.
    EXPECT_DOUBLE_EQ(score.unit_recall[0], 1.0);
    EXPECT_DOUBLE_EQ(score.unit_recall[1], 0.0);

    // With a second event both are found.
    detected.times = {501, 510};
    detected.channels = {3, 3};
    score = compare_detection(truth, detected, probe);
    EXPECT_EQ(score.n_matched, 2u);
}

TEST(Compare, TiesGoToTheEarlierEventThenTheLowerIndex) {
    const auto probe = column_probe(8);
    // Spike at 1000: events at 995 and 1005 are equally close. The earlier (995) is taken, which leaves 1005 for
    // the spike at 1016 (reach 1004..1028); taking 1005 instead would leave the second spike without a match.
    const GroundTruth truth = make_truth({make_unit(1, 3, 6)}, {1000, 1016}, {1, 1});
    DetectedSpikes detected;
    detected.times = {1005, 995}; // unsorted on purpose
    detected.channels = {3, 3};
    auto score = compare_detection(truth, detected, probe);
    EXPECT_EQ(score.n_matched, 2u);
    EXPECT_DOUBLE_EQ(score.precision, 1.0);

    // Equal times: the event listed first wins. Unit 1 (peak 3) can use channels 3 and 4; unit 2 (peak 6) only
    // channel 4 (40 um; channel 3 is 60 um away).
    const GroundTruth two = make_truth({make_unit(1, 3, 6), make_unit(2, 6, 6)}, {1000, 1001}, {1, 2});
    detected.times = {1000, 1000};
    detected.channels = {3, 4};
    EXPECT_EQ(compare_detection(two, detected, probe).n_matched, 2u);
    detected.channels = {4, 3};
    EXPECT_EQ(compare_detection(two, detected, probe).n_matched, 1u);
}

TEST(Compare, LengthMismatchInMemoryIsRejected) {
    const auto probe = column_probe(8);
    GroundTruth truth = make_truth({make_unit(1, 3, 6)}, {1000, 1010}, {1, 1});
    truth.spike_units.pop_back();
    EXPECT_THROW(compare_detection(truth, DetectedSpikes{}, probe), InputError);
    DetectedSpikes detected;
    detected.times = {1, 2};
    detected.channels = {0};
    EXPECT_THROW(compare_detection(make_truth({make_unit(1, 3, 6)}, {5}, {1}), detected, probe), InputError);
}

TEST(Compare, ClosestInTimeWinsOverEarlier) {
    const auto probe = column_probe(8);
    const GroundTruth truth = make_truth({make_unit(1, 3, 6)}, {1000, 1012}, {1, 1});
    DetectedSpikes detected;
    // First spike: 990 (10 away) and 1001 (1 away) -> takes 1001; second spike at 1012 reaches 1000..1024:
    // 1001 is taken, so nothing; 990 is out of reach.
    detected.times = {990, 1001};
    detected.channels = {3, 3};
    const auto score = compare_detection(truth, detected, probe);
    EXPECT_EQ(score.n_matched, 1u);
    EXPECT_DOUBLE_EQ(score.unit_recall[0], 0.5);
}

TEST(Compare, FalseEventsLowerPrecisionExactly) {
    const auto probe = column_probe(16);
    std::vector<std::uint64_t> times;
    std::vector<std::int32_t> units;
    for (std::uint64_t k = 0; k < 10; ++k) {
        times.push_back(1000 + 1000 * k);
        units.push_back(1);
    }
    const GroundTruth truth = make_truth({make_unit(1, 4, 9)}, times, units);
    DetectedSpikes detected;
    for (std::uint64_t k = 0; k < 10; ++k) {
        detected.times.push_back(1000 + 1000 * k + 3);
        detected.channels.push_back(4);
    }
    // 6 false events: 2 far in time, 2 on a far channel at spike times, 2 duplicates of matched spikes.
    for (std::uint64_t t : {1500u, 2500u}) {
        detected.times.push_back(t);
        detected.channels.push_back(4);
    }
    for (std::uint64_t t : {3000u, 4000u}) {
        detected.times.push_back(t);
        detected.channels.push_back(15);
    }
    for (std::uint64_t t : {5001u, 6001u}) {
        detected.times.push_back(t);
        detected.channels.push_back(4);
    }
    const auto score = compare_detection(truth, detected, probe);
    EXPECT_EQ(score.n_detected, 16u);
    EXPECT_EQ(score.n_matched, 10u);
    EXPECT_DOUBLE_EQ(score.recall, 1.0);
    EXPECT_DOUBLE_EQ(score.precision, 10.0 / 16.0);
}

TEST(Compare, SnrBins) {
    const auto probe = column_probe(32);
    // Units: SNR 2 (below the bins), 3 and 4.9 (3-5), 5 (5-8), 8 and 11.99 (8-12), 12 and 40 (12+).
    std::vector<GroundTruth::Unit> units = {make_unit(10, 0, 2.0),   make_unit(11, 4, 3.0),  make_unit(12, 8, 4.9),
                                            make_unit(13, 12, 5.0),  make_unit(14, 16, 8.0), make_unit(15, 20, 11.99),
                                            make_unit(16, 24, 12.0), make_unit(17, 28, 40.0)};
    // Spikes per unit (n) and how many are detected (f).
    const int n[] = {4, 2, 4, 5, 1, 3, 2, 6};
    const int f[] = {1, 1, 4, 5, 0, 2, 2, 3};
    std::vector<std::uint64_t> times;
    std::vector<std::int32_t> spike_units;
    DetectedSpikes detected;
    std::uint64_t t = 100;
    // Interleave units so that spike times are shared across units in time order.
    for (int round = 0; round < 6; ++round)
        for (std::size_t u = 0; u < units.size(); ++u) {
            if (round >= n[u])
                continue;
            times.push_back(t);
            spike_units.push_back(units[u].id);
            if (round < f[u]) {
                detected.times.push_back(t + 1);
                detected.channels.push_back(units[u].peak_channel);
            }
            t += 100;
        }
    const GroundTruth truth = make_truth(units, times, spike_units);
    const auto score = compare_detection(truth, detected, probe);

    EXPECT_EQ(score.n_ground_truth, 27u);
    EXPECT_EQ(score.n_matched, 18u);
    EXPECT_DOUBLE_EQ(score.precision, 1.0);
    EXPECT_DOUBLE_EQ(score.recall, 18.0 / 27.0);
    // SNR >= 5: units 13..17: spikes 5+1+3+2+6 = 17, found 5+0+2+2+3 = 12.
    EXPECT_DOUBLE_EQ(score.recall_snr_at_least_5, 12.0 / 17.0);

    ASSERT_EQ(score.bins.size(), 4u);
    EXPECT_EQ(score.bins[0].label, "3-5");
    EXPECT_EQ(score.bins[1].label, "5-8");
    EXPECT_EQ(score.bins[2].label, "8-12");
    EXPECT_EQ(score.bins[3].label, "12+");
    EXPECT_DOUBLE_EQ(score.bins[0].snr_low, 3);
    EXPECT_DOUBLE_EQ(score.bins[0].snr_high, 5);
    EXPECT_DOUBLE_EQ(score.bins[3].snr_low, 12);
    EXPECT_TRUE(std::isinf(score.bins[3].snr_high));

    EXPECT_EQ(score.bins[0].n_units, 2);
    EXPECT_EQ(score.bins[0].n_spikes, 6u);
    EXPECT_EQ(score.bins[0].n_found, 5u);
    EXPECT_DOUBLE_EQ(score.bins[0].recall, 5.0 / 6.0);
    EXPECT_DOUBLE_EQ(score.bins[0].mean_unit_recall, (0.5 + 1.0) / 2);

    EXPECT_EQ(score.bins[1].n_units, 1);
    EXPECT_EQ(score.bins[1].n_spikes, 5u);
    EXPECT_EQ(score.bins[1].n_found, 5u);
    EXPECT_DOUBLE_EQ(score.bins[1].recall, 1.0);
    EXPECT_DOUBLE_EQ(score.bins[1].mean_unit_recall, 1.0);

    EXPECT_EQ(score.bins[2].n_units, 2);
    EXPECT_EQ(score.bins[2].n_spikes, 4u);
    EXPECT_EQ(score.bins[2].n_found, 2u);
    EXPECT_DOUBLE_EQ(score.bins[2].recall, 0.5);
    EXPECT_DOUBLE_EQ(score.bins[2].mean_unit_recall, (0.0 + 2.0 / 3.0) / 2);

    EXPECT_EQ(score.bins[3].n_units, 2);
    EXPECT_EQ(score.bins[3].n_spikes, 8u);
    EXPECT_EQ(score.bins[3].n_found, 5u);
    EXPECT_DOUBLE_EQ(score.bins[3].recall, 5.0 / 8.0);
    EXPECT_DOUBLE_EQ(score.bins[3].mean_unit_recall, (1.0 + 0.5) / 2);

    ASSERT_EQ(score.units.size(), 8u);
    EXPECT_EQ(score.units[0].unit_id, 10);
    EXPECT_EQ(score.units[0].n_spikes, 4u);
    EXPECT_EQ(score.units[0].n_found, 1u);
    EXPECT_DOUBLE_EQ(score.unit_recall[0], 0.25);

    const nlohmann::json json = spikeline::eval::to_json(score);
    EXPECT_EQ(json["n_ground_truth"], 27);
    EXPECT_EQ(json["n_matched"], 18);
    EXPECT_DOUBLE_EQ(json["recall_snr_at_least_5"].get<double>(), 12.0 / 17.0);
    ASSERT_EQ(json["bins"].size(), 4u);
    EXPECT_EQ(json["bins"][0]["label"], "3-5");
    EXPECT_EQ(json["bins"][0]["n_found"], 5);
    EXPECT_TRUE(json["bins"][3]["snr_high"].is_null());
    EXPECT_DOUBLE_EQ(json["bins"][2]["snr_high"].get<double>(), 12.0);
    ASSERT_EQ(json["units"].size(), 8u);
    EXPECT_EQ(json["units"][7]["unit_id"], 17);
    EXPECT_EQ(json["units"][7]["peak_channel"], 28);
    EXPECT_EQ(json["units"][7]["n_spikes"], 6);
    EXPECT_DOUBLE_EQ(json["units"][7]["recall"].get<double>(), 0.5);

    const std::string report = spikeline::eval::format_report(score);
    EXPECT_NE(report.find("8-12"), std::string::npos);
    EXPECT_NE(report.find("precision 1.000"), std::string::npos);
    EXPECT_NE(report.find("0.667"), std::string::npos); // overall recall 18/27
}

TEST(Compare, EmptyInputsGiveUndefinedRatios) {
    const auto probe = column_probe(4);
    const GroundTruth truth = make_truth({make_unit(1, 0, 6)}, {}, {});
    const auto score = compare_detection(truth, DetectedSpikes{}, probe);
    EXPECT_EQ(score.n_matched, 0u);
    EXPECT_TRUE(std::isnan(score.precision));
    EXPECT_TRUE(std::isnan(score.recall));
    EXPECT_TRUE(std::isnan(score.bins[1].mean_unit_recall));
    EXPECT_EQ(score.bins[1].n_units, 1);
    const auto json = spikeline::eval::to_json(score);
    EXPECT_TRUE(json["precision"].is_null());
    EXPECT_TRUE(json["units"][0]["recall"].is_null());
    EXPECT_NE(spikeline::eval::format_report(score).find("precision -"), std::string::npos);
}

TEST(Compare, RejectsChannelsOutsideTheProbeAndUnknownUnits) {
    const auto probe = column_probe(4);
    DetectedSpikes detected;
    detected.times = {10};
    detected.channels = {4};
    const GroundTruth truth = make_truth({make_unit(1, 0, 6)}, {10}, {1});
    EXPECT_THROW(compare_detection(truth, detected, probe), InputError);
    detected.channels = {-1};
    EXPECT_THROW(compare_detection(truth, detected, probe), InputError);
    detected.channels = {0};
    EXPECT_NO_THROW(compare_detection(truth, detected, probe));
    EXPECT_THROW(compare_detection(make_truth({make_unit(1, 4, 6)}, {10}, {1}), detected, probe), InputError);
    EXPECT_THROW(compare_detection(make_truth({make_unit(1, 0, 6)}, {10}, {2}), detected, probe), InputError);
    DetectionCompareOptions negative;
    negative.window_ms = -1;
    EXPECT_THROW(compare_detection(truth, detected, probe, negative), InputError);
}

TEST(Compare, MatchesBruteForceOnRandomData) {
    const auto probe = column_probe(64);
    std::mt19937_64 rng(42);
    std::vector<GroundTruth::Unit> units;
    for (int u = 0; u < 20; ++u)
        units.push_back(make_unit(100 + u, static_cast<int>(rng() % 64), 3.0 + static_cast<double>(rng() % 20)));
    std::vector<std::uint64_t> times;
    std::vector<std::int32_t> spike_units;
    std::uint64_t t = 0;
    for (int k = 0; k < 3000; ++k) {
        t += rng() % 8;
        times.push_back(t);
        spike_units.push_back(units[rng() % units.size()].id);
    }
    const GroundTruth truth = make_truth(units, times, spike_units);
    DetectedSpikes detected;
    for (int k = 0; k < 4000; ++k) {
        detected.times.push_back(rng() % (t + 20));
        detected.channels.push_back(static_cast<std::int32_t>(rng() % 64));
    }
    const auto score = compare_detection(truth, detected, probe);

    // Brute force with the documented rule over the events in their given order.
    std::vector<bool> used(detected.times.size(), false);
    std::uint64_t matched = 0;
    for (std::size_t i = 0; i < times.size(); ++i) {
        int peak = 0;
        for (const auto& unit : units)
            if (unit.id == spike_units[i])
                peak = unit.peak_channel;
        std::size_t best = detected.times.size();
        for (std::size_t e = 0; e < detected.times.size(); ++e) {
            if (used[e] || std::abs(detected.channels[e] - peak) * 20.0 > 50.0)
                continue;
            const auto te = static_cast<std::int64_t>(detected.times[e]);
            const auto ti = static_cast<std::int64_t>(times[i]);
            if (std::abs(te - ti) > static_cast<std::int64_t>(kWindow))
                continue;
            if (best == detected.times.size())
                best = e;
            else {
                const auto tb = static_cast<std::int64_t>(detected.times[best]);
                const auto key_e = std::abs(te - ti), key_b = std::abs(tb - ti);
                if (key_e < key_b || (key_e == key_b && (te < tb || (te == tb && e < best))))
                    best = e;
            }
        }
        if (best != detected.times.size()) {
            used[best] = true;
            ++matched;
        }
    }
    EXPECT_GT(matched, 100u);
    EXPECT_EQ(score.n_matched, matched);
}

// ---------------------------------------------------------------------------------------------------------------
// Files

class CompareFiles : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("spikeline_test_compare_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_ / "gt");
        fs::create_directories(dir_ / "out");
    }
    void TearDown() override { fs::remove_all(dir_); }

    void write_text(const fs::path& path, const std::string& text) {
        std::ofstream out(path, std::ios::binary);
        out << text;
    }

    void write_truth() {
        spikeline::io::write_npy(dir_ / "gt" / "spike_times.npy", std::vector<std::uint64_t>{5, 40, 40, 900});
        spikeline::io::write_npy(dir_ / "gt" / "spike_units.npy", std::vector<std::int32_t>{3, 8, 3, 8});
        write_text(dir_ / "gt" / "units.tsv", "unit_id\tpeak_channel\tsnr\trate_hz\tn_spikes\n"
                                              "3\t1\t4.5\t2.5\t2\n"
                                              "8\t7\t12.25\t10\t2\n");
        write_text(dir_ / "gt" / "info.json", R"({"sample_rate": 25000.0, "n_channels": 8, "duration_s": 1.0})");
    }

    /// Expects an InputError whose message mentions `needle`.
    template <class F> void expect_error(F&& f, const std::string& needle) {
        try {
            f();
            ADD_FAILURE() << "no InputError (expected one mentioning " << needle << ")";
        } catch (const InputError& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    }

    fs::path dir_;
};

TEST_F(CompareFiles, GroundTruthRoundTrip) {
    write_truth();
    const GroundTruth truth = spikeline::eval::read_ground_truth(dir_ / "gt");
    EXPECT_DOUBLE_EQ(truth.sample_rate, 25000.0);
    EXPECT_EQ(truth.spike_times, (std::vector<std::uint64_t>{5, 40, 40, 900}));
    EXPECT_EQ(truth.spike_units, (std::vector<std::int32_t>{3, 8, 3, 8}));
    ASSERT_EQ(truth.units.size(), 2u);
    EXPECT_EQ(truth.units[0].id, 3);
    EXPECT_EQ(truth.units[0].peak_channel, 1);
    EXPECT_DOUBLE_EQ(truth.units[0].snr, 4.5);
    EXPECT_DOUBLE_EQ(truth.units[0].rate_hz, 2.5);
    EXPECT_EQ(truth.units[0].n_spikes, 2u);
    EXPECT_EQ(truth.units[1].id, 8);
    EXPECT_EQ(truth.units[1].peak_channel, 7);
    EXPECT_DOUBLE_EQ(truth.units[1].snr, 12.25);
    EXPECT_DOUBLE_EQ(truth.units[1].rate_hz, 10.0);
}

TEST_F(CompareFiles, DetectedRoundTripAndScore) {
    write_truth();
    spikeline::io::write_npy(dir_ / "out" / "spike_times.npy", std::vector<std::uint64_t>{900, 6, 41});
    spikeline::io::write_npy(dir_ / "out" / "spike_channels.npy", std::vector<std::int32_t>{7, 1, 2});
    const DetectedSpikes detected = spikeline::eval::read_detected(dir_ / "out");
    EXPECT_EQ(detected.times, (std::vector<std::uint64_t>{900, 6, 41}));
    EXPECT_EQ(detected.channels, (std::vector<std::int32_t>{7, 1, 2}));

    const auto score = compare_detection(spikeline::eval::read_ground_truth(dir_ / "gt"), detected, column_probe(8));
    EXPECT_EQ(score.window_samples, 10u); // 0.4 ms at 25 kHz
    // 5 <- 6 (ch 1), 40 (unit 8, peak 7) <- none (41 is on ch 2, 100 um away), 40 (unit 3) <- 41, 900 <- 900.
    EXPECT_EQ(score.n_matched, 3u);
    EXPECT_DOUBLE_EQ(score.precision, 1.0);
    EXPECT_DOUBLE_EQ(score.recall, 0.75);
    EXPECT_DOUBLE_EQ(score.unit_recall[0], 1.0);
    EXPECT_DOUBLE_EQ(score.unit_recall[1], 0.5);
}

TEST_F(CompareFiles, SpikesOfARecordingWithAnotherChannelCountOrRateAreRejected) {
    write_truth(); // 8 channels at 25 kHz
    spikeline::io::write_npy(dir_ / "out" / "spike_times.npy", std::vector<std::uint64_t>{900, 6, 41});
    spikeline::io::write_npy(dir_ / "out" / "spike_channels.npy", std::vector<std::int32_t>{7, 1, 2});
    spikeline::io::write_npy(dir_ / "out" / "spike_clusters.npy", std::vector<std::int32_t>{1, 2, 2});
    const GroundTruth truth = spikeline::eval::read_ground_truth(dir_ / "gt");

    write_text(dir_ / "out" / "detect_info.json", R"({"n_channels": 1024, "sample_rate": 25000.0})");
    expect_error([&] { compare_detection(truth, spikeline::eval::read_detected(dir_ / "out"), column_probe(8)); },
                 "the detected spikes come from a recording of 1024 channels");
    write_text(dir_ / "out" / "detect_info.json", R"({"n_channels": 8, "sample_rate": 30000.0})");
    expect_error([&] { compare_detection(truth, spikeline::eval::read_detected(dir_ / "out"), column_probe(8)); },
                 "30000 Hz");
    write_text(dir_ / "out" / "detect_info.json", R"({"n_channels": 8, "sample_rate": 25000.0})");
    EXPECT_EQ(compare_detection(truth, spikeline::eval::read_detected(dir_ / "out"), column_probe(8)).n_matched, 3u);

    write_text(dir_ / "out" / "spikeline_sort.json", R"({"n_channels": 1024, "sample_rate": 25000.0})");
    expect_error([&] { spikeline::eval::compare_sorting(truth, spikeline::eval::read_sorted(dir_ / "out"), {}); },
                 "of 1024 channels (" + (dir_ / "out" / "spikeline_sort.json").string() +
                     ") but the ground truth is of 8");
    // A Phy folder of another sorter states nothing: scored as before.
    fs::remove(dir_ / "out" / "spikeline_sort.json");
    EXPECT_EQ(spikeline::eval::compare_sorting(truth, spikeline::eval::read_sorted(dir_ / "out"), {}).n_sorted_units,
              2);
}

TEST_F(CompareFiles, GroundTruthDriftIsReadWhenPresentAndCheckedWhole) {
    write_truth();
    EXPECT_FALSE(spikeline::eval::read_ground_truth(dir_ / "gt").motion.has_value());
    spikeline::io::write_npy(dir_ / "gt" / "motion_times_s.npy", std::vector<double>{0.0, 0.01, 0.02});
    spikeline::io::write_npy(dir_ / "gt" / "motion_depths_um.npy", std::vector<double>{0.0, 50.0});
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "all three");
    EXPECT_FALSE(spikeline::eval::read_ground_truth(dir_ / "gt", false).motion.has_value()); // not read, not checked
    const std::vector<double> values = {1, 2, 3, 4, 5, 6};
    spikeline::io::write_npy(dir_ / "gt" / "motion_um.npy", values.data(), {3, 2});
    const GroundTruth truth = spikeline::eval::read_ground_truth(dir_ / "gt");
    ASSERT_TRUE(truth.motion.has_value());
    EXPECT_DOUBLE_EQ(truth.motion->at(0.01, 50.0), 4.0);
    spikeline::io::write_npy(dir_ / "gt" / "motion_um.npy", values.data(), {2, 3});
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "must have shape (3, 2)");
    spikeline::io::write_npy(dir_ / "gt" / "motion_um.npy", values.data(), {3, 2});
    spikeline::io::write_npy(dir_ / "gt" / "motion_times_s.npy", std::vector<double>{0.0, 0.02, 0.01});
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "increasing times");
}

TEST_F(CompareFiles, MissingFiles) {
    write_truth();
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "nowhere"); }, "nowhere");
    fs::remove(dir_ / "gt" / "spike_units.npy");
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "spike_units.npy");
    write_truth();
    fs::remove(dir_ / "gt" / "info.json");
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "info.json");
    write_truth();
    fs::remove(dir_ / "gt" / "units.tsv");
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "units.tsv");

    spikeline::io::write_npy(dir_ / "out" / "spike_times.npy", std::vector<std::uint64_t>{1});
    expect_error([&] { spikeline::eval::read_detected(dir_ / "out"); }, "spike_channels.npy");
}

TEST_F(CompareFiles, LengthMismatch) {
    write_truth();
    spikeline::io::write_npy(dir_ / "gt" / "spike_units.npy", std::vector<std::int32_t>{3, 8, 3});
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "spike_units.npy");

    spikeline::io::write_npy(dir_ / "out" / "spike_times.npy", std::vector<std::uint64_t>{1, 2});
    spikeline::io::write_npy(dir_ / "out" / "spike_channels.npy", std::vector<std::int32_t>{0});
    expect_error([&] { spikeline::eval::read_detected(dir_ / "out"); }, "spike_channels.npy");
}

TEST_F(CompareFiles, BadContents) {
    write_truth();
    // A unit id that units.tsv does not list.
    spikeline::io::write_npy(dir_ / "gt" / "spike_units.npy", std::vector<std::int32_t>{3, 8, 9, 8});
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "unit 9");

    // Unsorted ground-truth times.
    write_truth();
    spikeline::io::write_npy(dir_ / "gt" / "spike_times.npy", std::vector<std::uint64_t>{5, 40, 30, 900});
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "not sorted");

    // Malformed units.tsv lines.
    write_truth();
    write_text(dir_ / "gt" / "units.tsv", "unit_id\tpeak_channel\tsnr\trate_hz\tn_spikes\n3\t1\t4.5\t2.5\n");
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "units.tsv line 2");
    write_text(dir_ / "gt" / "units.tsv", "unit_id\tpeak_channel\tsnr\trate_hz\tn_spikes\n3\t1\t4.5\t2.5\t2\n"
                                          "8\tseven\t12\t10\t2\n");
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "units.tsv line 3");
    write_text(dir_ / "gt" / "units.tsv", "unit\tpeak\n3\t1\n");
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "header");
    write_text(dir_ / "gt" / "units.tsv", "unit_id\tpeak_channel\tsnr\trate_hz\tn_spikes\n3\t1\t4.5\t2.5\t2\n"
                                          "3\t7\t12\t10\t2\n");
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "twice");

    // info.json without a sample rate.
    write_truth();
    write_text(dir_ / "gt" / "info.json", R"({"n_channels": 8})");
    expect_error([&] { spikeline::eval::read_ground_truth(dir_ / "gt"); }, "sample_rate");
}

} // namespace
