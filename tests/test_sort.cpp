// The sorting stage: L1 classifier rules, host calibration on known mixtures, bit-true backends, block-size
// invariance, unit-id stability across recalibration, the Phy folder, and accuracy against ground truth.
#include "backend/backend.hpp"
#include "eval/compare.hpp"
#include "io/npy.hpp"
#include "io/recording.hpp"
#include "kernel_runs.hpp"
#include "pipeline/sort_run.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "simulated_recording.hpp"
#include "sort/calibration.hpp"
#include "sort/clustering.hpp"
#include "sort/phy_writer.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <sstream>

namespace spikeline {
namespace {

constexpr int kRows = HwSortConfig::snippet_channels;

TEST(SortL1, ClassifierTakesTheNearestEntryWithinItsGateAndBreaksTiesByEntryOrder) {
    auto params = std::make_unique<HwSortParams>();
    params->n_channels = 4;
    params->n_entries[2] = 3;
    for (int e = 0; e < 3; ++e) {
        params->entries[2][e].unit = 10 + e;
        params->entries[2][e].template_id = 100 + e;
        params->entries[2][e].gate = 50;
    }
    params->entries[2][0].centroid[0] = 10; // distance 100 from the origin: beyond its gate
    params->entries[2][1].centroid[1] = 5;  // distance 25
    params->entries[2][2].centroid[2] = -5; // distance 25: a tie, the earlier entry wins
    std::int32_t features[HwSortConfig::n_values] = {};
    std::int32_t unit = 0, template_id = 0;
    hw::classify(*params, 2, features, unit, template_id);
    EXPECT_EQ(unit, 11);
    EXPECT_EQ(template_id, 101);
    features[1] = 20; // now entry 2 is nearest (25 + 400 vs 225)... and entry 1 is at 225 > gate
    hw::classify(*params, 2, features, unit, template_id);
    EXPECT_EQ(unit, -1) << "entry 2 is at 425, entry 1 at 225: both beyond the gate of 50";
    hw::classify(*params, 3, features, unit, template_id);
    EXPECT_EQ(unit, -1) << "no entry registered on channel 3";
}

TEST(SortL1, FeaturesAreTheRoundedProjectionOfEachSnippetRow) {
    auto params = std::make_unique<HwSortParams>();
    params->n_channels = 8;
    params->pre = 2;
    params->post = 3;
    params->basis[0][2] = 1 << HwSortConfig::basis_frac_bits;       // picks the peak sample
    params->basis[1][0] = 1 << (HwSortConfig::basis_frac_bits - 1); // half the first sample
    std::int32_t snippet[kRows][HwSortConfig::max_snippet_samples] = {};
    snippet[0][2] = -400;
    snippet[3][0] = 7; // 3.5 rounds half up to 4
    std::int32_t f[HwSortConfig::n_values];
    hw::compute_features(*params, snippet, f);
    EXPECT_EQ(f[0 * kRows + 0], -400);
    EXPECT_EQ(f[1 * kRows + 3], 4);
    EXPECT_EQ(f[2 * kRows + 0], 0);
}

/// Snippets of three known waveforms (two on channel 0, one on channel 1) with white noise; absent_unit's are left out.
SortOutput known_mixture(const HwSortParams& params, int per_unit, std::uint64_t seed, int absent_unit = -1) {
    const int width = params.pre + 1 + params.post;
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0.0, 20.0);
    SortOutput out;
    for (int i = 0; i < 3 * per_unit; ++i) {
        const int unit = i % 3;
        if (unit == absent_unit)
            continue;
        hw::SortedSpike spike{};
        spike.event = {static_cast<std::uint64_t>(1000 + 100 * i), unit == 2 ? 1 : 0, -1};
        spike.unit = -1; // as a calibration pass, which has no classifier yet, leaves them
        spike.template_id = -1;
        out.spikes.push_back(spike);
        for (int k = 0; k < kRows; ++k)
            for (int s = 0; s < width; ++s) {
                const double t = s - params.pre;
                double v = 0;
                if (unit == 0 && k == 0)
                    v = -1200 * std::exp(-t * t / 4.0); // narrow, large on its own channel only
                if (unit == 1 && k <= 1)
                    v = (k == 0 ? -700 : -600) * std::exp(-t * t / 16.0) + 300 * std::exp(-(t - 8) * (t - 8) / 9.0);
                if (unit == 2 && k <= 2)
                    v = -900 * std::exp(-t * t / 6.0) / (1 + k);
                out.snippets.push_back(static_cast<std::int32_t>(std::lround(v + noise(rng))));
            }
    }
    return out;
}

std::shared_ptr<HwSortParams> small_geometry(int channels) {
    const auto detect = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    return sort::make_sort_params(sort::SortSettings{}, probe::default_probe(channels), 30000, *detect);
}

/// The unit calibration's classifier gives each spike of data.
std::vector<int> classify_all(const sort::Calibration& calibration, const SortOutput& data) {
    std::vector<int> units;
    std::int32_t snippet[kRows][HwSortConfig::max_snippet_samples] = {};
    const int width = calibration.width;
    for (std::size_t i = 0; i < data.spikes.size(); ++i) {
        for (int k = 0; k < kRows; ++k)
            std::copy_n(&data.snippets[(i * kRows + k) * width], width, snippet[k]);
        std::int32_t f[HwSortConfig::n_values], unit = 0, template_id = 0;
        hw::compute_features(*calibration.params, snippet, f);
        hw::classify(*calibration.params, data.spikes[i].event.channel, f, unit, template_id);
        units.push_back(unit);
    }
    return units;
}

TEST(SortCalibration, FindsTheUnitsOfAKnownMixtureWithoutBeingToldHowMany) {
    const auto geometry = small_geometry(64);
    const SortOutput data = known_mixture(*geometry, 200, 5);
    const sort::Calibration calibration = sort::calibrate(*geometry, data, sort::SortSettings{});
    ASSERT_EQ(calibration.units.size(), 3u);
    // Every training spike is labelled with one unit per true waveform.
    std::vector<std::set<int>> labels(3);
    const std::vector<int> units = classify_all(calibration, data);
    for (std::size_t i = 0; i < units.size(); ++i)
        labels[i % 3].insert(units[i]);
    const int width = calibration.width;
    for (int u = 0; u < 3; ++u) {
        ASSERT_EQ(labels[u].size(), 1u) << "true unit " << u;
        EXPECT_GE(*labels[u].begin(), 0);
    }
    EXPECT_NE(*labels[0].begin(), *labels[1].begin()) << "two units on the same channel must stay apart";
    // The basis is orthonormal before quantisation: its first component carries most of the energy.
    double norm = 0;
    for (int s = 0; s < width; ++s)
        norm += std::pow(calibration.params->basis[0][s] / double(1 << HwSortConfig::basis_frac_bits), 2);
    EXPECT_NEAR(norm, 1.0, 0.01);
}

TEST(SortCalibration, ShapeDistanceIgnoresAmplitudeAndShareFollowingCountsLags) {
    const auto geometry = small_geometry(64);
    const int width = geometry->pre + 1 + geometry->post;
    std::vector<double> a(static_cast<std::size_t>(kRows * width), 0.0), b = a, c = a;
    for (int s = 0; s < width; ++s) {
        const double t = s - geometry->pre;
        a[static_cast<std::size_t>(s)] = -1000 * std::exp(-t * t / 4.0);
        b[static_cast<std::size_t>(s)] = 0.5 * a[static_cast<std::size_t>(s)];
        c[static_cast<std::size_t>(s)] = -1000 * std::exp(-t * t / 40.0);
    }
    EXPECT_NEAR(sort::shape_distance(*geometry, 0, a, 0, b), 0.0, 1e-12) << "one shape at half the amplitude";
    EXPECT_GT(sort::template_distance(*geometry, 0, a, 0, b), 0.3) << "which the template distance keeps apart";
    EXPECT_GT(sort::shape_distance(*geometry, 0, a, 0, c), 0.2) << "a wider waveform";
    EXPECT_EQ(sort::shape_distance(*geometry, 0, a, 40, b), 1.0) << "no shared channel";

    const std::vector<std::uint64_t> leaders{100, 1000, 2000};
    // 130 and 1050 follow within 30..750 samples; 90 (before any), 1020 (too soon) and 2900 (too late) do not.
    EXPECT_DOUBLE_EQ(sort::share_following(leaders, {90, 130, 1020, 1050, 2900}, 30, 750), 0.4);
    EXPECT_DOUBLE_EQ(sort::share_following(leaders, {}, 30, 750), 0.0);
}

// Merging compares cluster means, and a mean of n noisy snippets carries sigma^2 / n of noise per sample: two means of
// 10-12 snippets of one waveform (SNR ~10 on the peak row) are about merge_distance (0.08) apart by noise alone, and a
// neuron's small clusters stayed several units. Less what noise adds on average they are near 0; two neurons stay far.
TEST(SortCalibration, TheMergeDistanceOfSmallClustersDiscountsTheNoiseOfTheirMeans) {
    const auto geometry = small_geometry(64);
    const int width = geometry->pre + 1 + geometry->post, channel = 20;
    const double sigma = 100;
    const std::vector<double> channel_noise(64, sigma);
    std::mt19937_64 rng(23);
    std::normal_distribution<double> noise(0.0, sigma);
    auto mean_of = [&](double spread, int n) {
        sort::Entry entry;
        entry.channel = channel;
        entry.n_members = static_cast<std::size_t>(n);
        entry.mean_snippet.assign(static_cast<std::size_t>(kRows * width), 0.0);
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < kRows; ++k)
                for (int s = 0; s < width; ++s) {
                    const double t = s - geometry->pre;
                    entry.mean_snippet[static_cast<std::size_t>(k * width + s)] +=
                        (-1000.0 / (1 + k) * std::exp(-t * t / spread) + noise(rng)) / n;
                }
        return entry;
    };
    double raw = 0, beyond = 0, other = 0;
    for (int trial = 0; trial < 20; ++trial) {
        const sort::Entry a = mean_of(4.0, 12), b = mean_of(4.0, 10), c = mean_of(12.0, 10);
        raw += sort::template_distance(*geometry, channel, a.mean_snippet, channel, b.mean_snippet) / 20;
        beyond += sort::distance_beyond_noise(*geometry, channel_noise, a, b.mean_snippet, b) / 20;
        other += sort::distance_beyond_noise(*geometry, channel_noise, a, c.mean_snippet, c) / 20;
    }
    EXPECT_GT(raw, 0.08) << "one neuron's two small clusters, as merging saw them";
    EXPECT_LT(beyond, 0.02) << "less the noise of their means";
    EXPECT_GT(other, 0.15) << "a wider waveform stays apart (merge_distance: 0.08)";
}

/// Channel 0: neuron A fires every 100 ms, every other spike followed 5 ms later by a burst spike of A's shape at 0.55
/// of its amplitude; neuron C, a wider waveform, and on channel 1 neuron D, A's shape at 0.55, fire 50 ms after A,
/// outside its bursts. Returned with each spike's source: 0 A, 1 A's burst spike, 2 C, 3 D.
SortOutput bursting_mixture(const HwSortParams& params, std::vector<int>& source) {
    const int width = params.pre + 1 + params.post;
    std::mt19937_64 rng(11);
    std::normal_distribution<double> noise(0.0, 20.0);
    SortOutput out;
    auto add = [&](std::uint64_t sample, int channel, int kind, double amplitude, double spread) {
        hw::SortedSpike spike{};
        spike.event = {sample, channel, -1};
        spike.unit = spike.template_id = -1;
        out.spikes.push_back(spike);
        source.push_back(kind);
        for (int k = 0; k < kRows; ++k)
            for (int s = 0; s < width; ++s) {
                const double t = s - params.pre;
                const double v = k <= 1 ? amplitude / (1 + 2 * k) * std::exp(-t * t / spread) : 0.0;
                out.snippets.push_back(static_cast<std::int32_t>(std::lround(v + noise(rng))));
            }
    };
    for (int i = 0; i < 300; ++i) {
        const auto t = static_cast<std::uint64_t>(3000 + 3000 * i);
        add(t, 0, 0, -1200, 4.0);
        if (i % 2 == 0)
            add(t + 150, 0, 1, -660, 4.0);
        add(t + 1500, 0, 2, -660, 30.0);
        add(t + 1530, 1, 3, -660, 4.0);
    }
    return out;
}

TEST(SortCalibration, ABurstsSmallerSpikesJoinItsUnitAndCoincidentNeuronsDoNot) {
    const auto geometry = small_geometry(64);
    std::vector<int> source;
    const SortOutput data = bursting_mixture(*geometry, source);
    for (const double share : {0.0, sort::SortSettings{}.burst_follow_share}) {
        SCOPED_TRACE(share > 0 ? "burst merging on" : "off");
        sort::SortSettings settings;
        settings.sample_rate = 30000;
        settings.burst_follow_share = share;
        const std::vector<int> units = classify_all(sort::calibrate(*geometry, data, settings), data);
        std::vector<std::map<int, int>> labels(4); // per source: label -> count
        for (std::size_t i = 0; i < units.size(); ++i)
            ++labels[static_cast<std::size_t>(source[i])][units[i]];
        auto main_label = [&](int kind) {
            const auto& counts = labels[static_cast<std::size_t>(kind)];
            return std::max_element(counts.begin(), counts.end(),
                                    [](const auto& x, const auto& y) { return x.second < y.second; })
                ->first;
        };
        for (int kind = 0; kind < 4; ++kind)
            EXPECT_GE(labels[static_cast<std::size_t>(kind)][main_label(kind)],
                      static_cast<int>(0.9 * (kind == 1 ? 150 : 300)))
                << "source " << kind << " should be one cluster";
        EXPECT_NE(main_label(0), -1);
        EXPECT_EQ(main_label(1) == main_label(0), share > 0) << "A's burst spikes are A's only with burst merging";
        EXPECT_NE(main_label(2), main_label(0)) << "another shape, at the same channel, is another unit";
        EXPECT_NE(main_label(3), main_label(0)) << "A's shape smaller next to it, not following it, is another unit";
        EXPECT_NE(main_label(2), main_label(3));
    }
}

TEST(SortCalibration, ClusteringOnSeveralThreadsGivesTheSameUnits) {
    const auto geometry = small_geometry(64);
    const SortOutput data = known_mixture(*geometry, 200, 5);
    sort::SortSettings parallel;
    parallel.threads = 3;
    const sort::Calibration one = sort::calibrate(*geometry, data, sort::SortSettings{});
    const sort::Calibration three = sort::calibrate(*geometry, data, parallel);
    ASSERT_EQ(one.entries.size(), three.entries.size());
    for (std::size_t e = 0; e < one.entries.size(); ++e) {
        EXPECT_EQ(one.entries[e].channel, three.entries[e].channel);
        EXPECT_EQ(one.entries[e].unit, three.entries[e].unit);
        EXPECT_EQ(one.entries[e].centroid, three.entries[e].centroid);
    }
    EXPECT_EQ(classify_all(one, data), classify_all(three, data));
}

TEST(SortCalibration, RecalibrationKeepsTheIdsOfUnitsItFindsAgain) {
    const auto geometry = small_geometry(64);
    const sort::Calibration first = sort::calibrate(*geometry, known_mixture(*geometry, 200, 5), sort::SortSettings{});
    const sort::Calibration second =
        sort::calibrate(*geometry, known_mixture(*geometry, 200, 6), sort::SortSettings{}, 1000, &first);
    ASSERT_EQ(second.units.size(), first.units.size());
    std::set<int> first_ids, second_ids;
    for (const auto& u : first.units)
        first_ids.insert(u.id);
    for (const auto& u : second.units)
        second_ids.insert(u.id);
    EXPECT_EQ(first_ids, second_ids);
    for (const auto& u : second.units)
        for (const auto& v : first.units) {
            if (u.id == v.id) {
                EXPECT_EQ(u.peak_channel, v.peak_channel);
            }
        }
    EXPECT_EQ(second.entries.front().template_id, 1000);
}

TEST(SortCalibration, ABasisOnlyCalibrationHasCalibratesBasisAndNoUnits) {
    const auto geometry = small_geometry(64);
    const SortOutput data = known_mixture(*geometry, 200, 5);
    const sort::Calibration full = sort::calibrate(*geometry, data, sort::SortSettings{});
    const sort::Calibration basis = sort::calibrate_basis(*geometry, data);
    EXPECT_TRUE(std::equal(&full.params->basis[0][0], &full.params->basis[0][0] + sizeof full.params->basis / 2,
                           &basis.params->basis[0][0]));
    EXPECT_EQ(basis.channel_noise, full.channel_noise);
    EXPECT_EQ(basis.n_spikes, data.spikes.size());
    EXPECT_TRUE(basis.units.empty());
    for (int label : classify_all(basis, data))
        EXPECT_EQ(label, -1);
    // Units learnt later on it keep that basis, as a learning does.
    sort::SortSettings relearn;
    relearn.relearn_all = true;
    const sort::Calibration later = sort::calibrate(*geometry, data, relearn, 0, &basis, nullptr, true);
    EXPECT_EQ(later.units.size(), full.units.size());
    EXPECT_THROW(sort::calibrate_basis(*geometry, SortOutput{}), InputError);
}

TEST(SortCalibration, AUnitMissingFromOneRecalibrationKeepsItsIdAndItsLabels) {
    const auto geometry = small_geometry(64);
    auto id_on_channel_1 = [](const sort::Calibration& c) {
        for (const auto& u : c.units)
            if (u.peak_channel == 1)
                return u.id;
        return -1;
    };
    const sort::Calibration first = sort::calibrate(*geometry, known_mixture(*geometry, 200, 5), sort::SortSettings{});
    const int id = id_on_channel_1(first);
    ASSERT_GE(id, 0);
    // The unit on channel 1 is silent in the second period: it stays registered with its last template.
    const sort::Calibration second =
        sort::calibrate(*geometry, known_mixture(*geometry, 200, 6, 2), sort::SortSettings{}, 100, &first);
    ASSERT_EQ(second.units.size(), 3u);
    EXPECT_EQ(id_on_channel_1(second), id);
    const SortOutput returning = known_mixture(*geometry, 50, 7);
    const std::vector<int> labels = classify_all(second, returning);
    for (std::size_t i = 2; i < labels.size(); i += 3)
        EXPECT_EQ(labels[i], id) << "spike " << i << " of the returning unit";
    // When it fires again, the next recalibration finds it under the same id.
    const sort::Calibration third =
        sort::calibrate(*geometry, known_mixture(*geometry, 200, 8), sort::SortSettings{}, 200, &second);
    EXPECT_EQ(id_on_channel_1(third), id);
    EXPECT_EQ(third.units.size(), 3u);

    // Re-clustering every spike so far (relearn_all, the first of two passes): the new units are the whole picture,
    // and an old unit they did not find is not carried along; those they found keep their ids.
    sort::SortSettings relearn;
    relearn.relearn_all = true;
    const sort::Calibration whole =
        sort::calibrate(*geometry, known_mixture(*geometry, 200, 6, 2), relearn, 100, &first);
    EXPECT_EQ(whole.units.size(), 2u);
    EXPECT_EQ(id_on_channel_1(whole), -1);
    for (const auto& u : whole.units)
        EXPECT_NE(std::find_if(first.units.begin(), first.units.end(), [&](const auto& v) { return v.id == u.id; }),
                  first.units.end())
            << "unit " << u.id << " found again keeps its id";
}

TEST(SortCalibration, RecalibrationKeepsTheIdsThePreviousClassifierGaveTheWindowsSpikes) {
    const auto geometry = small_geometry(64);
    const sort::Calibration first = sort::calibrate(*geometry, known_mixture(*geometry, 200, 5), sort::SortSettings{});
    SortOutput window = known_mixture(*geometry, 200, 6);
    const std::vector<int> labels = classify_all(first, window);
    for (std::size_t i = 0; i < window.spikes.size(); ++i)
        window.spikes[i].unit = labels[i];
    // Template matching off: only the labels can carry the ids over (as when drift has moved every template).
    sort::SortSettings no_template_match;
    no_template_match.id_match_distance = 0;
    const sort::Calibration second = sort::calibrate(*geometry, window, no_template_match, 100, &first);
    EXPECT_EQ(second.units.size(), 3u) << "no unit kept beside its successor";
    const std::vector<int> relabelled = classify_all(second, window);
    for (std::size_t i = 0; i < window.spikes.size(); ++i)
        EXPECT_EQ(relabelled[i], labels[i]) << "spike " << i;
}

// Learning adds units from what the units left unsorted. A neuron whose spikes outgrew its unit's gates (here its
// amplitude grew, as when the probe moves) is that unit's outskirts: it keeps the unit's id, instead of a new unit
// taking the neuron over from then on. A different neuron on the same channel still becomes a new unit.
TEST(SortCalibration, LearningExtendsAUnitToItsOutskirtsAndAddsANewNeuronAsANewUnit) {
    const auto geometry = small_geometry(64);
    const int width = geometry->pre + 1 + geometry->post;
    const sort::Calibration first = sort::calibrate(*geometry, known_mixture(*geometry, 200, 5), sort::SortSettings{});
    std::mt19937_64 rng(9);
    std::normal_distribution<double> noise(0.0, 20.0);
    std::uniform_real_distribution<double> growth(1.0, 1.6);
    SortOutput sample;
    std::vector<int> truth; // 0: the first unit on channel 0, grown; 3: a new, wide neuron on channel 0
    for (int i = 0; i < 600; ++i) {
        const int neuron = i % 3 == 2 ? 3 : 0;
        const double scale = neuron == 0 ? growth(rng) : 1.0;
        hw::SortedSpike spike{};
        spike.event = {static_cast<std::uint64_t>(1000 + 100 * i), 0, -1};
        sample.spikes.push_back(spike);
        truth.push_back(neuron);
        for (int k = 0; k < kRows; ++k)
            for (int s = 0; s < width; ++s) {
                const double t = s - geometry->pre;
                double v = 0;
                if (neuron == 0 && k == 0)
                    v = -1200 * scale * std::exp(-t * t / 4.0);
                if (neuron == 3 && k <= 2)
                    v = -800 * std::exp(-t * t / 30.0) + 500 * std::exp(-(t - 10) * (t - 10) / 12.0);
                sample.snippets.push_back(static_cast<std::int32_t>(std::lround(v + noise(rng))));
            }
    }
    const std::vector<int> labels = classify_all(first, sample);
    int first_id = -1;
    std::size_t unsorted_outskirts = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        sample.spikes[i].unit = labels[i];
        if (truth[i] == 0 && labels[i] >= 0)
            first_id = labels[i];
        unsorted_outskirts += truth[i] == 0 && labels[i] < 0;
    }
    ASSERT_GE(first_id, 0);
    ASSERT_GE(unsorted_outskirts, 40u) << "the test needs spikes beyond the unit's gates";

    const sort::Calibration learnt =
        sort::calibrate(*geometry, sample, sort::SortSettings{}, 100, &first, nullptr, true);
    const std::vector<int> after = classify_all(learnt, sample);
    std::size_t grown_kept = 0, grown = 0, new_neuron = 0, new_as_first = 0;
    std::map<int, int> new_neuron_labels;
    for (std::size_t i = 0; i < after.size(); ++i) {
        if (truth[i] == 0) {
            ++grown;
            grown_kept += after[i] == first_id;
        } else {
            ++new_neuron;
            new_as_first += after[i] == first_id;
            ++new_neuron_labels[after[i]];
        }
    }
    EXPECT_GE(grown_kept, grown * 95 / 100) << "the grown unit's spikes keep its id";
    EXPECT_LE(new_as_first, new_neuron / 20) << "the new neuron is not joined to the old unit";
    const auto largest = std::max_element(new_neuron_labels.begin(), new_neuron_labels.end(),
                                          [](const auto& a, const auto& b) { return a.second < b.second; });
    EXPECT_GE(largest->first, 0);
    EXPECT_GE(largest->second, static_cast<int>(new_neuron * 9 / 10)) << "the new neuron is one new unit";
    for (const auto& u : first.units)
        EXPECT_NE(largest->first, u.id) << "a new id, not an old unit's";
}

// The first calibration saw one neuron on channel 0; the unit then also holds a second neuron (as after a merge the
// first clustering could not yet tell apart: the labels say so). Learning, with hundreds of spikes of each, splits the
// unit: the first neuron keeps its id, the second becomes a new unit.
TEST(SortCalibration, LearningSplitsAUnitThatHoldsTwoNeurons) {
    const auto geometry = small_geometry(64);
    const int width = geometry->pre + 1 + geometry->post;
    std::mt19937_64 rng(4);
    std::normal_distribution<double> noise(0.0, 20.0);
    auto spikes_of = [&](const std::vector<int>& neurons) {
        SortOutput out;
        for (std::size_t i = 0; i < neurons.size(); ++i) {
            hw::SortedSpike spike{};
            spike.event = {static_cast<std::uint64_t>(1000 + 100 * i), 0, -1};
            out.spikes.push_back(spike);
            for (int k = 0; k < kRows; ++k)
                for (int s = 0; s < width; ++s) {
                    const double t = s - geometry->pre;
                    const double footprint = k == 0 ? 1200 : (k == 1 && neurons[i] == 1 ? 700 : 0);
                    out.snippets.push_back(
                        static_cast<std::int32_t>(std::lround(-footprint * std::exp(-t * t / 4.0) + noise(rng))));
                }
        }
        return out;
    };
    const sort::Calibration first = sort::calibrate(*geometry, spikes_of(std::vector<int>(200, 0)), {});
    ASSERT_EQ(first.units.size(), 1u);
    const int first_id = first.units[0].id;
    std::vector<int> truth;
    for (int i = 0; i < 600; ++i)
        truth.push_back(i % 3 == 2 ? 1 : 0);
    SortOutput sample = spikes_of(truth);
    for (hw::SortedSpike& spike : sample.spikes)
        spike.unit = first_id;

    sort::SortSettings never;
    never.split_off_distance = 0;
    EXPECT_EQ(sort::calibrate(*geometry, sample, never, 100, &first, nullptr, true).units.size(), 1u)
        << "without splitting, learning has nothing to add";
    const sort::Calibration learnt =
        sort::calibrate(*geometry, sample, sort::SortSettings{}, 100, &first, nullptr, true);
    const std::vector<int> after = classify_all(learnt, sample);
    std::size_t first_kept = 0, n_first = 0;
    std::map<int, std::size_t> second_labels;
    for (std::size_t i = 0; i < after.size(); ++i) {
        if (truth[i] == 0) {
            ++n_first;
            first_kept += after[i] == first_id;
        } else {
            ++second_labels[after[i]];
        }
    }
    EXPECT_GE(first_kept, n_first * 95 / 100) << "the first neuron keeps its id";
    const auto largest = std::max_element(second_labels.begin(), second_labels.end(),
                                          [](const auto& a, const auto& b) { return a.second < b.second; });
    EXPECT_NE(largest->first, first_id);
    EXPECT_GE(largest->first, 0);
    EXPECT_GE(largest->second, 190u) << "the second neuron is one new unit";
}

// Two units on eight features, with noise shared by every feature (a common-mode swing): 2-means cuts them only
// roughly, and along the line joining its halves' means there is no valley; along their discriminant there is one,
// and the splitter finds it.
TEST(SortClustering, SplitsUnitsSeparatedOnlyAgainstCorrelatedNoise) {
    constexpr int n_per_unit = 300, dims = 24;
    std::mt19937 rng(5);
    std::normal_distribution<double> normal(0, 1);
    sort::FeatureMatrix x(2 * n_per_unit, dims);
    std::vector<int> all, unit_a, unit_b;
    for (int i = 0; i < 2 * n_per_unit; ++i) {
        const double common = 0.5 * normal(rng);
        for (int d = 0; d < dims; ++d)
            x(i, d) = common + 0.5 * normal(rng) + (i >= n_per_unit && d < 8 ? 1.5 : 0.0);
        all.push_back(i);
        (i < n_per_unit ? unit_a : unit_b).push_back(i);
    }
    const auto clusters = sort::split_clusters(x, all, sort::SortSettings{});
    ASSERT_EQ(clusters.size(), 2u);
    for (const auto& cluster : clusters) {
        const auto from_a = std::count_if(cluster.begin(), cluster.end(), [](int i) { return i < n_per_unit; });
        const auto purity = static_cast<double>(std::max<std::ptrdiff_t>(
                                from_a, static_cast<std::ptrdiff_t>(cluster.size()) - from_a)) /
                            static_cast<double>(cluster.size());
        EXPECT_GT(purity, 0.95);
    }
}

// A unit firing rarely beside a large one on the same contact: the large cloud's spread of amplitudes and its noise
// set every principal axis, and the small unit (40 spikes against 800) shows along none of them. Among the members
// farthest from the mean it is there: the splitter isolates it from that start (later merging joins any pieces of it).
TEST(SortClustering, FindsASmallUnitInsideALargeOne) {
    constexpr int n_large = 800, n_small = 40, dims = 24;
    std::mt19937 rng(7);
    std::normal_distribution<double> normal(0, 1);
    std::uniform_real_distribution<double> amplitude(0.8, 1.2);
    sort::FeatureMatrix x(n_large + n_small, dims);
    std::vector<int> all;
    for (int i = 0; i < n_large + n_small; ++i) {
        const bool small = i >= n_large;
        const double scale = small ? 1.0 : amplitude(rng);
        for (int d = 0; d < dims; ++d) {
            const double shape = d < 8 ? 6.0 : 0.0;                   // both units' trough on the first contacts
            const double own = small && d >= 8 && d < 12 ? 2.5 : 0.0; // the small unit's lobe elsewhere
            x(i, d) = scale * shape + own + 0.5 * normal(rng) + (d < 8 ? 0.8 * normal(rng) : 0.0);
        }
        all.push_back(i);
    }
    const auto clusters = sort::split_clusters(x, all, sort::SortSettings{});
    std::size_t small_apart = 0; // the small unit's spikes in clusters it makes up (nearly) alone
    for (const auto& cluster : clusters) {
        const auto from_small =
            static_cast<std::size_t>(std::count_if(cluster.begin(), cluster.end(), [](int i) { return i >= n_large; }));
        if (from_small * 10 >= cluster.size() * 9)
            small_apart += from_small;
    }
    EXPECT_GE(small_apart, static_cast<std::size_t>(n_small * 9 / 10)) << clusters.size() << " clusters";
}

// One elongated cloud with the same correlated noise has no valley in any direction: it stays one cluster.
TEST(SortClustering, KeepsOneUnitWithCorrelatedNoiseWhole) {
    constexpr int n = 600, dims = 24;
    std::mt19937 rng(6);
    std::normal_distribution<double> normal(0, 1);
    sort::FeatureMatrix x(n, dims);
    std::vector<int> all;
    for (int i = 0; i < n; ++i) {
        const double common = 0.5 * normal(rng);
        for (int d = 0; d < dims; ++d)
            x(i, d) = common + 0.5 * normal(rng);
        all.push_back(i);
    }
    EXPECT_EQ(sort::split_clusters(x, all, sort::SortSettings{}).size(), 1u);
}

// Entries 0 and 1: two neurons on one contact that the splitter kept apart; entry 2, a small cluster on the next
// contact whose noisy mean lies between theirs, links to both. Single linkage would join all three.
TEST(SortClustering, EntriesAreNotChainedAcrossASplit) {
    const std::vector<sort::EntryLink> links = {{0.05, 1, 2}, {0.03, 0, 2}, {0.06, 2, 3}};
    EXPECT_EQ(sort::group_entries(4, links, {{0, 1}}), (std::vector<int>{0, 1, 0, 0}))
        << "the closer link (0-2) is taken, 1-2 would put 0 and 1 together; 3 follows 2";
    EXPECT_EQ(sort::group_entries(4, links, {}), (std::vector<int>{0, 0, 0, 0}));
    EXPECT_EQ(sort::group_entries(4, {{0.05, 1, 2}, {0.07, 0, 2}}, {{0, 1}}), (std::vector<int>{0, 1, 1, 3}))
        << "now 1-2 is the closer link";
}

TEST(SortCalibration, NoSpikesIsAClearError) {
    const auto geometry = small_geometry(64);
    try {
        sort::calibrate(*geometry, SortOutput{}, sort::SortSettings{});
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("no spikes in the calibration window"), std::string::npos);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Backends

using testing::simulate_in_memory;

SortOutput run_sorted(Backend& backend, std::shared_ptr<const HwSortParams> params, bool keep,
                      const std::vector<std::int16_t>& data, int channels, std::size_t block) {
    backend.enable_sorting(std::move(params), keep);
    std::vector<SpikeEvent> events;
    const std::size_t frames = data.size() / static_cast<std::size_t>(channels);
    for (std::size_t f = 0; f < frames; f += block)
        backend.process(&data[f * static_cast<std::size_t>(channels)], std::min(block, frames - f), events);
    backend.finish(events);
    SortOutput out;
    backend.take_sorted(out);
    EXPECT_EQ(out.spikes.size(), events.size()) << "every detected spike is sorted";
    return out;
}

void expect_same(const SortOutput& expected, const SortOutput& actual) {
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

class SortBackends : public ::testing::Test {
protected:
    static constexpr int kChannels = 128;
    static void SetUpTestSuite() {
        data_ = new std::vector<std::int16_t>(simulate_in_memory(kChannels, 6.0, 21));
        detect_ = make_detect_params(DetectSettings{}, probe::default_probe(kChannels), 30000).release();
        geometry_ = new std::shared_ptr<HwSortParams>(small_geometry(kChannels));
        auto backend = make_reference_backend(*detect_);
        const SortOutput window = run_sorted(*backend, *geometry_, true, *data_, kChannels, 3000);
        calibration_ = new sort::Calibration(sort::calibrate(**geometry_, window, sort::SortSettings{}));
    }
    static void TearDownTestSuite() {
        delete data_;
        delete detect_;
        delete geometry_;
        delete calibration_;
    }
    static std::vector<std::int16_t>* data_;
    static HwParams* detect_;
    static std::shared_ptr<HwSortParams>* geometry_;
    static sort::Calibration* calibration_;
};
std::vector<std::int16_t>* SortBackends::data_ = nullptr;
HwParams* SortBackends::detect_ = nullptr;
std::shared_ptr<HwSortParams>* SortBackends::geometry_ = nullptr;
sort::Calibration* SortBackends::calibration_ = nullptr;

TEST_F(SortBackends, CpuEqualsReferenceOnEveryLabelFeatureAndSnippetForThreadsAndBlockSizes) {
    auto reference = make_reference_backend(*detect_);
    const SortOutput expected = run_sorted(*reference, calibration_->params, true, *data_, kChannels, 1 << 20);
    std::size_t labelled = 0;
    for (const auto& s : expected.spikes)
        labelled += s.unit >= 0;
    ASSERT_GT(labelled, expected.spikes.size() / 2) << "most spikes of a simulated recording belong to a unit";
    for (int threads : {1, 2})
        for (std::size_t block : {std::size_t{1}, std::size_t{7}, std::size_t{30}, std::size_t{4096}}) {
            if (block == 1 && threads == 2)
                continue; // same code path as block 1 with one thread, only slower
            SCOPED_TRACE("threads " + std::to_string(threads) + ", block " + std::to_string(block));
            auto cpu = make_cpu_backend(*detect_, threads);
            expect_same(expected, run_sorted(*cpu, calibration_->params, true, *data_, kChannels, block));
        }
}

TEST_F(SortBackends, ReferenceIsBlockSizeInvariantIncludingSnippetsAcrossBlockEdges) {
    auto one = make_reference_backend(*detect_);
    const SortOutput expected = run_sorted(*one, calibration_->params, true, *data_, kChannels, 1 << 20);
    for (std::size_t block : {std::size_t{1}, std::size_t{7}, std::size_t{30}}) {
        auto other = make_reference_backend(*detect_);
        expect_same(expected, run_sorted(*other, calibration_->params, true, *data_, kChannels, block));
    }
}

TEST_F(SortBackends, VerilatorEqualsReferenceOnEveryLabelFeatureAndSnippet) {
    // The RTL core's events and monitor-port samples through the L1 sorting stage, 2 s (the RTL runs ~2 M samples/s).
    const std::vector<std::int16_t> segment(data_->begin(), data_->begin() + 60000 * kChannels);
    auto reference = make_reference_backend(*detect_);
    const SortOutput expected = run_sorted(*reference, calibration_->params, true, segment, kChannels, 1 << 20);
    ASSERT_GT(expected.spikes.size(), 100u);
    for (std::size_t block : {std::size_t{7}, std::size_t{30000}}) {
        SCOPED_TRACE("block " + std::to_string(block));
        auto rtl = make_backend({"verilator", 1}, *detect_);
        expect_same(expected, run_sorted(*rtl, calibration_->params, true, segment, kChannels, block));
    }
}

TEST_F(SortBackends, KernelTopInChunksEqualsTheReferenceBackend) {
    auto reference = make_reference_backend(*detect_);
    const SortOutput expected = run_sorted(*reference, calibration_->params, false, *data_, kChannels, 1 << 20);
    for (std::size_t chunk : {std::size_t{30}, std::size_t{3000}}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        SortOutput actual;
        actual.spikes =
            testing::run_kernel_stream(true, *detect_, calibration_->params.get(), *data_, chunk, 4096).spikes;
        expect_same(expected, actual);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The whole pipeline: Phy folder and accuracy

class SortPipeline : public testing::TempDirTest {
protected:
    std::filesystem::path simulate_folder(int channels, double seconds, std::uint64_t seed, bool noise_only = false) {
        sim::SimulationConfig config;
        config.n_channels = channels;
        config.duration_s = seconds;
        config.seed = seed;
        config.noise_only = noise_only;
        const auto dir = dir_ / ("sim" + std::to_string(seed));
        sim::simulate_to_folder(config, probe::default_probe(channels), dir);
        return dir;
    }

    SortRunResult sort_folder(const std::filesystem::path& sim, const std::filesystem::path& out, double calibration_s,
                              double recalibrate_every_s = 0) {
        SortRunOptions options;
        options.sort.calibration_s = calibration_s;
        options.sort.recalibrate_every_s = recalibrate_every_s;
        options.detect.backend = {"cpu", 2};
        auto open = [&] { return io::open_recording(sim / "recording.bin", {}); };
        return run_sorting(open, probe::read_probeinterface(sim / "probe.json"), options, out);
    }
};

class PhyQuality : public testing::TempDirTest {
protected:
    /// Writes a Phy folder for 100 s at 30 kHz in which the first unit fires every 0.1 s during the first half only
    /// and the second every 0.1 s throughout; returns the two units' quality rows.
    std::vector<sort::ClusterQuality> write(double expected_duration_s, double recorded_s) {
        const auto geometry = small_geometry(64);
        const sort::Calibration calibration =
            sort::calibrate(*geometry, known_mixture(*geometry, 200, 5), sort::SortSettings{});
        const probe::Probe probe = probe::default_probe(64);
        io::RecordingInfo info;
        info.n_channels = 64;
        info.sample_rate = 30000;
        info.data_path = dir_ / "recording.bin";
        const auto out = dir_ / ("phy" + std::to_string(++runs_));
        std::filesystem::create_directories(out);
        sort::PhyWriter writer(out, probe, info, calibration.params, expected_duration_s);
        writer.add_calibration(calibration);
        const int half_unit = calibration.units[0].id, whole_unit = calibration.units[1].id;
        for (std::uint64_t sample = 1500; static_cast<double>(sample) < recorded_s * 30000; sample += 3000) {
            std::vector<hw::SortedSpike> spikes;
            for (int unit : {half_unit, whole_unit}) {
                if (unit == half_unit && sample >= 50 * 30000)
                    continue;
                const sort::Entry& entry = calibration.entries[static_cast<std::size_t>(
                    calibration.units[static_cast<std::size_t>(unit == half_unit ? 0 : 1)].entries.front())];
                hw::SortedSpike spike{};
                spike.event = {sample, entry.channel, -100};
                spike.unit = unit;
                spike.template_id = entry.template_id;
                spikes.push_back(spike);
            }
            writer.append(spikes);
        }
        std::vector<sort::ClusterQuality> rows;
        for (const sort::ClusterQuality& q : writer.finish({}, recorded_s))
            if (q.cluster_id == half_unit + 1 || q.cluster_id == whole_unit + 1)
                rows.push_back(q);
        EXPECT_EQ(rows.size(), 2u);
        if (rows.size() == 2 && rows[0].cluster_id != half_unit + 1)
            std::swap(rows[0], rows[1]);
        return rows;
    }

    int runs_ = 0;
};

TEST_F(PhyQuality, PresenceRatioAndFiringRateCoverTheRecordedLength) {
    struct Case {
        const char* what;
        double expected_duration_s, presence_tolerance;
    };
    for (const Case& c : {Case{"a file of known length", 100, 0}, Case{"a stream of unknown length", 0, 0.01},
                          Case{"a stream stopped at half its expected length", 200, 0}}) {
        SCOPED_TRACE(c.what);
        const auto rows = write(c.expected_duration_s, 100);
        ASSERT_EQ(rows.size(), 2u);
        EXPECT_NEAR(rows[0].presence_ratio, 0.5, c.presence_tolerance);
        EXPECT_DOUBLE_EQ(rows[1].presence_ratio, 1.0);
        EXPECT_DOUBLE_EQ(rows[0].firing_rate_hz, 5.0);
        EXPECT_DOUBLE_EQ(rows[1].firing_rate_hz, 10.0);
    }
}

TEST_F(PhyQuality, AUnitIsGoodOnlyWithEnoughSpikesForItsIntervalTest) {
    const auto few = write(0, 1.0); // 10 spikes each in the first second, clean and large
    ASSERT_EQ(few.size(), 2u);
    EXPECT_EQ(few[0].n_spikes, 10u);
    EXPECT_EQ(few[0].group, "mua");
    EXPECT_EQ(few[1].group, "mua");
    const auto many = write(0, 100.0);
    ASSERT_EQ(many.size(), 2u);
    EXPECT_EQ(many[0].group, "good");
    EXPECT_EQ(many[1].group, "good");
}

TEST_F(SortPipeline, WritesAConsistentPhyFolderAndSortsSimulatedUnitsAccurately) {
    const auto sim = simulate_folder(128, 24.0, 7);
    const auto out = dir_ / "phy";
    const SortRunResult result = sort_folder(sim, out, 20.0);
    ASSERT_GT(result.spikes, 1000u);

    const auto times = io::read_npy_vector<std::uint64_t>(out / "spike_times.npy");
    const auto clusters = io::read_npy_vector<std::int32_t>(out / "spike_clusters.npy");
    const auto spike_templates = io::read_npy_vector<std::int32_t>(out / "spike_templates.npy");
    const auto amplitudes = io::read_npy_vector<double>(out / "amplitudes.npy");
    ASSERT_EQ(times.size(), result.spikes);
    ASSERT_EQ(clusters.size(), times.size());
    ASSERT_EQ(spike_templates.size(), times.size());
    ASSERT_EQ(amplitudes.size(), times.size());
    EXPECT_TRUE(std::is_sorted(times.begin(), times.end()));

    const io::NpyArray templates = io::read_npy(out / "templates.npy");
    ASSERT_EQ(templates.descr, "<f4");
    ASSERT_EQ(templates.shape.size(), 3u);
    const std::size_t n_templates = templates.shape[0];
    EXPECT_EQ(templates.shape[1], 46u) << "0.5 ms + 1 + 1 ms at 30 kHz";
    EXPECT_EQ(templates.shape[2], 8u) << "sparse: a template's snippet channels only";
    for (std::int32_t t : spike_templates)
        ASSERT_TRUE(t >= 0 && static_cast<std::size_t>(t) < n_templates);

    const io::NpyArray features = io::read_npy(out / "pc_features.npy");
    EXPECT_EQ(features.descr, "<f4");
    EXPECT_EQ(features.shape, (std::vector<std::size_t>{times.size(), 3, 8}));
    const io::NpyArray feature_ind = io::read_npy(out / "pc_feature_ind.npy");
    EXPECT_EQ(feature_ind.descr, "<u4");
    EXPECT_EQ(feature_ind.shape, (std::vector<std::size_t>{n_templates, 8}));
    const auto channel_ind = feature_ind.as<std::uint32_t>();
    EXPECT_TRUE(std::all_of(channel_ind.begin(), channel_ind.end(), [](std::uint32_t c) { return c < 128; }));

    // Sparse templates: template_ind.npy (phylib's name; Kilosort's templates_ind.npy is the same bytes) lists the
    // columns' channels, the features' channels. Unsorted spikes' templates are a unit trough at the peak sample of
    // their peak channel; a unit's is its mean spike scaled to 1 there.
    const io::NpyArray template_ind = io::read_npy(out / "template_ind.npy");
    EXPECT_EQ(template_ind.descr, "<i4");
    EXPECT_EQ(template_ind.shape, (std::vector<std::size_t>{n_templates, 8}));
    const io::NpyArray kilosort_ind = io::read_npy(out / "templates_ind.npy");
    EXPECT_EQ(kilosort_ind.shape, template_ind.shape);
    EXPECT_EQ(kilosort_ind.data, template_ind.data);
    const auto template_channels = template_ind.as<std::int32_t>();
    for (std::size_t i = 0; i < template_channels.size(); ++i)
        ASSERT_EQ(template_channels[i], static_cast<std::int32_t>(channel_ind[i])) << "no padding on 128 channels";
    // Every template has spikes (phylib expects spike_templates to use each), and the sorter's ids are kept beside.
    const std::set<std::int32_t> used(spike_templates.begin(), spike_templates.end());
    EXPECT_EQ(used.size(), n_templates);
    const auto sorter_ids = io::read_npy_vector<std::int32_t>(out / "templates_sorter_id.npy");
    EXPECT_EQ(sorter_ids.size(), n_templates);
    const auto values = templates.as<float>();
    std::set<std::int32_t> unsorted_templates;
    for (std::size_t i = 0; i < clusters.size(); ++i)
        if (clusters[i] == 0)
            unsorted_templates.insert(spike_templates[i]);
    ASSERT_FALSE(unsorted_templates.empty());
    const std::size_t per_template = 46 * 8, peak_sample = 15;
    for (std::int32_t t : unsorted_templates) {
        EXPECT_EQ(sorter_ids[static_cast<std::size_t>(t)], -1) << "template " << t;
        for (std::size_t v = 0; v < per_template; ++v)
            ASSERT_EQ(values[static_cast<std::size_t>(t) * per_template + v], v == peak_sample * 8 ? -1.0f : 0.0f)
                << "template " << t << " value " << v;
    }
    // Template x amplitude is the spike in uV: a unit's template is 1 in magnitude at its peak, and its spikes'
    // amplitudes are about the unit's amplitude (cluster_amplitude_uv.tsv, the template peak).
    const std::size_t first_sorted = static_cast<std::size_t>(
        std::find_if(clusters.begin(), clusters.end(), [](std::int32_t c) { return c > 0; }) - clusters.begin());
    const std::int32_t sorted_template = spike_templates[first_sorted];
    const float* sorted_values = values.data() + static_cast<std::size_t>(sorted_template) * per_template;
    EXPECT_FLOAT_EQ(std::abs(sorted_values[peak_sample * 8]), 1.0f) << "unit scale at the peak";
    std::vector<double> unit_amplitudes;
    for (std::size_t i = 0; i < clusters.size(); ++i)
        if (clusters[i] == clusters[first_sorted])
            unit_amplitudes.push_back(amplitudes[i]);
    std::nth_element(unit_amplitudes.begin(), unit_amplitudes.begin() + std::ssize(unit_amplitudes) / 2,
                     unit_amplitudes.end());
    const double median_amplitude = unit_amplitudes[unit_amplitudes.size() / 2];
    std::ifstream amplitude_file(out / "cluster_amplitude_uv.tsv");
    std::string header;
    std::getline(amplitude_file, header);
    EXPECT_EQ(header, "cluster_id\tamplitude_uv");
    double unit_amplitude = 0;
    for (int id = 0; amplitude_file >> id >> unit_amplitude;)
        if (id == clusters[first_sorted])
            break;
    EXPECT_GT(unit_amplitude, 20.0);
    EXPECT_NEAR(median_amplitude, unit_amplitude, 0.3 * unit_amplitude) << "amplitudes in uV";
    for (const char* metric : {"snr", "isi_violation_ratio", "presence_ratio", "firing_rate_hz"})
        EXPECT_TRUE(std::filesystem::exists(out / ("cluster_" + std::string(metric) + ".tsv"))) << metric;
    EXPECT_EQ(io::read_npy_vector<std::int32_t>(out / "channel_map.npy").size(), 128u);
    const io::NpyArray positions = io::read_npy(out / "channel_positions.npy");
    EXPECT_EQ(positions.descr, "<f8");
    EXPECT_EQ(positions.shape, (std::vector<std::size_t>{128, 2}));

    // Every cluster of a spike is in the cluster tables, and the tables agree with the spikes.
    std::ifstream group_file(out / "cluster_group.tsv");
    std::string line;
    std::getline(group_file, line);
    EXPECT_EQ(line, "cluster_id\tgroup");
    std::set<int> listed;
    while (std::getline(group_file, line)) {
        std::istringstream fields(line);
        int id = 0;
        std::string group;
        fields >> id >> group;
        listed.insert(id);
        EXPECT_TRUE(group == "good" || group == "mua" || (group == "noise" && id == 0)) << line;
    }
    for (std::int32_t c : clusters)
        ASSERT_TRUE(listed.count(c)) << "cluster " << c << " missing from cluster_group.tsv";
    std::ifstream params_file(out / "params.py");
    std::stringstream params;
    params << params_file.rdbuf();
    for (const char* key : {"dat_path = ", "n_channels_dat = 128", "dtype = 'int16'", "offset = 0",
                            "sample_rate = 30000", "hp_filtered = False"})
        EXPECT_NE(params.str().find(key), std::string::npos) << key;
    EXPECT_TRUE(std::filesystem::exists(out / "cluster_info.tsv"));

    // Accuracy against the ground truth (the CLI's compare on the same folder).
    const eval::GroundTruth truth = eval::read_ground_truth(sim / "ground_truth");
    const eval::SortingScore score = eval::compare_sorting(truth, eval::read_sorted(out));
    const eval::SortingBinScore& snr8 = score.bins[4];
    ASSERT_EQ(snr8.label, "SNR>8");
    ASSERT_GT(snr8.n_units, 5);
    EXPECT_GE(snr8.mean_accuracy, 0.8) << eval::format_report(score);
}

TEST_F(SortPipeline, ARecordingWithoutSpikesIsAClearErrorAndWritesNothing) {
    const auto sim = simulate_folder(64, 3.0, 8, true);
    const auto out = dir_ / "phy";
    try {
        sort_folder(sim, out, 2.0);
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("calibration window"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(out / "spike_times.npy"));
}

std::string file_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The calibration pass's snippets label the window on the host (sort::SnippetLabeller) and its backend labels the
// rest: the folder must equal one whose every spike a backend labelled with the same sorter and the same table writes
// (a run with --sorter), whatever the chunks, wherever the window ends inside one, and with writes made by chunks
// shorter than the sorting stage's latency (1 ms: a write falls between the last spike sorted in the window and its
// end at 4.119 s, so the spikes the backend still holds then are labelled on the host), and with a window longer
// than the recording.
TEST_F(SortPipeline, LabellingTheWindowFromItsSnippetsEqualsABackendLabellingIt) {
    sim::SimulationConfig config;
    config.n_channels = 64;
    config.duration_s = 8;
    config.seed = 11;
    config.drift = sim::triangle_drift(6.0); // the units move: table writes from the first estimates on
    sim::simulate_to_folder(config, probe::default_probe(64), dir_ / "sim");
    auto open = [&] { return io::open_recording(dir_ / "sim" / "recording.bin", {}); };
    const probe::Probe probe = probe::read_probeinterface(dir_ / "sim" / "probe.json");
    struct Case {
        const char* backend;
        double chunk_ms, calibration_s;
    };
    std::uint64_t writes_in_window = 0, writes = 0;
    for (const Case c : {Case{"cpu", 100, 5}, Case{"cpu", 100, 4.9567}, Case{"cpu", 1, 4.119}, Case{"cpu", 1, 4.1185},
                         Case{"reference", 7, 5}, Case{"cpu", 100, 9}}) {
        SCOPED_TRACE(std::string(c.backend) + " chunk " + std::to_string(c.chunk_ms) + " ms, window " +
                     std::to_string(c.calibration_s) + " s");
        SortRunOptions first;
        first.detect.backend = {c.backend, 2};
        first.detect.chunk_ms = c.chunk_ms;
        first.sort.calibration_s = c.calibration_s;
        first.sort.keep_learning = false; // one sorter labels the whole run
        const auto a = dir_ / "window_on_host";
        const SortRunResult one_read = run_sorting(open, probe, first, a);
        EXPECT_TRUE(one_read.window_labelled_on_host);
        SortRunOptions again = first;
        again.sorter_file = a / "sorter.json";
        const auto b = dir_ / "backend_only";
        const SortRunResult loaded = run_sorting(open, probe, again, b);
        EXPECT_FALSE(loaded.window_labelled_on_host);
        ASSERT_GT(one_read.spikes, 200u);
        for (const char* name : {"spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "pc_features.npy",
                                 "amplitudes.npy", "unit_updates.npy", "artifacts.npy"})
            EXPECT_EQ(file_bytes(a / name), file_bytes(b / name)) << name;
        EXPECT_EQ(one_read.table_writes, loaded.table_writes);
        // unit_updates.npy: one row per write, its sample first.
        const io::NpyArray updates = io::read_npy(a / "unit_updates.npy");
        const std::vector<std::int64_t> rows = updates.as<std::int64_t>();
        for (std::size_t i = 0; i < rows.size(); i += updates.shape.at(1))
            writes_in_window += rows[i] < std::llround(c.calibration_s * config.sample_rate);
        writes += one_read.table_writes;
    }
    EXPECT_GT(writes_in_window, 0u) << "the window's labels depend on table writes (" << writes << " in all)";
}

TEST_F(SortPipeline, RecalibrationPeriodsTooPoorInSpikesAreSkippedCountedAndExplained) {
    const auto sim = simulate_folder(64, 3.0, 9);
    const auto out = dir_ / "phy";
    // 0.1 s periods of 64 channels hold a few spikes: too few for a cluster of --min-cluster-spikes.
    const SortRunResult result = sort_folder(sim, out, 2.0, 0.1);
    EXPECT_GE(result.n_calibrations, 1);
    EXPECT_GT(result.n_recalibrations_skipped, 0);
    EXPECT_NE(result.last_skip_reason.find("min-cluster-spikes"), std::string::npos) << result.last_skip_reason;
    EXPECT_NE(result.last_skip_reason.find("--recalibrate-every"), std::string::npos) << result.last_skip_reason;
    std::ifstream record(out / "spikeline_sort.json");
    const std::string text{std::istreambuf_iterator<char>(record), std::istreambuf_iterator<char>()};
    EXPECT_NE(text.find("\"n_recalibrations_skipped\": " + std::to_string(result.n_recalibrations_skipped)),
              std::string::npos)
        << text;
}

} // namespace
} // namespace spikeline
