// Co-simulation of the RTL kernel (hw_sim/rtl/spikeline_rtl.sv) as XRT runs it: the parameter program and the
// frames in card memory with random latency and back-pressure, XRT's ap_ctrl_hs register sequence, and every
// record of every run's output image compared with L1 bit for bit (events, artefacts, sorted spikes with unit,
// template and features, and the header's counters).
#include "backend/backend.hpp"
#include "backend/detect_settings.hpp"
#include "probe/probe.hpp"
#include "rtl_kernel_sim.hpp"
#include "simulated_recording.hpp"
#include "sort/sort_settings.hpp"
#include "spikeline/hw/detector.hpp"
#include "spikeline/hw/kernel_abi.hpp"
#include "spikeline/hw/register_program.hpp"
#include "test_sorter.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace spikeline {
namespace {

namespace abi = hw::abi;
using hw::SpikeEvent;

/// Program words: {address, value} pairs, flattened.
struct Program {
    std::vector<std::uint32_t> words;
    auto writer() {
        return [this](std::uint32_t address, std::uint32_t value) {
            words.push_back(address);
            words.push_back(value);
        };
    }
};

std::unique_ptr<HwParams> detect_params(int channels) {
    DetectSettings settings;
    settings.artifact_reach_um = 50; // the bursts below cross half of a 64-contact shank: over the limit
    auto params = make_detect_params(settings, probe::default_probe(channels), 30000);
    params->warmup_frames = 300;
    return params;
}

/// A simulated recording with an all-channel artefact every 4000 frames: 10 samples of +-3000, alternating in sign
/// between channels so that the common reference does not cancel it.
std::vector<std::int16_t> recording(int channels, double seconds, std::uint64_t seed) {
    auto data = testing::simulate_in_memory(channels, seconds, seed);
    const std::size_t frames = data.size() / static_cast<std::size_t>(channels);
    for (std::size_t at = 2500; at + 10 < frames; at += 4000)
        for (std::size_t f = at; f < at + 10; ++f)
            for (int ch = 0; ch < channels; ++ch) {
                std::int16_t& sample = data[f * static_cast<std::size_t>(channels) + static_cast<std::size_t>(ch)];
                sample = static_cast<std::int16_t>(std::clamp(sample + (ch % 2 ? 3000 : -3000), -32768, 32767));
            }
    return data;
}

int first_channel_of_group(const HwParams& params, int group) {
    for (int ch = 0; ch < params.n_channels; ++ch)
        if (params.group_of[ch] == group)
            return ch;
    return -1;
}

/// What L1 emits during one run's frames (and, at the end, the flush), and its counters after them.
struct RunReference {
    std::vector<SpikeEvent> events;
    std::vector<hw::ArtifactEvent> artifacts;
    std::uint64_t frames = 0;
    std::uint64_t dropped = 0, artifacts_declared = 0, artifact_candidates = 0;
};

std::vector<RunReference> l1_runs(const HwParams& params, const std::vector<std::int16_t>& data, std::size_t chunk) {
    auto state = std::make_unique<hw::DetectState<HwConfig>>();
    hw::reset_detect(*state, params);
    const auto channels = static_cast<std::size_t>(params.n_channels);
    const std::size_t frames = data.size() / channels;
    std::vector<RunReference> runs;
    std::uint64_t taken = 0;
    for (std::size_t f = 0; f < frames; f += chunk) {
        RunReference run;
        auto emit = [&run](const SpikeEvent& e) { run.events.push_back(e); };
        const std::size_t end = std::min(frames, f + chunk);
        for (std::size_t g = f; g < end; ++g) {
            hw::detect_one_frame(*state, params, &data[g * channels], emit);
            take_logged_artifacts(state->dedup.artifacts, taken, run.artifacts);
        }
        if (end == frames) {
            hw::detect_flush(*state, params, emit);
            take_logged_artifacts(state->dedup.artifacts, taken, run.artifacts);
        }
        run.frames = end;
        run.dropped = state->dedup.dropped;
        run.artifacts_declared = state->dedup.artifacts.count;
        run.artifact_candidates = state->dedup.artifacts.dropped_candidates;
        runs.push_back(std::move(run));
    }
    return runs;
}

std::uint32_t run_control(std::size_t f, std::size_t chunk, std::size_t frames) {
    return (f == 0 ? abi::kControlReset : 0u) | (f + chunk >= frames ? abi::kControlFlush : 0u);
}

struct KernelRuns {
    std::vector<rtl::KernelOutput> runs;
    std::uint64_t samples = 0, stream_cycles = 0;
    unsigned max_reads_outstanding = 0;
};

/// The recording through the kernel in runs of `chunk` frames: detection parameters in the first run's program.
KernelRuns kernel_detect(const HwParams& params, const std::vector<std::int16_t>& data, std::size_t chunk,
                         const rtl::MemoryTiming& timing, bool use_interrupt = true) {
    rtl::RtlKernelDriver driver(rtl::make_rtl_kernel_sim(params.n_channels, timing));
    const auto channels = static_cast<std::size_t>(params.n_channels);
    const std::size_t frames = data.size() / channels;
    KernelRuns out;
    for (std::size_t f = 0; f < frames; f += chunk) {
        Program program;
        if (f == 0)
            hw::program_detect_params(params, program.writer());
        const std::size_t n = std::min(chunk, frames - f);
        out.runs.push_back(driver.run(program.words, &data[f * channels], n, params.n_channels,
                                      run_control(f, chunk, frames), 100000, use_interrupt));
        out.samples += out.runs.back().stats.samples;
        out.stream_cycles += out.runs.back().stats.stream_cycles;
        out.max_reads_outstanding =
            std::max(out.max_reads_outstanding, out.runs.back().stats.memory.max_reads_outstanding);
    }
    return out;
}

void expect_run_equals_l1(const HwParams& params, const RunReference& expected, const rtl::KernelOutput& actual,
                          std::size_t run) {
    SCOPED_TRACE("run " + std::to_string(run));
    std::vector<SpikeEvent> events;
    std::vector<hw::ArtifactEvent> artifacts;
    for (const rtl::KernelRecord& record : actual.records) {
        ASSERT_EQ(record.last_word, 0u);
        if (record.kind == abi::kRecordEvent) {
            EXPECT_EQ(record.unit, -1);
            EXPECT_EQ(record.template_id, -1);
            events.push_back(SpikeEvent{record.sample, record.channel, record.amplitude});
        } else {
            ASSERT_EQ(record.kind, abi::kRecordArtifact);
            artifacts.push_back(hw::ArtifactEvent{record.sample, record.channel, record.amplitude});
        }
    }
    std::vector<hw::ArtifactEvent> expected_artifacts = expected.artifacts;
    for (hw::ArtifactEvent& artifact : expected_artifacts) // records name a group by its first channel
        artifact.group = first_channel_of_group(params, artifact.group);
    ASSERT_EQ(expected.events.size(), events.size());
    for (std::size_t i = 0; i < events.size(); ++i)
        ASSERT_EQ(expected.events[i], events[i]) << "event " << i << " of the run: sample " << events[i].sample;
    EXPECT_EQ(expected_artifacts, artifacts);
    EXPECT_EQ(actual.header[abi::kHeaderRecords], expected.events.size() + expected.artifacts.size());
    EXPECT_EQ(actual.header[abi::kHeaderFramesLow], static_cast<std::uint32_t>(expected.frames));
    EXPECT_EQ(actual.header[abi::kHeaderFramesHigh], 0u);
    EXPECT_EQ(actual.header[abi::kHeaderDroppedEvents], expected.dropped);
    EXPECT_EQ(actual.header[abi::kHeaderArtifacts], expected.artifacts_declared);
    EXPECT_EQ(actual.header[abi::kHeaderArtifactCands], expected.artifact_candidates);
    for (int w = abi::kHeaderArtifactCands + 1; w < abi::kOutputHeaderWords; ++w)
        EXPECT_EQ(actual.header[w], 0u);
}

rtl::MemoryTiming card_memory(double backpressure, std::uint64_t seed) {
    rtl::MemoryTiming timing;
    timing.read_latency_min = timing.write_latency_min = 100;
    timing.read_latency_max = timing.write_latency_max = 300;
    timing.backpressure = backpressure;
    timing.seed = seed;
    return timing;
}

TEST(RtlKernel, EveryRunsEventsAndArtefactsEqualL1AndTheCpuBackend) {
    constexpr int kChannels = 64;
    constexpr std::size_t kChunk = 3000;
    const auto params = detect_params(kChannels);
    const auto data = recording(kChannels, 0.4, 17);
    const std::vector<RunReference> expected = l1_runs(*params, data, kChunk);
    std::size_t events = 0, artifacts = 0;
    for (const RunReference& run : expected) {
        events += run.events.size();
        artifacts += run.artifacts.size();
    }
    ASSERT_GT(events, 25u);
    ASSERT_GT(artifacts, 0u) << "the steps should be declared artefacts";

    // the cpu backend gives L1's events
    auto cpu = make_cpu_backend(*params, 2);
    std::vector<SpikeEvent> cpu_events, l1_events;
    for (std::size_t f = 0; f < data.size() / kChannels; f += kChunk)
        cpu->process(&data[f * kChannels], std::min(kChunk, data.size() / kChannels - f), cpu_events);
    cpu->finish(cpu_events);
    for (const RunReference& run : expected)
        l1_events.insert(l1_events.end(), run.events.begin(), run.events.end());
    ASSERT_EQ(cpu_events, l1_events);

    {
        SCOPED_TRACE("latency 100-300 clocks, no back-pressure");
        const KernelRuns kernel = kernel_detect(*params, data, kChunk, card_memory(0, 3));
        ASSERT_EQ(kernel.runs.size(), expected.size());
        for (std::size_t r = 0; r < expected.size(); ++r)
            expect_run_equals_l1(*params, expected[r], kernel.runs[r], r);
        const double rate = static_cast<double>(kernel.samples) / static_cast<double>(kernel.stream_cycles);
        RecordProperty("samples_per_clock", std::to_string(rate));
        EXPECT_GE(rate, 0.99) << "samples per clock while frames stream";
        EXPECT_GE(kernel.max_reads_outstanding, 2u) << "several bursts in flight hide the latency";
        // the clocks of a run beyond its samples: program, latency of the first burst, the end of the run, header
        std::vector<std::uint32_t> overhead;
        for (std::size_t r = 1; r + 1 < kernel.runs.size(); ++r)
            overhead.push_back(kernel.runs[r].stats.run_cycles - kernel.runs[r].stats.stream_cycles);
        std::sort(overhead.begin(), overhead.end());
        RecordProperty("median_run_overhead_clocks", std::to_string(overhead[overhead.size() / 2]));
        RecordProperty("first_run_clocks", std::to_string(kernel.runs[0].stats.run_cycles));
        RecordProperty("max_reads_outstanding", std::to_string(kernel.max_reads_outstanding));
    }
    {
        SCOPED_TRACE("latency 100-300 clocks, back-pressure on every channel, ap_done polled");
        const KernelRuns kernel = kernel_detect(*params, data, kChunk / 2 + 7, card_memory(0.4, 9), false);
        const std::vector<RunReference> expected_small = l1_runs(*params, data, kChunk / 2 + 7);
        ASSERT_EQ(kernel.runs.size(), expected_small.size());
        for (std::size_t r = 0; r < expected_small.size(); ++r)
            expect_run_equals_l1(*params, expected_small[r], kernel.runs[r], r);
    }
}

TEST(RtlKernel, RecordsBeyondMaxRecordsAreCountedNotWritten) {
    constexpr int kChannels = 64;
    const auto params = detect_params(kChannels);
    const auto data = recording(kChannels, 0.2, 5);
    const std::vector<RunReference> expected = l1_runs(*params, data, data.size());
    ASSERT_GT(expected[0].events.size(), 10u);
    rtl::RtlKernelDriver driver(rtl::make_rtl_kernel_sim(kChannels, card_memory(0.2, 4)));
    Program program;
    hw::program_detect_params(*params, program.writer());
    constexpr std::uint32_t kMax = 5;
    const rtl::KernelOutput out = driver.run(program.words, data.data(), data.size() / kChannels, kChannels,
                                             abi::kControlReset | abi::kControlFlush, kMax);
    EXPECT_EQ(out.header[abi::kHeaderRecords], expected[0].events.size() + expected[0].artifacts.size());
    ASSERT_EQ(out.records.size(), kMax); // the driver also checks that nothing was written past them
    std::size_t next_event = 0;
    for (const rtl::KernelRecord& record : out.records)
        if (record.kind == abi::kRecordEvent) {
            EXPECT_EQ(record.sample, expected[0].events[next_event].sample);
            EXPECT_EQ(record.channel, expected[0].events[next_event].channel);
            ++next_event;
        }
    // a run with room for none still counts them all
    const rtl::KernelOutput none = driver.run(program.words, data.data(), data.size() / kChannels, kChannels,
                                              abi::kControlReset | abi::kControlFlush, 0);
    EXPECT_EQ(none.header[abi::kHeaderRecords], out.header[abi::kHeaderRecords]);
    EXPECT_TRUE(none.records.empty());
}

TEST(RtlKernel, ApCtrlHsRegisters) {
    auto kernel = rtl::make_rtl_kernel_sim(64);
    constexpr std::uint32_t kApControl = 0x00, kGie = 0x04, kIer = 0x08, kIsr = 0x0C;
    const std::uint32_t control = kernel->read_control(kApControl);
    EXPECT_EQ(control & 0x4u, 0x4u) << "ap_idle after reset";
    EXPECT_EQ(control & 0x3u, 0u) << "neither started nor done";
    EXPECT_FALSE(kernel->interrupt());

    // arguments read back; 64-bit pointers low word first
    kernel->write_control(abi::kArgOffsets[abi::kArgOutput], 0x89ABCDEFu);
    kernel->write_control(abi::kArgOffsets[abi::kArgOutput] + 4, 0x01234567u);
    kernel->write_control(abi::kArgOffsets[abi::kArgMaxRecords], 77);
    EXPECT_EQ(kernel->read_control(abi::kArgOffsets[abi::kArgOutput]), 0x89ABCDEFu);
    EXPECT_EQ(kernel->read_control(abi::kArgOffsets[abi::kArgOutput] + 4), 0x01234567u);
    EXPECT_EQ(kernel->read_control(abi::kArgOffsets[abi::kArgMaxRecords]), 77u);

    // ISR toggles on write; the interrupt needs GIE
    kernel->write_control(kIsr, 1);
    EXPECT_EQ(kernel->read_control(kIsr), 1u);
    kernel->idle(2);
    EXPECT_FALSE(kernel->interrupt()) << "GIE is off";
    kernel->write_control(kGie, 1);
    kernel->idle(2);
    EXPECT_TRUE(kernel->interrupt());
    kernel->write_control(kIsr, 1);
    EXPECT_EQ(kernel->read_control(kIsr), 0u);
    kernel->idle(2);
    EXPECT_FALSE(kernel->interrupt());
    kernel->write_control(kIer, 1);
    EXPECT_EQ(kernel->read_control(kIer), 1u);

    // an empty run (no frames, no program): ap_done, read once, then clear; ap_idle again
    rtl::RtlKernelDriver driver(std::move(kernel));
    const rtl::KernelOutput out = driver.run({}, nullptr, 0, 64, 0, 4, false);
    EXPECT_EQ(out.header[abi::kHeaderRecords], 0u);
    EXPECT_EQ(driver.kernel().read_control(kApControl) & 0x7u, 0x4u) << "ap_done cleared by the read, ap_idle";
}

TEST(RtlKernel, FramesOutsideAStreamAreSkippedNotAHang) {
    constexpr int kChannels = 64;
    const auto params = detect_params(kChannels);
    const auto data = recording(kChannels, 0.05, 8);
    const std::size_t frames = data.size() / kChannels;
    rtl::RtlKernelDriver driver(rtl::make_rtl_kernel_sim(kChannels, card_memory(0, 2)));
    Program program;
    hw::program_detect_params(*params, program.writer());
    {
        SCOPED_TRACE("parameters but no reset: no stream was ever started");
        const rtl::KernelOutput out = driver.run(program.words, data.data(), frames, kChannels, abi::kControlFlush, 8);
        EXPECT_EQ(out.header[abi::kHeaderFramesLow], 0u);
        EXPECT_EQ(out.stats.stream_cycles, 0u);
    }
    const rtl::KernelOutput first =
        driver.run(program.words, data.data(), frames, kChannels, abi::kControlReset | abi::kControlFlush, 1000);
    EXPECT_EQ(first.header[abi::kHeaderFramesLow], frames);
    {
        SCOPED_TRACE("after the flush: the stream is closed until the next reset");
        const rtl::KernelOutput out = driver.run({}, data.data(), frames, kChannels, abi::kControlFlush, 8);
        EXPECT_EQ(out.header[abi::kHeaderFramesLow], frames);
        EXPECT_EQ(out.header[abi::kHeaderRecords], 0u);
    }
    const rtl::KernelOutput again =
        driver.run({}, data.data(), frames, kChannels, abi::kControlReset | abi::kControlFlush, 1000);
    EXPECT_EQ(again.header[abi::kHeaderFramesLow], frames);
    EXPECT_EQ(again.header[abi::kHeaderRecords], first.header[abi::kHeaderRecords]) << "a reset starts afresh";
}

// ---- sorting ----

/// Table writes queued at the start of the run beginning at frame `at` (samples at or after it, in order).
std::vector<hw::TableWrite> table_writes(const HwSortParams& sorter, std::size_t at, std::mt19937& rng) {
    std::vector<hw::TableWrite> batch;
    std::uint64_t sample = at;
    for (int i = 0; i < 4; ++i) {
        sample += rng() % 300;
        hw::TableWrite write{};
        write.sample = sample;
        write.channel = static_cast<std::int32_t>(rng() % static_cast<unsigned>(sorter.n_channels));
        write.slot = static_cast<std::int32_t>(rng() % 9) - 1;
        write.n_entries = static_cast<std::int32_t>(rng() % 9);
        write.entry = sorter.entries[rng() % static_cast<unsigned>(sorter.n_channels)][rng() % 8];
        batch.push_back(write);
    }
    return batch;
}

TEST(RtlKernel, SortedSpikesEqualL1WithTableWritesInThePrograms) {
    constexpr int kChannels = 64;
    constexpr std::size_t kChunk = 2500;
    std::mt19937 rng(5);
    const auto params = detect_params(kChannels);
    const auto data = recording(kChannels, 0.5, 41);
    const auto sorter = testing::test_sorter(*params, data, rng);
    const std::size_t frames = data.size() / kChannels;
    std::vector<std::vector<hw::TableWrite>> writes;
    for (std::size_t f = 0; f < frames; f += kChunk)
        writes.push_back(f == 0 ? std::vector<hw::TableWrite>{} : table_writes(*sorter, f, rng));

    auto reference = make_reference_backend(*params);
    reference->enable_sorting(sorter, false);
    std::vector<SpikeEvent> events;
    for (std::size_t f = 0, r = 0; f < frames; f += kChunk, ++r) {
        reference->queue_table_writes(writes[r]);
        reference->process(&data[f * kChannels], std::min(kChunk, frames - f), events);
    }
    reference->finish(events);
    SortOutput expected;
    reference->take_sorted(expected);
    std::vector<hw::ArtifactEvent> expected_artifacts;
    reference->take_artifacts(expected_artifacts);
    ASSERT_GT(expected.spikes.size(), 30u);
    std::size_t labelled = 0;
    for (const hw::SortedSpike& spike : expected.spikes)
        labelled += spike.unit >= 0;
    ASSERT_GT(labelled, 5u);

    rtl::RtlKernelDriver driver(rtl::make_rtl_kernel_sim(kChannels, card_memory(0.3, 21)));
    hw::TableWriteStager stager;
    std::vector<hw::SortedSpike> spikes;
    std::vector<hw::ArtifactEvent> artifacts;
    for (std::size_t f = 0, r = 0; f < frames; f += kChunk, ++r) {
        Program program;
        if (f == 0) {
            hw::program_detect_params(*params, program.writer());
            program.writer()(hw::sort_reg::control, hw::sort_reg::control_hold);
            hw::program_sort_params(stager, *sorter, kChannels, program.writer());
            program.writer()(hw::sort_reg::control, hw::sort_reg::control_enable);
        }
        for (const hw::TableWrite& write : writes[r])
            hw::program_table_write(stager, write, program.writer());
        const rtl::KernelOutput out = driver.run(program.words, &data[f * kChannels], std::min(kChunk, frames - f),
                                                 kChannels, run_control(f, kChunk, frames), 100000);
        for (const rtl::KernelRecord& record : out.records) {
            if (record.kind == abi::kRecordArtifact) {
                artifacts.push_back({record.sample, record.channel, record.amplitude});
                continue;
            }
            ASSERT_EQ(record.kind, abi::kRecordSpike);
            hw::SortedSpike spike;
            spike.event = SpikeEvent{record.sample, record.channel, record.amplitude};
            spike.unit = record.unit;
            spike.template_id = record.template_id;
            std::copy(record.features, record.features + HwSortConfig::n_values, spike.features);
            spikes.push_back(spike);
        }
        EXPECT_EQ(out.header[abi::kHeaderDroppedSort], 0u);
        EXPECT_EQ(out.header[abi::kHeaderDroppedWrites], 0u);
    }
    ASSERT_EQ(expected.spikes.size(), spikes.size());
    for (std::size_t i = 0; i < spikes.size(); ++i) {
        const hw::SortedSpike &e = expected.spikes[i], &a = spikes[i];
        ASSERT_EQ(e.event, a.event) << "spike " << i;
        ASSERT_EQ(e.unit, a.unit) << "spike " << i;
        ASSERT_EQ(e.template_id, a.template_id) << "spike " << i;
        for (int v = 0; v < HwSortConfig::n_values; ++v)
            ASSERT_EQ(e.features[v], a.features[v]) << "spike " << i << " feature " << v;
    }
    for (hw::ArtifactEvent& artifact : expected_artifacts)
        artifact.group = first_channel_of_group(*params, artifact.group);
    EXPECT_EQ(expected_artifacts, artifacts);
}

// ---- kernel.xml (kernels/rtl/) against kernel_abi.hpp and the RTL's ports ----

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

/// The attributes of every `<TAG ...>` or `<TAG .../>` element, in order.
std::vector<std::map<std::string, std::string>> elements(const std::string& xml, const std::string& tag) {
    std::vector<std::map<std::string, std::string>> out;
    const std::regex element("<" + tag + "\\s([^>]*?)/?>");
    const std::regex attribute("([A-Za-z_]+)=\"([^\"]*)\"");
    for (auto e = std::sregex_iterator(xml.begin(), xml.end(), element); e != std::sregex_iterator(); ++e) {
        std::map<std::string, std::string> attributes;
        const std::string body = (*e)[1];
        for (auto a = std::sregex_iterator(body.begin(), body.end(), attribute); a != std::sregex_iterator(); ++a)
            attributes[(*a)[1]] = (*a)[2];
        out.push_back(attributes);
    }
    return out;
}

TEST(RtlKernelXml, ArgumentsMatchKernelAbiAndPortsMatchTheRtl) {
    const std::string xml = read_text(SPIKELINE_KERNEL_XML);
    ASSERT_FALSE(xml.empty()) << SPIKELINE_KERNEL_XML;
    const auto kernels = elements(xml, "kernel");
    ASSERT_EQ(kernels.size(), 1u);
    EXPECT_EQ(kernels[0].at("name"), "spikeline_rtl");
    EXPECT_EQ(kernels[0].at("hwControlProtocol"), "ap_ctrl_hs");
    EXPECT_EQ(kernels[0].at("interrupt"), "true");

    const std::string rtl = read_text(SPIKELINE_RTL_TOP);
    ASSERT_NE(rtl.find("module spikeline_rtl"), std::string::npos);
    std::map<std::string, std::string> port_mode;
    for (const auto& port : elements(xml, "port")) {
        port_mode[port.at("name")] = port.at("mode");
        const bool read_only = rtl.find(port.at("name") + "_araddr") != std::string::npos &&
                               rtl.find(port.at("name") + "_awaddr") == std::string::npos;
        EXPECT_NE(rtl.find(port.at("name") + (read_only ? "_araddr" : "_awaddr")), std::string::npos)
            << port.at("name") << " is not a port of spikeline_rtl.sv";
        if (port.at("mode") == "master") {
            EXPECT_EQ(port.at("dataWidth"), "512");
        }
    }
    ASSERT_EQ(port_mode["s_axi_control"], "slave");

    const auto args = elements(xml, "arg");
    ASSERT_EQ(args.size(), static_cast<std::size_t>(abi::kArgCount));
    std::uint32_t previous_end = 0x10; // after ap_ctrl, GIE, IER, ISR
    for (int i = 0; i < abi::kArgCount; ++i) {
        const auto& arg = args[static_cast<std::size_t>(i)];
        SCOPED_TRACE(arg.at("name"));
        EXPECT_EQ(arg.at("name"), abi::kArgs[i].name);
        EXPECT_EQ(std::stoi(arg.at("id")), i);
        const auto offset = static_cast<std::uint32_t>(std::stoul(arg.at("offset"), nullptr, 16));
        EXPECT_EQ(offset, abi::kArgOffsets[i]);
        EXPECT_GE(offset, previous_end) << "arguments overlap";
        const std::uint32_t size = abi::kArgs[i].pointer ? 8 : 4;
        EXPECT_EQ(std::stoul(arg.at("size"), nullptr, 16), size);
        EXPECT_EQ(arg.at("addressQualifier"), abi::kArgs[i].pointer ? "1" : "0");
        ASSERT_TRUE(port_mode.count(arg.at("port"))) << "undeclared port " << arg.at("port");
        EXPECT_EQ(port_mode[arg.at("port")], abi::kArgs[i].pointer ? "master" : "slave");
        if (abi::kArgs[i].pointer) {
            EXPECT_EQ(arg.at("port"), i == abi::kArgOutput ? "m_axi_gmem_out" : "m_axi_gmem_in");
        }
        previous_end = offset + size;
        // the RTL decodes the same offsets
        std::ostringstream decoded;
        decoded << "12'h" << std::hex << std::uppercase << std::setw(3) << std::setfill('0') << offset << ":";
        EXPECT_NE(rtl.find(decoded.str()), std::string::npos) << "spikeline_rtl.sv does not decode " << decoded.str();
    }
}

TEST(CosimLongKernel, OneProbeOf1024ChannelsThroughTheKernel) {
    constexpr int kChannels = 1024;
    constexpr std::size_t kChunk = 1500;
    const auto params = detect_params(kChannels);
    const auto data = recording(kChannels, 0.3, 23);
    const std::vector<RunReference> expected = l1_runs(*params, data, kChunk);
    const KernelRuns kernel = kernel_detect(*params, data, kChunk, card_memory(0.1, 13));
    ASSERT_EQ(kernel.runs.size(), expected.size());
    for (std::size_t r = 0; r < expected.size(); ++r)
        expect_run_equals_l1(*params, expected[r], kernel.runs[r], r);
    const double rate = static_cast<double>(kernel.samples) / static_cast<double>(kernel.stream_cycles);
    RecordProperty("samples_per_clock", std::to_string(rate));
    EXPECT_GE(rate, 0.99);
}

} // namespace
} // namespace spikeline
