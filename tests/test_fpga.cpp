// The generated xclbin: its container parses back, and XRT's noop shim (XCL_EMULATION_MODE=noop, set by CTest)
// loads it, finds the kernel and its memory groups, allocates buffers and runs the kernel (which computes nothing).
// The host side of the kernels (kernel_driver.hpp): the parameter program and the output image, bit for bit.
// The XRT backend: either kernel through one path, two compute units, a reset after a run that timed out, and its
// errors (a wrong xclbin, no card, XRT not set up).
#include "fpga/devices.hpp"
#include "fpga/kernel_driver.hpp"
#include "fpga/xclbin_writer.hpp"
#include "fpga/xrt_backend.hpp"
#include "io/recording.hpp"
#include "kernel_runs.hpp"
#include "pipeline/sort_run.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "spikeline/hw/kernel_abi.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"

#include <experimental/xrt_ini.h>
#include <xclbin.h>
#include <xrt/xrt_bo.h>
#include <xrt/xrt_device.h>
#include <xrt/xrt_kernel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

namespace spikeline {
namespace {

namespace abi = hw::abi;

class FpgaXclbinTest : public testing::TempDirTest {
protected:
    static std::vector<char> read_bytes(const std::filesystem::path& path) {
        std::ifstream in(path, std::ios::binary);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

    std::filesystem::path write_default() {
        const auto path = dir_ / "spikeline_detect.xclbin";
        write_xclbin(path, spikeline_detect_description());
        return path;
    }
};

// The section of the given kind, or nullptr.
const axlf_section_header* find_section(const std::vector<char>& bytes, axlf_section_kind kind) {
    const auto* top = reinterpret_cast<const axlf*>(bytes.data());
    for (std::uint32_t i = 0; i < top->m_header.m_numSections; ++i)
        if (top->m_sections[i].m_sectionKind == static_cast<std::uint32_t>(kind))
            return &top->m_sections[i];
    return nullptr;
}

TEST_F(FpgaXclbinTest, ContainerParsesBack) {
    const auto path = write_default();
    const auto bytes = read_bytes(path);
    ASSERT_GE(bytes.size(), sizeof(axlf));
    const auto* top = reinterpret_cast<const axlf*>(bytes.data());
    EXPECT_EQ(std::memcmp(top->m_magic, "xclbin2", 8), 0);
    EXPECT_EQ(top->m_header.m_length, bytes.size());
    EXPECT_STREQ(reinterpret_cast<const char*>(top->m_header.m_platformVBNV), "xilinx_u250_gen3x16_xdma_4_1_202210_1");
    const auto uuid = xclbin_uuid(spikeline_detect_description());
    EXPECT_EQ(std::memcmp(&top->m_header.uuid, uuid.data(), 16), 0);
    ASSERT_EQ(top->m_header.m_numSections, 5u);
    for (std::uint32_t i = 0; i < top->m_header.m_numSections; ++i) {
        const auto& s = top->m_sections[i];
        EXPECT_EQ(s.m_sectionOffset % 8, 0u) << i;
        EXPECT_GE(s.m_sectionOffset, sizeof(axlf) + 4 * sizeof(axlf_section_header)) << i;
        EXPECT_LE(s.m_sectionOffset + s.m_sectionSize, bytes.size()) << i;
    }
    for (const auto kind : {EMBEDDED_METADATA, MEM_TOPOLOGY, IP_LAYOUT, CONNECTIVITY, CLOCK_FREQ_TOPOLOGY})
        EXPECT_NE(find_section(bytes, kind), nullptr) << kind;
}

TEST_F(FpgaXclbinTest, MetadataNamesTheKernelAndItsEightArguments) {
    const auto bytes = read_bytes(write_default());
    const auto* xml_section = find_section(bytes, EMBEDDED_METADATA);
    ASSERT_NE(xml_section, nullptr);
    const std::string xml(bytes.data() + xml_section->m_sectionOffset, xml_section->m_sectionSize);
    EXPECT_NE(xml.find("<kernel name=\"spikeline_detect\""), std::string::npos);
    EXPECT_NE(xml.find("<instance name=\"spikeline_detect_1\">"), std::string::npos);
    // kernel_abi.hpp's names, kinds and register offsets, one argument per index.
    const std::pair<const char*, const char*> args[] = {
        {"name=\"frames\" addressQualifier=\"1\" id=\"0\"", "offset=\"0x10\""},
        {"name=\"n_frames\" addressQualifier=\"0\" id=\"1\"", "offset=\"0x1C\""},
        {"name=\"program\" addressQualifier=\"1\" id=\"2\"", "offset=\"0x24\""},
        {"name=\"n_program_writes\" addressQualifier=\"0\" id=\"3\"", "offset=\"0x30\""},
        {"name=\"output\" addressQualifier=\"1\" id=\"4\"", "offset=\"0x38\""},
        {"name=\"max_records\" addressQualifier=\"0\" id=\"5\"", "offset=\"0x44\""},
        {"name=\"control\" addressQualifier=\"0\" id=\"6\"", "offset=\"0x4C\""},
        {"name=\"state\" addressQualifier=\"1\" id=\"7\"", "offset=\"0x54\""},
    };
    std::size_t count = 0;
    for (std::size_t at = xml.find("<arg "); at != std::string::npos; at = xml.find("<arg ", at + 1))
        ++count;
    EXPECT_EQ(count, 8u);
    for (const auto& [head, offset] : args) {
        const auto at = xml.find(head);
        ASSERT_NE(at, std::string::npos) << head;
        const auto line = xml.substr(at, xml.find('\n', at) - at);
        EXPECT_NE(line.find(offset), std::string::npos) << line;
    }
}

TEST_F(FpgaXclbinTest, ConnectivityPutsInputsOnDdr0AndOutputsOnDdr1) {
    const auto bytes = read_bytes(write_default());
    const auto* section = find_section(bytes, CONNECTIVITY);
    ASSERT_NE(section, nullptr);
    const auto* conn = reinterpret_cast<const connectivity*>(bytes.data() + section->m_sectionOffset);
    ASSERT_EQ(conn->m_count, 4);
    const std::pair<int, int> expected[] = {
        {abi::kArgFrames, 0}, {abi::kArgProgram, 0}, {abi::kArgOutput, 1}, {abi::kArgState, 0}};
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(conn->m_connection[i].arg_index, expected[i].first);
        EXPECT_EQ(conn->m_connection[i].m_ip_layout_index, 0);
        EXPECT_EQ(conn->m_connection[i].mem_data_index, expected[i].second);
    }
    const auto* mem_section = find_section(bytes, MEM_TOPOLOGY);
    ASSERT_NE(mem_section, nullptr);
    const auto* mem = reinterpret_cast<const mem_topology*>(bytes.data() + mem_section->m_sectionOffset);
    ASSERT_EQ(mem->m_count, 4);
    EXPECT_STREQ(reinterpret_cast<const char*>(mem->m_mem_data[1].m_tag), "DDR[1]");
    EXPECT_EQ(mem->m_mem_data[1].m_used, 1);
    EXPECT_EQ(mem->m_mem_data[2].m_used, 0);
}

// Two compute units: two IP_LAYOUT entries, each with its own connections (the second on DDR[2] and DDR[3]).
TEST_F(FpgaXclbinTest, TwoComputeUnitsHaveTheirOwnInstancesAndBanks) {
    const auto path = dir_ / "two.xclbin";
    write_xclbin(path, spikeline_kernel_description("spikeline_sort", 2));
    const auto bytes = read_bytes(path);
    const auto* ip_section = find_section(bytes, IP_LAYOUT);
    ASSERT_NE(ip_section, nullptr);
    const auto* ips = reinterpret_cast<const ip_layout*>(bytes.data() + ip_section->m_sectionOffset);
    ASSERT_EQ(ips->m_count, 2);
    EXPECT_STREQ(reinterpret_cast<const char*>(ips->m_ip_data[0].m_name), "spikeline_sort:spikeline_sort_1");
    EXPECT_STREQ(reinterpret_cast<const char*>(ips->m_ip_data[1].m_name), "spikeline_sort:spikeline_sort_2");
    EXPECT_NE(ips->m_ip_data[0].m_base_address, ips->m_ip_data[1].m_base_address);
    const auto* section = find_section(bytes, CONNECTIVITY);
    ASSERT_NE(section, nullptr);
    const auto* conn = reinterpret_cast<const connectivity*>(bytes.data() + section->m_sectionOffset);
    ASSERT_EQ(conn->m_count, 8);
    for (int i = 0; i < 8; ++i) {
        const int cu = i / 4;
        EXPECT_EQ(conn->m_connection[i].m_ip_layout_index, cu) << i;
        const bool output = conn->m_connection[i].arg_index == abi::kArgOutput;
        EXPECT_EQ(conn->m_connection[i].mem_data_index, 2 * cu + (output ? 1 : 0)) << i;
    }
    const auto* xml_section = find_section(bytes, EMBEDDED_METADATA);
    const std::string xml(bytes.data() + xml_section->m_sectionOffset, xml_section->m_sectionSize);
    EXPECT_NE(xml.find("<instance name=\"spikeline_sort_2\">"), std::string::npos);
}

TEST_F(FpgaXclbinTest, SameDescriptionSameBytes) {
    write_xclbin(dir_ / "a.xclbin", spikeline_detect_description());
    write_xclbin(dir_ / "b.xclbin", spikeline_detect_description());
    write_xclbin(dir_ / "c.xclbin", spikeline_detect_description("xilinx_u55c_gen3x16_xdma_3_202210_1"));
    EXPECT_EQ(read_bytes(dir_ / "a.xclbin"), read_bytes(dir_ / "b.xclbin"));
    EXPECT_NE(xclbin_uuid(spikeline_detect_description()),
              xclbin_uuid(spikeline_detect_description("xilinx_u55c_gen3x16_xdma_3_202210_1")));
    // Only the final files remain: no temporaries.
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()), 3);
}

TEST_F(FpgaXclbinTest, RejectsInconsistentDescriptions) {
    auto d = spikeline_detect_description();
    d.compute_units[0].arg_banks[abi::kArgOutput] = 7;
    EXPECT_THROW(write_xclbin(dir_ / "x.xclbin", d), InputError);
    d = spikeline_detect_description(std::string(64, 'p'));
    EXPECT_THROW(write_xclbin(dir_ / "x.xclbin", d), InputError);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "x.xclbin"));
}

// Under XRT's noop shim. CTest sets XCL_EMULATION_MODE=noop and XILINX_XRT; run by hand, the test is skipped.
class FpgaNoopXrtTest : public FpgaXclbinTest {
protected:
    void SetUp() override {
        const char* mode = std::getenv("XCL_EMULATION_MODE");
        if (!mode || std::string(mode) != "noop" || !std::getenv("XILINX_XRT"))
            GTEST_SKIP() << "needs XCL_EMULATION_MODE=noop and XILINX_XRT (CTest sets both)";
        FpgaXclbinTest::SetUp();
    }
};

TEST_F(FpgaNoopXrtTest, LoadsTheXclbinAndRunsTheKernel) {
    const auto path = write_default();
    xrt::device device(0);
    const xrt::uuid uuid = device.load_xclbin(path.string());
    const auto expected = xclbin_uuid(spikeline_detect_description());
    EXPECT_EQ(std::memcmp(uuid.get(), expected.data(), 16), 0) << uuid.to_string();

    xrt::kernel kernel(device, uuid, "spikeline_detect");
    // Groups are the mem_topology indices of CONNECTIVITY: inputs and state DDR[0], the output DDR[1].
    EXPECT_EQ(kernel.group_id(abi::kArgFrames), 0);
    EXPECT_EQ(kernel.group_id(abi::kArgProgram), 0);
    EXPECT_EQ(kernel.group_id(abi::kArgOutput), 1);
    EXPECT_EQ(kernel.group_id(abi::kArgState), 0);
    for (int arg = 0; arg < abi::kArgCount; ++arg)
        EXPECT_EQ(kernel.offset(arg), abi::kArgOffsets[arg]) << abi::kArgs[arg].name;

    constexpr std::size_t kFrames = 64;
    constexpr std::size_t kChannels = 384;
    constexpr std::uint32_t kMaxRecords = 64;
    xrt::bo frames(device, kFrames * kChannels * sizeof(std::int16_t), kernel.group_id(abi::kArgFrames));
    xrt::bo program(device, 2 * sizeof(std::uint32_t), kernel.group_id(abi::kArgProgram));
    const std::size_t output_words = abi::kOutputHeaderWords + kMaxRecords * abi::kRecordWords;
    xrt::bo output(device, output_words * sizeof(std::uint32_t), kernel.group_id(abi::kArgOutput));
    xrt::bo state(device, 4096, kernel.group_id(abi::kArgState));
    auto* samples = frames.map<std::int16_t*>();
    ASSERT_NE(samples, nullptr);
    for (std::size_t i = 0; i < kFrames * kChannels; ++i)
        samples[i] = static_cast<std::int16_t>(i % 100);
    frames.sync(XCL_BO_SYNC_BO_TO_DEVICE);
    auto* writes = program.map<std::uint32_t*>();
    writes[0] = hw::reg::n_channels;
    writes[1] = kChannels;
    program.sync(XCL_BO_SYNC_BO_TO_DEVICE);

    xrt::run run(kernel);
    run.set_arg(abi::kArgFrames, frames);
    run.set_arg(abi::kArgNFrames, static_cast<std::uint32_t>(kFrames));
    run.set_arg(abi::kArgProgram, program);
    run.set_arg(abi::kArgNProgramWrites, 1u);
    run.set_arg(abi::kArgOutput, output);
    run.set_arg(abi::kArgMaxRecords, kMaxRecords);
    run.set_arg(abi::kArgControl, abi::kControlReset | abi::kControlFlush);
    run.set_arg(abi::kArgState, state);
    auto* image = output.map<std::uint32_t*>();
    std::fill_n(image, abi::kOutputHeaderWords, 0xFFFFFFFFu); // host memory only: the shim writes nothing
    run.start();
    EXPECT_EQ(run.wait(std::chrono::seconds(10)), ERT_CMD_STATE_COMPLETED);

    // The shim computes nothing and its syncs move nothing; the read-back path must still work.
    output.sync(XCL_BO_SYNC_BO_FROM_DEVICE);
    EXPECT_EQ(image[abi::kHeaderRecords], 0xFFFFFFFFu);
}

TEST_F(FpgaNoopXrtTest, UnknownKernelNameIsRejected) {
    const auto path = write_default();
    xrt::device device(0);
    const auto uuid = device.load_xclbin(path.string());
    EXPECT_ANY_THROW(xrt::kernel(device, uuid, "no_such_kernel"));
}

HwParams two_shank_params(int n_channels) {
    HwParams params;
    params.n_channels = n_channels;
    for (int ch = 0; ch < n_channels; ++ch) {
        params.group_of[ch] = static_cast<std::int16_t>(ch < n_channels / 2 ? 0 : 1);
        for (int k = 0; k < HwConfig::max_neighbours; ++k)
            params.neighbours[ch][k] = -1;
        params.neighbours[ch][0] = static_cast<std::int16_t>((ch ^ 1) | hw::kFarNeighbour); // pairs on one shank
    }
    return params;
}

// The backend's whole path (buffer sets, chunked runs, flush, read-back) against the shim, for each kernel through
// the same code: no events come back because nothing is computed, but every run must complete.
TEST_F(FpgaNoopXrtTest, XrtBackendRunsEitherKernelThroughTheShim) {
    for (const char* kernel : {"spikeline_detect", "spikeline_sort", "spikeline_rtl"}) {
        SCOPED_TRACE(kernel);
        XrtOptions options;
        options.xclbin = dir_ / (std::string(kernel) + ".xclbin");
        write_xclbin(options.xclbin, spikeline_kernel_description(kernel));
        options.chunk_ms = 1.0;
        options.buffer_sets = 3;
        const HwParams params = two_shank_params(64);
        auto backend = make_xrt_backend(params, 30000.0, options);
        EXPECT_EQ(backend->kernel_name(), kernel);
        const std::vector<std::int16_t> frames(100 * 64, 0); // 3.3 chunks of 30 frames
        std::vector<SpikeEvent> events;
        backend->process(frames.data(), 100, events);
        backend->finish(events);
        EXPECT_TRUE(events.empty());
        EXPECT_EQ(backend->lost_events(), 0u);
        const auto stats = backend->compute_unit_stats();
        ASSERT_EQ(stats.size(), 1u);
        EXPECT_EQ(stats[0].name, std::string(kernel) + ":" + kernel + "_1");
        EXPECT_EQ(stats[0].runs_started, 4u);
        EXPECT_EQ(stats[0].runs_completed, 4u);
        // The detection program: every register of program_detect_params once, and the sorting stage off.
        std::size_t detect_writes = 0;
        hw::program_detect_params(params, [&](std::uint32_t, std::uint32_t) { ++detect_writes; });
        EXPECT_EQ(stats[0].program_writes, detect_writes + 1);
    }
}

// The spikeline_sort kernel chosen for sorting: the classifier rides with the first run and again after a swap.
TEST_F(FpgaNoopXrtTest, XrtSortBackendRunsChunksThroughTheShim) {
    XrtOptions options;
    options.xclbin = dir_ / "spikeline_sort.xclbin";
    write_xclbin(options.xclbin, spikeline_sort_description());
    options.sorting = true;
    options.buffer_sets = 2;
    const HwParams params = two_shank_params(64);
    auto classifier = std::make_shared<HwSortParams>();
    classifier->n_channels = 64;
    const std::vector<std::int16_t> frames(100 * 64, 0);
    std::vector<SpikeEvent> events;
    auto backend = make_xrt_backend(params, 30000.0, options);
    EXPECT_THROW(backend->enable_sorting(classifier, true), InputError) << "the card returns no snippets";
    EXPECT_THROW(backend->queue_table_writes({{0, 1, 0, 1, {}}}), InputError) << "no classifier yet";
    backend->enable_sorting(classifier, false);
    backend->process(frames.data(), 100, events);
    const std::uint64_t before_swap = backend->compute_unit_stats()[0].program_writes;
    backend->enable_sorting(classifier, false); // recalibration: the next run reloads the classifier
    backend->process(frames.data(), 100, events);
    EXPECT_GT(backend->compute_unit_stats()[0].program_writes, before_swap + 64 * hw::SortConfig::max_entries);
    // Unit updates ride with the next run.
    EXPECT_THROW(backend->queue_table_writes({{150, 1, -1, 0, {}}}), std::logic_error) << "before the frames processed";
    backend->queue_table_writes({{200, 1, 0, 1, {}}, {250, 2, -1, 0, {}}});
    backend->process(frames.data(), 100, events);
    backend->finish(events);
    SortOutput sorted;
    backend->take_sorted(sorted);
    EXPECT_TRUE(events.empty());
    EXPECT_TRUE(sorted.spikes.empty());
    EXPECT_EQ(backend->lost_events(), 0u);
    const auto stats = backend->compute_unit_stats();
    EXPECT_EQ(stats[0].runs_started, stats[0].runs_completed);
}

// spikeline sort --backend xrt: calibration on the CPU, labelling through the spikeline_sort kernel. The shim
// computes nothing, so the Phy folder holds no spike, but the whole pipeline runs and finalises it.
TEST_F(FpgaNoopXrtTest, SortPipelineCalibratesOnTheCpuAndLabelsThroughTheKernel) {
    sim::SimulationConfig config;
    config.n_channels = 64;
    config.duration_s = 3;
    config.seed = 4;
    sim::simulate_to_folder(config, probe::default_probe(64), dir_ / "sim");
    SortRunOptions options;
    options.detect.backend = {"xrt", 1};
    options.detect.chunk_ms = 10;
    options.detect.xrt.xclbin = dir_ / "spikeline_sort.xclbin";
    write_xclbin(options.detect.xrt.xclbin, spikeline_sort_description());
    auto open = [&] { return io::open_recording(dir_ / "sim" / "recording.bin", {}); };
    const SortRunResult result =
        run_sorting(open, probe::read_probeinterface(dir_ / "sim" / "probe.json"), options, dir_ / "phy");
    EXPECT_GT(result.calibration_spikes, 50u) << "the CPU calibration pass detects the simulated spikes";
    EXPECT_GT(result.n_units, 0);
    EXPECT_EQ(result.spikes, 0u) << "the noop shim computes nothing";
    EXPECT_EQ(result.frames, 90000u);
    EXPECT_TRUE(std::filesystem::is_regular_file(dir_ / "phy" / "params.py"));

    options.sort.recalibrate_every_s = 1;
    EXPECT_THROW(run_sorting(open, probe::read_probeinterface(dir_ / "sim" / "probe.json"), options, dir_ / "phy2"),
                 InputError);
}

TEST_F(FpgaNoopXrtTest, DetectionKernelRefusesSortingAndKernelChoiceIsChecked) {
    XrtOptions options;
    options.xclbin = write_default();
    const HwParams params = two_shank_params(64);
    auto detect_only = make_xrt_backend(params, 30000.0, options);
    EXPECT_THROW(detect_only->enable_sorting(std::make_shared<HwSortParams>(), false), InputError);
    const auto error_of = [&](const XrtOptions& o) {
        try {
            make_xrt_backend(params, 30000.0, o);
        } catch (const InputError& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    detect_only.reset();
    options.sorting = true;
    EXPECT_NE(error_of(options).find("holds no kernel named spikeline_rtl or spikeline_sort (it holds: "
                                     "spikeline_detect)"),
              std::string::npos)
        << error_of(options);
    options.kernel = "spikeline_detect";
    EXPECT_NE(error_of(options).find("the spikeline_detect kernel does not sort"), std::string::npos);
    options.sorting = false;
    options.kernel = "spikeline_rtl";
    EXPECT_NE(error_of(options).find("holds no kernel named spikeline_rtl"), std::string::npos);
    options.kernel = "vadd";
    EXPECT_NE(error_of(options).find("--kernel vadd is not one of spikeline's kernels"), std::string::npos);
}

// Two compute units of a 2-CU xclbin: each takes one shank with its own buffers (its own memory banks) and its own
// state buffer, and runs every chunk of its half.
TEST_F(FpgaNoopXrtTest, TwoComputeUnitsRunTheirOwnHalves) {
    XrtOptions options;
    options.xclbin = dir_ / "two.xclbin";
    write_xclbin(options.xclbin, spikeline_kernel_description("spikeline_sort", 2));
    options.compute_units = 0; // every one in the xclbin
    const HwParams params = two_shank_params(64);
    auto backend = make_xrt_backend(params, 30000.0, options);
    const std::vector<std::int16_t> frames(100 * 64, 0);
    std::vector<SpikeEvent> events;
    backend->process(frames.data(), 100, events);
    backend->finish(events);
    const auto stats = backend->compute_unit_stats();
    ASSERT_EQ(stats.size(), 2u);
    EXPECT_EQ(stats[0].name, "spikeline_sort:spikeline_sort_1");
    EXPECT_EQ(stats[1].name, "spikeline_sort:spikeline_sort_2");
    EXPECT_EQ(stats[0].first_channel, 0);
    EXPECT_EQ(stats[1].first_channel, 32);
    EXPECT_EQ(stats[0].n_channels + stats[1].n_channels, 64);
    EXPECT_EQ(stats[0].memory_groups, (std::vector<int>{0, 0, 1, 0}));
    EXPECT_EQ(stats[1].memory_groups, (std::vector<int>{2, 2, 3, 2}));
    ASSERT_NE(stats[0].state_buffer, nullptr);
    EXPECT_NE(stats[0].state_buffer, stats[1].state_buffer);
    for (const auto& cu : stats) {
        EXPECT_EQ(cu.runs_started, 4u) << cu.name;
        EXPECT_EQ(cu.runs_completed, 4u) << cu.name;
    }
    EXPECT_THROW(backend->enable_sorting(std::make_shared<HwSortParams>(), false), InputError)
        << "sorting stays on one compute unit";
    backend.reset();

    options.compute_units = 3;
    EXPECT_THROW(make_xrt_backend(params, 30000.0, options), InputError);
    HwParams one_group = params;
    for (int ch = 0; ch < 64; ++ch)
        one_group.group_of[ch] = 0;
    options.compute_units = 2;
    try {
        make_xrt_backend(one_group, 30000.0, options);
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("each needs whole shanks"), std::string::npos) << e.what();
    }
}

TEST(SplitChannels, CutsAtShankBoundariesNearestTheMiddle) {
    HwParams params = two_shank_params(64);
    EXPECT_EQ(split_channels(params, 1), (std::vector<int>{0}));
    EXPECT_EQ(split_channels(params, 2), (std::vector<int>{0, 32}));
    for (int ch = 0; ch < 64; ++ch)
        params.group_of[ch] = static_cast<std::int16_t>(ch / 16); // four shanks of 16, neighbours in pairs
    EXPECT_EQ(split_channels(params, 2), (std::vector<int>{0, 32}));
    EXPECT_EQ(split_channels(params, 3), (std::vector<int>{0, 16, 48}));
    params.neighbours[31][1] = 32; // a neighbour across the middle: the nearest other cut
    EXPECT_EQ(split_channels(params, 2), (std::vector<int>{0, 16}));
}

// The program of a stream: the detection parameters and kControlReset in the first run, the classifier (held while
// written, then enabled) and table writes as register_program.hpp writes them, only the new writes in later runs.
TEST(StreamProgram, MatchesRegisterProgram) {
    auto params = std::make_shared<HwParams>(two_shank_params(8));
    auto classifier = std::make_shared<HwSortParams>();
    classifier->n_channels = 8;
    classifier->entries[3][1].unit = 7;
    fpga::StreamProgram program(params);
    program.set_sorting(classifier);
    const std::vector<hw::TableWrite> first_writes = {{40, 3, 1, 2, {}}};
    program.queue_table_writes(first_writes);

    std::vector<std::uint32_t> expected;
    const auto append = [&expected](std::uint32_t address, std::uint32_t value) {
        expected.push_back(address);
        expected.push_back(value);
    };
    hw::TableWriteStager stager;
    hw::program_detect_params(*params, append);
    append(hw::sort_reg::control, 0);
    append(hw::sort_reg::control, hw::sort_reg::control_hold);
    hw::program_sort_params(stager, *classifier, 8, append);
    append(hw::sort_reg::control, hw::sort_reg::control_enable);
    hw::program_table_write(stager, first_writes[0], append);

    std::vector<std::uint32_t> words;
    EXPECT_EQ(program.take_run(words, false), abi::kControlReset);
    EXPECT_EQ(words, expected);

    EXPECT_EQ(program.take_run(words, false), 0u);
    EXPECT_TRUE(words.empty()) << "nothing new: no program transfer";
    const hw::TableWrite later{90, 3, 1, 2, {}};
    program.queue_table_writes({later});
    expected.clear();
    hw::program_table_write(stager, later, append); // the same stager: only the words that changed
    EXPECT_EQ(program.take_run(words, true), abi::kControlFlush);
    EXPECT_EQ(words, expected);
    EXPECT_EQ(words.size(), 4u) << "sample low word and the queue command";

    program.restart(); // a new stream: everything again, from a cleared engine
    EXPECT_EQ(program.take_run(words, false), abi::kControlReset);
    std::size_t detect_words = 0;
    hw::program_detect_params(*params, [&](std::uint32_t, std::uint32_t) { detect_words += 2; });
    EXPECT_GT(words.size(), detect_words + 2 * 8 * hw::SortConfig::max_entries);
}

// An output image built by hand: header, then records of each kind in kernel_abi.hpp's layout.
struct ImageBuilder {
    explicit ImageBuilder(std::uint32_t max_records)
        : words(abi::kOutputHeaderWords + static_cast<std::size_t>(max_records) * abi::kRecordWords, 0),
          capacity(max_records) {}

    std::uint32_t* add(std::uint32_t kind, std::uint64_t sample, std::uint32_t channel, std::int32_t amplitude) {
        const std::uint32_t index = words[abi::kHeaderRecords]++;
        if (index >= capacity)
            return nullptr; // counted, not stored: as a kernel does when the buffer is full
        std::uint32_t* record = words.data() + abi::kOutputHeaderWords + index * abi::kRecordWords;
        record[abi::kRecordKind] = kind;
        record[abi::kRecordSampleLow] = static_cast<std::uint32_t>(sample);
        record[abi::kRecordSampleHigh] = static_cast<std::uint32_t>(sample >> 32);
        record[abi::kRecordChannel] = channel;
        record[abi::kRecordAmplitude] = static_cast<std::uint32_t>(amplitude);
        record[abi::kRecordUnit] = static_cast<std::uint32_t>(-1);
        record[abi::kRecordTemplate] = static_cast<std::uint32_t>(-1);
        return record;
    }

    std::vector<std::uint32_t> words;
    std::uint32_t capacity;
};

TEST(OutputImage, DecodesEveryRecordKindAndTheCounters) {
    const HwParams params = two_shank_params(64);
    ImageBuilder image(4);
    image.add(abi::kRecordEvent, (std::uint64_t{1} << 32) + 5, 12, -250);
    std::uint32_t* spike = image.add(abi::kRecordSpike, 77, 40, -96);
    spike[abi::kRecordUnit] = 3;
    spike[abi::kRecordTemplate] = 11;
    for (int v = 0; v < hw::SortConfig::n_values; ++v)
        spike[abi::kRecordFeatures + v] = static_cast<std::uint32_t>(v * 100 - 1000);
    image.add(abi::kRecordArtifact, 90, 32, 17); // the first channel of group 1, 17 crossings
    image.words[abi::kHeaderFramesLow] = 123;
    image.words[abi::kHeaderFramesHigh] = 1;
    image.words[abi::kHeaderDroppedEvents] = 2;
    image.words[abi::kHeaderDroppedSort] = 3;
    image.words[abi::kHeaderDroppedWrites] = 4;
    image.words[abi::kHeaderArtifacts] = 1;
    image.words[abi::kHeaderArtifactCands] = 9;

    fpga::DecodedOutput out;
    fpga::decode_output(image.words.data(), image.words.size(), 4, 100, params.group_of, 64, out);
    ASSERT_EQ(out.events.size(), 2u);
    EXPECT_EQ(out.events[0], (hw::SpikeEvent{(std::uint64_t{1} << 32) + 5, 12, -250}));
    EXPECT_EQ(out.events[1], (hw::SpikeEvent{77, 40, -96}));
    ASSERT_EQ(out.spikes.size(), 1u);
    EXPECT_EQ(out.spikes[0].event, out.events[1]);
    EXPECT_EQ(out.spikes[0].unit, 3);
    EXPECT_EQ(out.spikes[0].template_id, 11);
    for (int v = 0; v < hw::SortConfig::n_values; ++v)
        EXPECT_EQ(out.spikes[0].features[v], v * 100 - 1000) << v;
    ASSERT_EQ(out.artifacts.size(), 1u);
    EXPECT_EQ(out.artifacts[0], (hw::ArtifactEvent{90, 1, 17}));
    EXPECT_EQ(out.last.records, 3u);
    EXPECT_EQ(out.last.frames, (std::uint64_t{1} << 32) + 123);
    EXPECT_EQ(out.last.dropped_events, 2u);
    EXPECT_EQ(out.last.dropped_sort, 3u);
    EXPECT_EQ(out.last.dropped_writes, 4u);
    EXPECT_EQ(out.last.artifacts, 1u);
    EXPECT_EQ(out.last.artifact_candidates, 9u);
    EXPECT_EQ(out.records_lost, 0u);
}

TEST(OutputImage, RecordsBeyondTheBufferAreCountedAsLost) {
    const HwParams params = two_shank_params(64);
    ImageBuilder image(2);
    for (int i = 0; i < 5; ++i)
        image.add(abi::kRecordEvent, 10 + static_cast<std::uint64_t>(i), static_cast<std::uint32_t>(i), -100);
    fpga::DecodedOutput out;
    fpga::decode_output(image.words.data(), image.words.size(), 2, 100, params.group_of, 64, out);
    ASSERT_EQ(out.events.size(), 2u);
    EXPECT_EQ(out.events[1], (hw::SpikeEvent{11, 1, -100}));
    EXPECT_EQ(out.records_lost, 3u);
}

TEST(OutputImage, MalformedImagesAreClearErrors) {
    const HwParams params = two_shank_params(64);
    const auto error_of = [&](const ImageBuilder& image, std::size_t words, std::uint64_t plausible) {
        fpga::DecodedOutput out;
        try {
            fpga::decode_output(image.words.data(), words, image.capacity, plausible, params.group_of, 64, out);
        } catch (const InputError& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    ImageBuilder image(4);
    image.add(abi::kRecordEvent, 5, 1, -100);
    EXPECT_NE(error_of(image, image.words.size() - 1, 100).find("the kernel's output image holds"), std::string::npos);
    image.words[abi::kHeaderRecords] = 1000;
    EXPECT_NE(error_of(image, image.words.size(), 100).find("claims 1000 records for one run, more than 100"),
              std::string::npos);
    ImageBuilder wrong_kind(4);
    wrong_kind.add(7, 5, 1, -100);
    EXPECT_NE(error_of(wrong_kind, wrong_kind.words.size(), 100).find("has kind 7"), std::string::npos);
    ImageBuilder wrong_channel(4);
    wrong_channel.add(abi::kRecordEvent, 5, 64, -100);
    EXPECT_NE(error_of(wrong_channel, wrong_channel.words.size(), 100).find("names channel 64 of a stream of 64"),
              std::string::npos);
}

// The C-simulation path: the driver calls a KernelExecutor with the kernel's signature. Until the HLS kernel is
// linked here (kernels/, issue 18), an executor that records its arguments and answers with one event per run stands
// in for it: chunking, control bits, program, state pointer and decoding are the driver's, checked exactly.
// The host's driver (program, chunking, channel block, decoding) with the HLS kernels called in C simulation in place
// of a card: each compute unit (its own state buffer) computes exactly what the CPU backend computes on its block of
// channels, events and sorted spikes, whatever the chunk length.
TEST(KernelDriver, TheHlsKernelsThroughTheHostDriverEqualTheCpuBackendOnEachChannelBlock) {
    constexpr int channels = 64, block = 32;
    sim::SimulationConfig config;
    config.n_channels = channels;
    config.duration_s = 2.0;
    config.seed = 21;
    sim::Simulator simulator(config, probe::default_probe(channels));
    const std::size_t n_frames = simulator.info().n_frames;
    std::vector<std::int16_t> frames(n_frames * channels);
    for (std::size_t done = 0; done < n_frames;)
        done += simulator.read(&frames[done * channels], n_frames - done);
    const std::shared_ptr<const HwParams> params =
        make_detect_params(DetectSettings{}, probe::default_probe(block), 30000);
    const auto classifier = testing::random_classifier(block, 4);
    const auto executor = [](bool sorting) {
        return [sorting](const std::int16_t* in, std::uint32_t n, const std::uint32_t* program, std::uint32_t writes,
                         std::uint32_t* output, std::uint32_t max_records, std::uint32_t control, void* state) {
            (sorting ? spikeline_sort : spikeline_detect)(in, n, program, writes, output, max_records, control,
                                                          static_cast<std::uint32_t*>(state));
        };
    };
    for (int offset : {0, block}) {
        std::vector<std::int16_t> own(n_frames * block);
        for (std::size_t f = 0; f < n_frames; ++f)
            std::copy_n(&frames[f * channels + static_cast<std::size_t>(offset)], block, &own[f * block]);
        for (bool sorting : {false, true}) {
            SCOPED_TRACE("channels from " + std::to_string(offset) + (sorting ? ", sorting" : ", detection"));
            auto cpu = make_cpu_backend(*params, 1);
            if (sorting)
                cpu->enable_sorting(classifier, false);
            std::vector<SpikeEvent> expected;
            cpu->process(own.data(), n_frames, expected);
            cpu->finish(expected);
            SortOutput expected_sorted;
            cpu->take_sorted(expected_sorted);
            ASSERT_GT(expected.size(), 50u);
            for (std::size_t chunk : {std::size_t{30}, std::size_t{1000}}) {
                SCOPED_TRACE("chunk " + std::to_string(chunk));
                const std::uint32_t max_records = fpga::default_max_records(chunk);
                fpga::KernelDriver driver(std::make_unique<fpga::DirectRunEngine>(executor(sorting), chunk, block,
                                                                                  max_records,
                                                                                  std::size_t{abi::kStateWords} * 4),
                                          params, chunk, offset);
                if (sorting)
                    driver.program().set_sorting(classifier);
                for (std::size_t f = 0; f < n_frames; f += 700) // calls that do not end on chunk boundaries
                    driver.process(&frames[f * channels], std::min<std::size_t>(700, n_frames - f), channels);
                driver.finish();
                const fpga::DecodedOutput& out = driver.output();
                EXPECT_EQ(out.records_lost, 0u);
                ASSERT_EQ(out.events.size(), expected.size());
                for (std::size_t i = 0; i < expected.size(); ++i) {
                    SpikeEvent e = expected[i];
                    e.channel += offset;
                    ASSERT_EQ(out.events[i], e) << "event " << i;
                }
                if (!sorting)
                    continue;
                ASSERT_EQ(out.spikes.size(), expected_sorted.spikes.size());
                for (std::size_t i = 0; i < out.spikes.size(); ++i) {
                    ASSERT_EQ(out.spikes[i].unit, expected_sorted.spikes[i].unit) << "spike " << i;
                    ASSERT_EQ(out.spikes[i].template_id, expected_sorted.spikes[i].template_id) << "spike " << i;
                    for (int v = 0; v < HwSortConfig::n_values; ++v)
                        ASSERT_EQ(out.spikes[i].features[v], expected_sorted.spikes[i].features[v]) << "spike " << i;
                }
            }
        }
    }
}

// Builds the XRT backend for 64 channels on the given xclbin; returns the InputError's message ("" when it opened).
std::string backend_error(const std::filesystem::path& xclbin, double timeout_s = 10.0) {
    XrtOptions options;
    options.xclbin = xclbin;
    options.timeout_s = timeout_s;
    const HwParams params = two_shank_params(64);
    try {
        make_xrt_backend(params, 30000.0, options);
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

// The kernel's interface is checked from the xclbin alone, before any device is opened: these run with or without
// XRT's noop shim.
TEST_F(FpgaXclbinTest, XclbinWithoutTheKernelIsRejected) {
    auto description = spikeline_detect_description();
    description.kernel_name = "other_kernel";
    description.compute_units[0].name = "other_kernel_1";
    write_xclbin(dir_ / "other.xclbin", description);
    const std::string error = backend_error(dir_ / "other.xclbin");
    EXPECT_NE(error.find("holds no kernel named spikeline_rtl, spikeline_sort or spikeline_detect (it holds: "
                         "other_kernel)"),
              std::string::npos)
        << error;
    EXPECT_NE(error.find("make -C kernels xclbin"), std::string::npos) << error;
}

TEST_F(FpgaXclbinTest, KernelWhoseArgumentsDifferIsRejected) {
    struct Case {
        const char* what;
        void (*change)(XclbinDescription&);
        const char* expected;
    };
    const Case cases[] = {
        {"state missing",
         [](XclbinDescription& d) {
             d.args.pop_back();
             for (auto& cu : d.compute_units)
                 cu.arg_banks.pop_back();
         },
         "has no argument state (index 7)"},
        {"output renamed", [](XclbinDescription& d) { d.args[abi::kArgOutput].name = "events"; },
         "has argument 'events' at index 4 where 'output' belongs"},
        {"program a scalar",
         [](XclbinDescription& d) {
             auto& arg = d.args[abi::kArgProgram];
             arg.global = false;
             arg.port = "S_AXI_CONTROL";
         },
         "has argument program as a scalar, expected a pointer"},
        {"one argument too many",
         [](XclbinDescription& d) {
             d.args.push_back({"debug_level", "unsigned int", false, "S_AXI_CONTROL", 4, 0x5C, -1});
             for (auto& cu : d.compute_units)
                 cu.arg_banks.push_back(-1);
         },
         "has 9 arguments, expected 8"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        auto description = spikeline_detect_description();
        c.change(description);
        write_xclbin(dir_ / "changed.xclbin", description);
        const std::string error = backend_error(dir_ / "changed.xclbin");
        EXPECT_NE(error.find("the spikeline_detect kernel in " + (dir_ / "changed.xclbin").string()), std::string::npos)
            << error;
        EXPECT_NE(error.find(c.expected), std::string::npos) << error;
        EXPECT_NE(error.find("rebuild it from this version of kernels/"), std::string::npos) << error;
    }
}

// XRT reads wait(0 ms) as "wait for ever": a timeout that rounds to zero would hang instead of failing.
TEST_F(FpgaXclbinTest, TimeoutBelowOneMillisecondIsRefused) {
    const std::string error = backend_error(write_default(), 0.0);
    EXPECT_NE(error.find("timeout must be at least 1 ms"), std::string::npos) << error;
}

// Every state xrt::run::wait can return instead of COMPLETED, through the message the backend throws (a real timeout
// under the shim: FpgaXrtSetupTest.TimedOutRunResetsTheBackend).
TEST(XrtRunStates, UnfinishedRunsAreExplained) {
    for (const ert_cmd_state state : {ERT_CMD_STATE_TIMEOUT, ERT_CMD_STATE_RUNNING, ERT_CMD_STATE_QUEUED,
                                      ERT_CMD_STATE_SUBMITTED, ERT_CMD_STATE_NEW}) {
        const std::string message = unfinished_run_message("spikeline_detect", state, 0.25);
        EXPECT_NE(message.find("the spikeline_detect kernel did not finish within 0.25 s"), std::string::npos)
            << message;
        EXPECT_NE(message.find("xbutil reset"), std::string::npos) << message;
    }
    EXPECT_NE(unfinished_run_message("spikeline_detect", ERT_CMD_STATE_TIMEOUT, 10).find("(XRT state TIMEOUT)"),
              std::string::npos);
    for (const ert_cmd_state state : {ERT_CMD_STATE_ERROR, ERT_CMD_STATE_ABORT, ERT_CMD_STATE_NORESPONSE}) {
        const std::string message = unfinished_run_message("spikeline_detect", state, 10);
        EXPECT_NE(message.find("a run of the spikeline_detect kernel failed on the card"), std::string::npos)
            << message;
        EXPECT_EQ(message.find("did not finish"), std::string::npos) << message;
    }
}

// XRT picks its driver or emulation shim once per process, from XILINX_XRT and XCL_EMULATION_MODE. Each case below
// therefore runs in a fresh process: a "threadsafe" death test re-executes this binary for its statement, which
// changes the environment before anything touches XRT, reports the backend's and `spikeline devices`' errors on
// stderr and exits.
class FpgaXrtSetupTest : public ::testing::Test {
protected:
    void SetUp() override {
        const char* mode = std::getenv("XCL_EMULATION_MODE");
        if (!mode || std::string(mode) != "noop" || !std::getenv("XILINX_XRT"))
            GTEST_SKIP() << "needs XILINX_XRT naming a usable XRT folder (CTest sets it and XCL_EMULATION_MODE=noop)";
        GTEST_FLAG_SET(death_test_style, "threadsafe");
    }

    [[noreturn]] static void report_errors() {
        const auto xclbin =
            std::filesystem::temp_directory_path() / ("spikeline_xrt_setup_" + std::to_string(::getpid()) + ".xclbin");
        write_xclbin(xclbin, spikeline_detect_description());
        const std::string backend = backend_error(xclbin);
        std::filesystem::remove(xclbin);
        std::string devices;
        try {
            devices = std::to_string(list_xrt_devices().size()) + " listed";
        } catch (const InputError& e) {
            devices = e.what();
        }
        std::fprintf(stderr, "backend: %s\ndevices: %s\n", backend.c_str(), devices.c_str());
        std::exit(0);
    }
};

// A real timeout under the shim: with Runtime.noop_completion_delay_us every run completes 200 ms after its start,
// and the backend's runs (managed by XRT through their completion callback) honour a 50 ms wait. The backend aborts
// or waits out its runs in flight and throws; its next stream times out the same way (the shim still delays every
// run) without a hang or a crash, and a new backend on the same device with a longer timeout runs a whole stream.
TEST_F(FpgaXrtSetupTest, TimedOutRunResetsTheBackend) {
    EXPECT_EXIT(
        {
            xrt::ini::set("Runtime.noop_completion_delay_us", 200000u); // before XRT reads its configuration
            const auto xclbin = std::filesystem::temp_directory_path() /
                                ("spikeline_xrt_timeout_" + std::to_string(::getpid()) + ".xclbin");
            write_xclbin(xclbin, spikeline_sort_description());
            XrtOptions options;
            options.xclbin = xclbin;
            options.timeout_s = 0.05;
            const HwParams params = two_shank_params(64);
            const std::vector<std::int16_t> frames(100 * 64, 0);
            std::vector<SpikeEvent> events;
            auto backend = make_xrt_backend(params, 30000.0, options);
            for (int stream = 0; stream < 2; ++stream) {
                try {
                    backend->process(frames.data(), 100, events);
                    backend->finish(events);
                    std::fprintf(stderr, "stream %d: no timeout\n", stream);
                } catch (const InputError& e) {
                    std::fprintf(stderr, "stream %d: %s\n", stream, e.what());
                }
            }
            const auto stats = backend->compute_unit_stats();
            std::fprintf(stderr, "resets %llu, started %llu\n", static_cast<unsigned long long>(stats[0].resets),
                         static_cast<unsigned long long>(stats[0].runs_started));
            backend.reset();
            options.timeout_s = 5;
            auto patient = make_xrt_backend(params, 30000.0, options);
            patient->process(frames.data(), 100, events);
            patient->finish(events);
            const auto patient_stats = patient->compute_unit_stats();
            std::fprintf(stderr, "patient: %llu of %llu runs completed\n",
                         static_cast<unsigned long long>(patient_stats[0].runs_completed),
                         static_cast<unsigned long long>(patient_stats[0].runs_started));
            std::filesystem::remove(xclbin);
            std::exit(0);
        },
        ::testing::ExitedWithCode(0),
        "stream 0: the spikeline_sort .compute unit spikeline_sort_1. kernel did not finish within 0.05 s .XRT state "
        "TIMEOUT.*The backend reset .spikeline_sort:spikeline_sort_1: 2 run.s. in flight: .*next stream "
        "starts from a cleared engine.*\nstream 1: the spikeline_sort .compute unit spikeline_sort_1. kernel did not "
        "finish within 0.05 s.*resets 2, started 4\npatient: 4 of 4 runs completed");
}

TEST_F(FpgaXrtSetupTest, NoCardIsReportedAsSuch) {
    if (std::filesystem::exists("/sys/bus/pci/drivers/xocl"))
        GTEST_SKIP() << "the xocl driver is loaded: this machine may have a card";
    EXPECT_EXIT(
        {
            ::unsetenv("XCL_EMULATION_MODE"); // the real driver library, which finds no card here
            report_errors();
        },
        ::testing::ExitedWithCode(0),
        "backend: no FPGA card at XRT device index 0 .*Could not open device.*xbutil examine.*--backend cpu"
        ".*devices: 0 listed");
}

TEST_F(FpgaXrtSetupTest, XrtNotSetUpIsReportedAsSuch) {
    EXPECT_EXIT(
        {
            ::unsetenv("XILINX_XRT");
            report_errors();
        },
        ::testing::ExitedWithCode(0),
        "backend: XRT is not set up .*XILINX_XRT not set.*setup.sh.*devices: XRT is not set up .*XILINX_XRT not set");
}

TEST_F(FpgaXrtSetupTest, MissingEmulationShimIsReportedAsSuch) {
    EXPECT_EXIT(
        {
            ::setenv("XILINX_XRT", "/nonexistent/xrt", 1); // no lib/libxrt_noop.so.2 there
            report_errors();
        },
        ::testing::ExitedWithCode(0),
        "backend: XRT is not set up .*No such library.*libxrt_noop.*XILINX_XRT .'/nonexistent/xrt'. must be"
        ".*devices: XRT is not set up .*No such library");
}

} // namespace
} // namespace spikeline
