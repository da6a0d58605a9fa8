// The generated xclbin: its container parses back, and XRT's noop shim (XCL_EMULATION_MODE=noop, set by CTest)
// loads it, finds the kernel and its memory groups, allocates buffers and runs the kernel (which computes nothing).
// The XRT backend's errors: a wrong xclbin, no card, XRT not set up, a run that does not finish.
#include "fpga/devices.hpp"
#include "fpga/xclbin_writer.hpp"
#include "fpga/xrt_backend.hpp"
#include "io/recording.hpp"
#include "pipeline/sort_run.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "spikeline_detect.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"

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

using kernels::DetectArg;

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

TEST_F(FpgaXclbinTest, MetadataNamesTheKernelAndItsSevenArguments) {
    const auto bytes = read_bytes(write_default());
    const auto* xml_section = find_section(bytes, EMBEDDED_METADATA);
    ASSERT_NE(xml_section, nullptr);
    const std::string xml(bytes.data() + xml_section->m_sectionOffset, xml_section->m_sectionSize);
    EXPECT_NE(xml.find("<kernel name=\"spikeline_detect\""), std::string::npos);
    EXPECT_NE(xml.find("<instance name=\"spikeline_detect_1\">"), std::string::npos);
    // Vitis HLS register offsets, one argument per index of kernels/spikeline_detect.hpp.
    const std::pair<const char*, const char*> args[] = {
        {"name=\"frames\" addressQualifier=\"1\" id=\"0\"", "offset=\"0x10\""},
        {"name=\"n_frames\" addressQualifier=\"0\" id=\"1\"", "offset=\"0x1C\""},
        {"name=\"params\" addressQualifier=\"1\" id=\"2\"", "offset=\"0x24\""},
        {"name=\"events\" addressQualifier=\"1\" id=\"3\"", "offset=\"0x30\""},
        {"name=\"max_events\" addressQualifier=\"0\" id=\"4\"", "offset=\"0x3C\""},
        {"name=\"event_count\" addressQualifier=\"1\" id=\"5\"", "offset=\"0x44\""},
        {"name=\"control\" addressQualifier=\"0\" id=\"6\"", "offset=\"0x50\""},
    };
    std::size_t count = 0;
    for (std::size_t at = xml.find("<arg "); at != std::string::npos; at = xml.find("<arg ", at + 1))
        ++count;
    EXPECT_EQ(count, 7u);
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
        {kernels::kArgFrames, 0}, {kernels::kArgParams, 0}, {kernels::kArgEvents, 1}, {kernels::kArgEventCount, 1}};
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
    d.args[kernels::kArgEvents].bank = 7;
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
    // Groups are the mem_topology indices of CONNECTIVITY: inputs DDR[0], outputs DDR[1].
    EXPECT_EQ(kernel.group_id(kernels::kArgFrames), 0);
    EXPECT_EQ(kernel.group_id(kernels::kArgParams), 0);
    EXPECT_EQ(kernel.group_id(kernels::kArgEvents), 1);
    EXPECT_EQ(kernel.group_id(kernels::kArgEventCount), 1);
    EXPECT_EQ(kernel.offset(kernels::kArgFrames), 0x10u);
    EXPECT_EQ(kernel.offset(kernels::kArgControl), 0x50u);

    constexpr std::size_t kFrames = 64;
    constexpr std::size_t kChannels = 384;
    constexpr std::uint32_t kMaxEvents = 1024;
    xrt::bo frames(device, kFrames * kChannels * sizeof(std::int16_t), kernel.group_id(kernels::kArgFrames));
    xrt::bo params(device, sizeof(kernels::DetectParams), kernel.group_id(kernels::kArgParams));
    xrt::bo events(device, kMaxEvents * sizeof(hw::SpikeEvent), kernel.group_id(kernels::kArgEvents));
    xrt::bo count(device, sizeof(std::uint32_t), kernel.group_id(kernels::kArgEventCount));

    auto* samples = frames.map<std::int16_t*>();
    ASSERT_NE(samples, nullptr);
    for (std::size_t i = 0; i < kFrames * kChannels; ++i)
        samples[i] = static_cast<std::int16_t>(i % 100);
    frames.sync(XCL_BO_SYNC_BO_TO_DEVICE);
    kernels::DetectParams p;
    p.n_channels = static_cast<int>(kChannels);
    std::memcpy(params.map<void*>(), &p, sizeof p);
    params.sync(XCL_BO_SYNC_BO_TO_DEVICE);
    *count.map<std::uint32_t*>() = 0;
    count.sync(XCL_BO_SYNC_BO_TO_DEVICE);

    xrt::run run(kernel);
    run.set_arg(kernels::kArgFrames, frames);
    run.set_arg(kernels::kArgNFrames, static_cast<std::uint32_t>(kFrames));
    run.set_arg(kernels::kArgParams, params);
    run.set_arg(kernels::kArgEvents, events);
    run.set_arg(kernels::kArgMaxEvents, kMaxEvents);
    run.set_arg(kernels::kArgEventCount, count);
    run.set_arg(kernels::kArgControl, kernels::kControlReset | kernels::kControlFlush);
    run.start();
    EXPECT_EQ(run.wait(std::chrono::seconds(10)), ERT_CMD_STATE_COMPLETED);

    // The shim computes nothing; the read-back path must still work.
    count.sync(XCL_BO_SYNC_BO_FROM_DEVICE);
    events.sync(XCL_BO_SYNC_BO_FROM_DEVICE);
    EXPECT_EQ(*count.map<std::uint32_t*>(), 0u);
}

TEST_F(FpgaNoopXrtTest, UnknownKernelNameIsRejected) {
    const auto path = write_default();
    xrt::device device(0);
    const auto uuid = device.load_xclbin(path.string());
    EXPECT_ANY_THROW(xrt::kernel(device, uuid, "no_such_kernel"));
}

// The XRT backend's whole path (buffer sets, chunked runs, flush, read-back) against the shim: no events come back
// because nothing is computed, but every run must complete.
TEST_F(FpgaNoopXrtTest, XrtBackendRunsChunksThroughTheShim) {
    XrtOptions options;
    options.xclbin = write_default();
    options.chunk_ms = 1.0;
    options.buffer_sets = 3;
    HwParams params;
    params.n_channels = 64;
    auto backend = make_xrt_backend(params, 30000.0, options);
    const std::vector<std::int16_t> frames(100 * 64, 0); // 3.3 chunks of 30 frames
    std::vector<SpikeEvent> events;
    backend->process(frames.data(), 100, events);
    backend->finish(events);
    EXPECT_TRUE(events.empty());
    EXPECT_EQ(backend->lost_events(), 0u);
}

// The same with the spikeline_sort kernel: the classifier is uploaded before the first run and swapped mid-stream.
TEST_F(FpgaNoopXrtTest, XrtSortBackendRunsChunksThroughTheShim) {
    XrtOptions options;
    options.xclbin = dir_ / "spikeline_sort.xclbin";
    write_xclbin(options.xclbin, spikeline_sort_description());
    options.sorting = true;
    options.buffer_sets = 2;
    HwParams params;
    params.n_channels = 64;
    auto classifier = std::make_shared<HwSortParams>();
    classifier->n_channels = 64;
    const std::vector<std::int16_t> frames(100 * 64, 0);
    std::vector<SpikeEvent> events;
    {
        auto backend = make_xrt_backend(params, 30000.0, options);
        EXPECT_THROW(backend->process(frames.data(), 100, events), InputError) << "no classifier uploaded yet";
    }
    auto backend = make_xrt_backend(params, 30000.0, options);
    EXPECT_THROW(backend->enable_sorting(classifier, true), InputError) << "the card returns no snippets";
    backend->enable_sorting(classifier, false);
    backend->process(frames.data(), 100, events);
    backend->enable_sorting(classifier, false); // recalibration: the next run reloads the classifier
    backend->process(frames.data(), 100, events);
    // Unit updates ride with the next run as a buffer of their own.
    EXPECT_THROW(backend->queue_table_writes({{150, 1, -1, 0, {}}}), std::logic_error) << "before the frames processed";
    backend->queue_table_writes({{200, 1, 0, 1, {}}, {250, 2, -1, 0, {}}});
    backend->process(frames.data(), 100, events);
    backend->finish(events);
    SortOutput sorted;
    backend->take_sorted(sorted);
    EXPECT_TRUE(events.empty());
    EXPECT_TRUE(sorted.spikes.empty());
    EXPECT_EQ(backend->lost_events(), 0u);
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

TEST_F(FpgaNoopXrtTest, DetectionBackendRefusesSortingAndSortingNeedsTheSortKernel) {
    XrtOptions options;
    options.xclbin = write_default();
    HwParams params;
    params.n_channels = 64;
    auto detect_only = make_xrt_backend(params, 30000.0, options);
    EXPECT_THROW(detect_only->enable_sorting(std::make_shared<HwSortParams>(), false), InputError);
    options.sorting = true;
    try {
        make_xrt_backend(params, 30000.0, options);
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("holds no kernel named spikeline_sort"), std::string::npos) << e.what();
    }
}

// Builds the XRT backend for 64 channels on the given xclbin; returns the InputError's message ("" when it opened).
std::string backend_error(const std::filesystem::path& xclbin, double timeout_s = 10.0) {
    XrtOptions options;
    options.xclbin = xclbin;
    options.timeout_s = timeout_s;
    HwParams params;
    params.n_channels = 64;
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
    description.instance_name = "other_kernel_1";
    write_xclbin(dir_ / "other.xclbin", description);
    const std::string error = backend_error(dir_ / "other.xclbin");
    EXPECT_NE(error.find("holds no kernel named spikeline_detect (it holds: other_kernel)"), std::string::npos)
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
        {"control missing", [](XclbinDescription& d) { d.args.pop_back(); }, "has no argument control (index 6)"},
        {"events renamed", [](XclbinDescription& d) { d.args[kernels::kArgEvents].name = "spikes"; },
         "has argument 'spikes' at index 3 where 'events' belongs"},
        {"event_count a scalar",
         [](XclbinDescription& d) {
             auto& arg = d.args[kernels::kArgEventCount];
             arg.global = false;
             arg.port = "S_AXI_CONTROL";
             arg.bank = -1;
         },
         "has argument event_count as a scalar, expected a pointer"},
        {"one argument too many",
         [](XclbinDescription& d) {
             d.args.push_back({"debug_level", "unsigned int", false, "S_AXI_CONTROL", 4, 0x58, -1});
         },
         "has 8 arguments, expected 7"},
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

// The timeout branch of the backend cannot be reached under the noop shim: XRT 2.13's noop shim completes a run when
// it is started, and with Runtime.noop_completion_delay_us set its exec_wait spins until the run completes whatever
// the timeout (tried: a 50 ms wait on a run delayed by 300 ms returned COMPLETED after 300 ms). So the states
// xrt::run::wait can return instead of COMPLETED are checked here, through the message the backend throws.
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
