// C simulation of the HLS kernel tops (kernels/) with the argument layout of kernel_abi.hpp: parameters as a register
// program, chunk by chunk, the output image decoded; the kernels must produce exactly the CPU backend's events,
// sorted spikes and artefacts, each compute unit from its own state buffer. Also: register_decode.hpp reproduces every
// field register_program.hpp writes.
#include "backend/backend.hpp"
#include "backend_runs.hpp"
#include "kernel_runs.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "spikeline/hw/register_decode.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

namespace spikeline {
namespace {

using testing::KernelStream;
using testing::random_classifier;
using testing::run_kernel_stream;

std::vector<std::int16_t> simulate(int channels, double seconds, std::uint64_t seed = 17) {
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

SortOutput cpu_sorted(const HwParams& detect, std::shared_ptr<const HwSortParams> sort,
                      const std::vector<std::int16_t>& data) {
    auto cpu = make_cpu_backend(detect, 2);
    cpu->enable_sorting(std::move(sort), false);
    std::vector<SpikeEvent> events;
    cpu->process(data.data(), data.size() / static_cast<std::size_t>(detect.n_channels), events);
    cpu->finish(events);
    SortOutput out;
    cpu->take_sorted(out);
    return out;
}

std::vector<SpikeEvent> cpu_events(const HwParams& detect, const std::vector<std::int16_t>& data) {
    auto cpu = make_cpu_backend(detect, 2);
    std::vector<SpikeEvent> events;
    cpu->process(data.data(), data.size() / static_cast<std::size_t>(detect.n_channels), events);
    cpu->finish(events);
    return events;
}

void expect_same_spikes(const std::vector<hw::SortedSpike>& expected, const std::vector<hw::SortedSpike>& actual) {
    ASSERT_EQ(expected.size(), actual.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        ASSERT_EQ(expected[i].event, actual[i].event) << "spike " << i;
        ASSERT_EQ(expected[i].unit, actual[i].unit) << "spike " << i;
        ASSERT_EQ(expected[i].template_id, actual[i].template_id) << "spike " << i;
        for (int v = 0; v < HwSortConfig::n_values; ++v)
            ASSERT_EQ(expected[i].features[v], actual[i].features[v]) << "spike " << i << " feature " << v;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// register_decode.hpp

void expect_same_entry(const hw::ClassifierEntry& a, const hw::ClassifierEntry& b) {
    EXPECT_EQ(a.unit, b.unit);
    EXPECT_EQ(a.template_id, b.template_id);
    EXPECT_EQ(a.gate, b.gate);
    for (int v = 0; v < HwSortConfig::n_values; ++v)
        EXPECT_EQ(a.centroid[v], b.centroid[v]) << "centroid " << v;
}

TEST(RegisterDecode, TheProgramsDecodeToEveryFieldOfTheParametersTablesAndQueue) {
    constexpr int channels = 96;
    DetectSettings settings;
    settings.artifact_rejection = true;
    settings.polarity = hw::Polarity::both;
    settings.spatial_sigma = 6;
    auto detect = make_detect_params(settings, probe::default_probe(channels), 30000);
    for (int g = 0; g < HwConfig::max_groups; ++g)
        detect->artifact_limit[g] = 3 + g; // every group distinct
    const auto sort = random_classifier(channels, 5);
    std::vector<hw::TableWrite> writes;
    for (int i = 0; i < 5; ++i) {
        hw::TableWrite w{1000u + 7u * static_cast<unsigned>(i), 3 * i, i == 2 ? -1 : i, 4, sort->entries[i][i]};
        w.entry.gate = (std::int64_t{1} << 40) + i; // both words of the gate
        w.entry.unit = -1 - i;
        writes.push_back(w);
    }

    auto decoded_detect = std::make_unique<HwParams>();
    auto decoded_sort = std::make_unique<HwSortParams>();
    hw::SortStageRegisters registers;
    auto queue = std::make_unique<hw::TableWriteQueue<HwSortConfig>>();
    int starts = 0;
    auto decode = [&](std::uint32_t address, std::uint32_t value) {
        starts += hw::decode_register_write(address, value, *decoded_detect, *decoded_sort, registers, *queue).start;
    };
    hw::TableWriteStager stager;
    decode(hw::reg::control, hw::reg::control_start);
    hw::program_detect_params(*detect, decode);
    decode(hw::sort_reg::control, hw::sort_reg::control_hold);
    hw::program_sort_params(stager, *sort, channels, decode);
    decode(hw::sort_reg::control, hw::sort_reg::control_enable | hw::sort_reg::control_snippets);
    for (const auto& w : writes)
        hw::program_table_write(stager, w, decode);

    EXPECT_EQ(starts, 1);
    const HwParams& a = *detect;
    const HwParams& b = *decoded_detect;
    EXPECT_EQ(a.n_channels, b.n_channels);
    for (int k = 0; k < HwConfig::n_sections; ++k) {
        EXPECT_EQ(a.sections[k].gain, b.sections[k].gain);
        EXPECT_EQ(a.sections[k].a1, b.sections[k].a1);
        EXPECT_EQ(a.sections[k].a2, b.sections[k].a2);
    }
    for (int ch = 0; ch < channels; ++ch) { // the program writes the channels in use
        EXPECT_EQ(a.group_of[ch], b.group_of[ch]) << "channel " << ch;
        for (int k = 0; k < HwConfig::max_neighbours; ++k)
            EXPECT_EQ(a.neighbours[ch][k], b.neighbours[ch][k]) << "channel " << ch << " neighbour " << k;
        for (int k = 0; k < HwConfig::max_partners; ++k)
            EXPECT_EQ(a.partners[ch][k], b.partners[ch][k]) << "channel " << ch << " partner " << k;
    }
    EXPECT_GT(a.spatial_gate_gain, 0) << "the test covers the spatial rule's fields";
    EXPECT_EQ(a.spatial_gate_gain, b.spatial_gate_gain);
    for (int k = 0; k < HwConfig::max_partners; ++k)
        EXPECT_EQ(a.spatial_gain[k], b.spatial_gain[k]) << "partners " << k + 1;
    for (int g = 0; g < HwConfig::max_groups; ++g) {
        EXPECT_EQ(a.group_inverse_size[g], b.group_inverse_size[g]) << "group " << g;
        EXPECT_EQ(a.artifact_limit[g], b.artifact_limit[g]) << "group " << g;
    }
    EXPECT_EQ(a.noise_step_fast, b.noise_step_fast);
    EXPECT_EQ(a.noise_step_slow, b.noise_step_slow);
    EXPECT_EQ(a.noise_initial, b.noise_initial);
    EXPECT_EQ(a.warmup_frames, b.warmup_frames);
    EXPECT_EQ(a.threshold_gain, b.threshold_gain);
    EXPECT_EQ(a.polarity, b.polarity);
    EXPECT_EQ(a.align_window, b.align_window);
    EXPECT_EQ(a.dead_time, b.dead_time);
    EXPECT_EQ(a.dedup_window, b.dedup_window);
    EXPECT_EQ(a.shadow_window, b.shadow_window);
    EXPECT_EQ(a.shadow_ratio, b.shadow_ratio);
    EXPECT_EQ(a.artifact_window, b.artifact_window);
    EXPECT_EQ(a.artifact_blank, b.artifact_blank);
    EXPECT_GT(a.artifact_window, 0) << "the test covers artefact rejection's fields";

    const HwSortParams& s = *sort;
    const HwSortParams& t = *decoded_sort;
    EXPECT_EQ(s.n_channels, t.n_channels);
    EXPECT_EQ(s.pre, t.pre);
    EXPECT_EQ(s.post, t.post);
    for (int p = 0; p < HwSortConfig::n_features; ++p)
        for (int i = 0; i < HwSortConfig::max_snippet_samples; ++i)
            EXPECT_EQ(s.basis[p][i], t.basis[p][i]) << "basis " << p << ", " << i;
    for (int ch = 0; ch < channels; ++ch) {
        SCOPED_TRACE("channel " + std::to_string(ch));
        for (int k = 0; k < HwSortConfig::snippet_channels; ++k)
            EXPECT_EQ(s.snippet_channels[ch][k], t.snippet_channels[ch][k]);
        EXPECT_EQ(s.n_entries[ch], t.n_entries[ch]);
        for (int e = 0; e < HwSortConfig::max_entries; ++e)
            expect_same_entry(s.entries[ch][e], t.entries[ch][e]);
    }
    EXPECT_EQ(registers.control, hw::sort_reg::control_enable | hw::sort_reg::control_snippets);

    ASSERT_EQ(queue->count, static_cast<int>(writes.size())) << "the table load's clear came before the writes";
    for (std::size_t i = 0; i < writes.size(); ++i) {
        const hw::TableWrite& q = queue->writes[(queue->head + static_cast<int>(i)) % HwSortConfig::max_table_writes];
        EXPECT_EQ(q.sample, writes[i].sample);
        EXPECT_EQ(q.channel, writes[i].channel);
        EXPECT_EQ(q.slot, writes[i].slot);
        EXPECT_EQ(q.n_entries, writes[i].n_entries);
        expect_same_entry(q.entry, writes[i].entry);
    }
}

TEST(RegisterDecode, FieldsKeepTheirRegisterWidthsAndReadOnlyAddressesChangeNothing) {
    auto params = std::make_unique<HwParams>();
    hw::decode_detect_register(hw::reg::section_base + 4, 0x3FFFFu, *params); // 18-bit -1
    EXPECT_EQ(params->sections[0].a1, -1);
    hw::decode_detect_register(hw::reg::group_of_base + 4 * 5, 0x1FFu, *params); // 8 bits signed
    EXPECT_EQ(params->group_of[5], -1);
    hw::decode_detect_register(hw::reg::align_window, 0xFFu, *params); // 7 bits
    EXPECT_EQ(params->align_window, 127);
    hw::decode_detect_register(hw::reg::polarity, 3u, *params);
    EXPECT_EQ(params->polarity, hw::Polarity::both);
    params->warmup_frames = 77;
    EXPECT_FALSE(hw::decode_detect_register(hw::reg::frames_low, 123u, *params).detect_params);
    EXPECT_FALSE(
        hw::decode_detect_register(hw::reg::group_of_base + 4 * HwConfig::max_channels, 1u, *params).detect_params);
    EXPECT_FALSE(
        hw::decode_detect_register(hw::reg::artifact_limit_base + 4 * HwConfig::max_groups, 1u, *params).detect_params);
    EXPECT_EQ(params->warmup_frames, 77u);
    EXPECT_EQ(params->artifact_limit[0], 0);
}

// ---------------------------------------------------------------------------------------------------------------
// The detection kernel

TEST(KernelCSimulation, DetectEqualsTheCpuBackendChunkByChunk) {
    constexpr int channels = 256;
    const auto data = simulate(channels, 3.0);
    DetectSettings spatial;
    spatial.threshold_sigma = 5.0;
    spatial.spatial_sigma = 5.75;
    for (const DetectSettings& settings : {DetectSettings{}, spatial}) {
        const auto params = make_detect_params(settings, probe::default_probe(channels), 30000);
        const auto expected = cpu_events(*params, data);
        ASSERT_GT(expected.size(), 500u);
        for (std::size_t chunk : {std::size_t{30}, std::size_t{1000}, std::size_t{90000}}) {
            SCOPED_TRACE("chunk " + std::to_string(chunk) + (settings.spatial_sigma > 0 ? ", spatial rule" : ""));
            const KernelStream actual = run_kernel_stream(false, *params, nullptr, data, chunk, 4096);
            testing::expect_same(expected, actual.events);
            EXPECT_TRUE(actual.spikes.empty());
        }
    }
}

TEST(KernelCSimulation, ArtefactsAreReportedAsTheReferenceBackendLogsThem) {
    constexpr int channels = 64;
    const auto data = testing::saturating_recording(channels); // every channel spikes at once every 0.1 s
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    auto reference = make_reference_backend(*params);
    const auto expected_events = testing::run(*reference, data, channels, 1 << 20);
    std::vector<hw::ArtifactEvent> expected;
    reference->take_artifacts(expected);
    ASSERT_FALSE(expected.empty()) << "the recording has artefacts";
    for (bool sorting : {false, true}) {
        SCOPED_TRACE(sorting ? "spikeline_sort (stage disabled)" : "spikeline_detect");
        auto unit_params = *params;
        KernelStream actual;
        testing::KernelUnit unit(sorting);
        unit.program_stream(unit_params, nullptr);
        const std::size_t frames = data.size() / channels;
        for (std::size_t f = 0; f < frames; f += 700) {
            const std::size_t n = std::min<std::size_t>(700, frames - f);
            testing::collect(unit.run(&data[f * channels], static_cast<std::uint32_t>(n),
                                      testing::stream_control(f, n, frames), 2048),
                             actual);
        }
        testing::expect_same(expected_events, actual.events);
        ASSERT_EQ(actual.artifacts.size(), expected.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
            const SpikeEvent& got = actual.artifacts[i].spike.event;
            EXPECT_EQ(got.sample, expected[i].sample);
            EXPECT_EQ(got.amplitude, expected[i].crossings);
            int first = -1;
            for (int ch = channels - 1; ch >= 0; --ch)
                if (params->group_of[ch] == expected[i].group)
                    first = ch;
            EXPECT_EQ(got.channel, first) << "artefact " << i << ": channel = the group's first channel";
        }
    }
}

TEST(KernelCSimulation, ReportsRecordsBeyondTheOutputCapacity) {
    constexpr int channels = 64;
    const auto data = simulate(channels, 1.0);
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    const KernelStream complete = run_kernel_stream(false, *params, nullptr, data, 30000, 4096);
    ASSERT_GT(complete.events.size(), 20u);
    const KernelStream truncated = run_kernel_stream(false, *params, nullptr, data, 30000, 10);
    EXPECT_EQ(truncated.most_records, complete.events.size()) << "the header counts every record";
    ASSERT_EQ(truncated.events.size(), 10u);
    EXPECT_TRUE(std::equal(truncated.events.begin(), truncated.events.end(), complete.events.begin()));
}

// ---------------------------------------------------------------------------------------------------------------
// The sorting kernel

TEST(KernelCSimulation, SortEqualsTheCpuBackendOnEveryLabelAndFeatureChunkByChunk) {
    constexpr int channels = 128;
    const auto data = simulate(channels, 2.0, 23);
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    const auto classifier = random_classifier(channels, 9);
    const SortOutput expected = cpu_sorted(*params, classifier, data);
    ASSERT_GT(expected.spikes.size(), 300u);
    std::size_t labelled = 0;
    for (const auto& s : expected.spikes)
        labelled += s.unit >= 0;
    ASSERT_GT(labelled, expected.spikes.size() / 10) << "the gates let some spikes through";
    ASSERT_LT(labelled, expected.spikes.size()) << "and hold some back";
    for (std::size_t chunk : {std::size_t{30}, std::size_t{3000}, std::size_t{60000}}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        const KernelStream actual = run_kernel_stream(true, *params, classifier.get(), data, chunk, 4096);
        EXPECT_TRUE(actual.events.empty()) << "with the stage enabled every event leaves sorted";
        expect_same_spikes(expected.spikes, actual.spikes);
    }
}

TEST(KernelCSimulation, TwoComputeUnitsInterleavedOnTwoRecordingsEachGiveTheirOwnResult) {
    const auto data_a = simulate(128, 1.5, 31);
    const auto data_b = simulate(64, 1.5, 32);
    const auto params_a = make_detect_params(DetectSettings{}, probe::default_probe(128), 30000);
    const auto params_b = make_detect_params(DetectSettings{}, probe::default_probe(64), 30000);
    const auto classifier_a = random_classifier(128, 1);
    const auto classifier_b = random_classifier(64, 2);
    const SortOutput expected_a = cpu_sorted(*params_a, classifier_a, data_a);
    const SortOutput expected_b = cpu_sorted(*params_b, classifier_b, data_b);
    ASSERT_GT(expected_a.spikes.size(), 100u);
    ASSERT_GT(expected_b.spikes.size(), 50u);

    testing::KernelUnit unit_a(true), unit_b(true);
    unit_a.program_stream(*params_a, classifier_a.get());
    unit_b.program_stream(*params_b, classifier_b.get());
    KernelStream actual_a, actual_b;
    const std::size_t frames = data_a.size() / 128, chunk = 1000; // both recordings have as many frames
    ASSERT_EQ(frames, data_b.size() / 64);
    for (std::size_t f = 0; f < frames; f += chunk) {
        const std::size_t n = std::min(chunk, frames - f);
        const std::uint32_t control = testing::stream_control(f, n, frames);
        testing::collect(unit_a.run(&data_a[f * 128], static_cast<std::uint32_t>(n), control, 4096), actual_a);
        testing::collect(unit_b.run(&data_b[f * 64], static_cast<std::uint32_t>(n), control, 4096), actual_b);
    }
    expect_same_spikes(expected_a.spikes, actual_a.spikes);
    expect_same_spikes(expected_b.spikes, actual_b.spikes);
}

TEST(KernelCSimulation, ANewStreamOnTheSameUnitStartsAfresh) {
    constexpr int channels = 64;
    const auto first = simulate(channels, 1.0, 41);
    const auto second = simulate(channels, 1.0, 42);
    const auto params = make_detect_params(DetectSettings{}, probe::default_probe(channels), 30000);
    const auto classifier = random_classifier(channels, 3);
    const SortOutput expected = cpu_sorted(*params, classifier, second);
    testing::KernelUnit unit(true);
    const std::size_t frames = first.size() / channels;
    unit.program_stream(*params, classifier.get());
    KernelStream ignored, actual;
    testing::collect(unit.run(first.data(), static_cast<std::uint32_t>(frames / 2), hw::abi::kControlReset, 4096),
                     ignored); // a stream left unfinished
    unit.program_stream(*params, classifier.get());
    testing::collect(unit.run(second.data(), static_cast<std::uint32_t>(frames),
                              hw::abi::kControlReset | hw::abi::kControlFlush, 8192),
                     actual);
    ASSERT_FALSE(ignored.spikes.empty());
    expect_same_spikes(expected.spikes, actual.spikes);
}

} // namespace
} // namespace spikeline
