// Chunks of chunk_ms frames rotate through buffer_sets sets of device buffers per compute unit: while the kernel runs
// on chunk k, the host fills chunk k+1 and decodes the output of chunk k-1, so transfers overlap compute. One transfer
// each way per chunk: frames (and the program when it has writes) to the card, the output image (header and records)
// back.
#include "fpga/xrt_backend.hpp"

#include "fpga/devices.hpp"
#include "fpga/kernel_driver.hpp"
#include "spikeline/hw/kernel_abi.hpp"
#include "util/errors.hpp"

#include <experimental/xrt_xclbin.h>
#include <xclbin.h>
#include <xrt/xrt_bo.h>
#include <xrt/xrt_device.h>
#include <xrt/xrt_kernel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <vector>

namespace spikeline {
namespace {

namespace abi = hw::abi;

/// The kernels the backend drives, in the order it prefers them; all take kernel_abi.hpp's arguments.
struct KnownKernel {
    const char* name;
    bool sorts;
};
constexpr KnownKernel kKernels[] = {{"spikeline_rtl", true}, {"spikeline_sort", true}, {"spikeline_detect", false}};

bool kernel_sorts(const std::string& name) {
    return name != "spikeline_detect";
}

const char* state_name(ert_cmd_state state) {
    switch (state) {
    case ERT_CMD_STATE_NEW:
        return "NEW";
    case ERT_CMD_STATE_QUEUED:
        return "QUEUED";
    case ERT_CMD_STATE_RUNNING:
        return "RUNNING";
    case ERT_CMD_STATE_COMPLETED:
        return "COMPLETED";
    case ERT_CMD_STATE_ERROR:
        return "ERROR";
    case ERT_CMD_STATE_ABORT:
        return "ABORT";
    case ERT_CMD_STATE_SUBMITTED:
        return "SUBMITTED";
    case ERT_CMD_STATE_TIMEOUT:
        return "TIMEOUT";
    case ERT_CMD_STATE_NORESPONSE:
        return "NORESPONSE";
    default:
        return "unknown";
    }
}

// XRT crashes on some malformed files, so the container is checked first: magic, total length, section bounds.
void check_xclbin_container(const std::filesystem::path& path) {
    const std::string name = path.string();
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    require(bytes.size() >= sizeof(axlf) && std::memcmp(bytes.data(), "xclbin2", 8) == 0,
            name + " is not an xclbin (no 'xclbin2' header): build it with 'make -C kernels xclbin PLATFORM=...'");
    axlf header;
    std::memcpy(&header, bytes.data(), sizeof header);
    require(header.m_header.m_length == bytes.size(), name + " is truncated or padded: its header says " +
                                                          std::to_string(header.m_header.m_length) +
                                                          " bytes, the file has " + std::to_string(bytes.size()));
    const std::uint64_t sections = header.m_header.m_numSections;
    require(sections >= 1 && sizeof(axlf) + (sections - 1) * sizeof(axlf_section_header) <= bytes.size(),
            name + " has an invalid section table");
    for (std::uint64_t i = 0; i < sections; ++i) {
        axlf_section_header section;
        std::memcpy(&section, bytes.data() + offsetof(axlf, m_sections) + i * sizeof(axlf_section_header),
                    sizeof section);
        require(section.m_sectionOffset + section.m_sectionSize <= bytes.size(),
                name + ": section " + std::to_string(i) + " lies outside the file");
    }
}

const std::string kRebuild = ": rebuild it from this version of kernels/ with 'make -C kernels xclbin PLATFORM=...'";

// The kernel named by options.kernel, or the one known kernel the xclbin holds that fits the stream.
std::string choose_kernel(const xrt::xclbin& xclbin, const std::string& file, const XrtOptions& options) {
    std::string found;
    std::vector<std::string> usable;
    for (const auto& kernel : xclbin.get_kernels()) {
        const std::string name = kernel.get_name();
        found += (found.empty() ? "" : ", ") + name;
        for (const KnownKernel& known : kKernels)
            if (name == known.name && (known.sorts || !options.sorting))
                usable.push_back(name);
    }
    const std::string holds = " (it holds: " + (found.empty() ? std::string("none") : found) + ")";
    if (!options.kernel.empty()) {
        require(std::any_of(std::begin(kKernels), std::end(kKernels),
                            [&](const KnownKernel& k) { return options.kernel == k.name; }),
                "--kernel " + options.kernel +
                    " is not one of spikeline's kernels: spikeline_rtl, spikeline_sort or "
                    "spikeline_detect");
        require(static_cast<bool>(xclbin.get_kernel(options.kernel)),
                file + " holds no kernel named " + options.kernel + holds + kRebuild);
        require(!options.sorting || kernel_sorts(options.kernel),
                "the " + options.kernel +
                    " kernel does not sort: choose spikeline_rtl or spikeline_sort with --kernel");
        return options.kernel;
    }
    const std::string wanted =
        options.sorting ? "spikeline_rtl or spikeline_sort" : "spikeline_rtl, spikeline_sort or spikeline_detect";
    if (usable.empty())
        throw InputError(file + " holds no kernel named " + wanted + holds + kRebuild);
    if (usable.size() > 1)
        throw InputError(file + " holds several kernels that fit" + holds + ": choose one with --kernel NAME");
    return usable.front();
}

// v++ names the arguments after the C parameters of the kernel tops in kernels/ (kernel.xml for the RTL kernel). An
// xclbin built from another version of the kernel would take the arguments set by index in the wrong registers, so
// names and kinds are compared with kernel_abi.hpp first; this needs no device, so a wrong file is reported as such
// even where no card is present.
void check_kernel_interface(const xrt::xclbin& xclbin, const std::string& file, const std::string& kernel_name) {
    const xrt::xclbin::kernel kernel = xclbin.get_kernel(kernel_name);
    std::vector<xrt::xclbin::arg> by_index(abi::kArgCount);
    for (const auto& arg : kernel.get_args())
        if (arg.get_index() < by_index.size())
            by_index[arg.get_index()] = arg;
    const std::string where = "the " + kernel_name + " kernel in " + file;
    for (std::size_t i = 0; i < by_index.size(); ++i) {
        const abi::ArgInfo& expected = abi::kArgs[i];
        require(static_cast<bool>(by_index[i]),
                where + " has no argument " + expected.name + " (index " + std::to_string(i) + ")" + kRebuild);
        const std::string name = by_index[i].get_name();
        require(name == expected.name, where + " has argument '" + name + "' at index " + std::to_string(i) +
                                           " where '" + expected.name + "' belongs" + kRebuild);
        // m_axi arguments sit on an AXI master port (M_AXI_<bundle>), scalars in the s_axilite register map.
        const bool pointer = by_index[i].get_port().rfind("M_AXI", 0) == 0;
        require(pointer == expected.pointer, where + " has argument " + name + " as a " +
                                                 (pointer ? "pointer" : "scalar") + ", expected a " +
                                                 (expected.pointer ? "pointer" : "scalar") + kRebuild);
    }
    require(kernel.get_num_args() == by_index.size(), where + " has " + std::to_string(kernel.get_num_args()) +
                                                          " arguments, expected " + std::to_string(by_index.size()) +
                                                          kRebuild);
}

/// One set of device buffers and the run that uses them.
struct BufferSet {
    xrt::bo frames;
    xrt::bo program;
    std::size_t program_writes = 0; ///< capacity
    xrt::bo output;
    xrt::run run;
    bool started = false; ///< started and not yet waited for
};

/// The compute unit's runs through XRT: buffer sets, one state buffer, a completion count.
class XrtRunEngine final : public fpga::RunEngine {
public:
    XrtRunEngine(const xrt::device& device, const xrt::kernel& kernel, std::string cu_name, std::size_t sets,
                 std::size_t frame_bytes, std::uint32_t max_records, std::size_t state_bytes, double timeout_s)
        : device_(device), kernel_(kernel), cu_name_(std::move(cu_name)), frame_bytes_(frame_bytes),
          max_records_(max_records), timeout_s_(timeout_s) {
        // The state never leaves the card: no host copy.
        state_ = xrt::bo(device_, state_bytes, xrt::bo::flags::device_only, kernel_.group_id(abi::kArgState));
        for (std::size_t s = 0; s < sets; ++s)
            sets_.push_back(make_set());
    }

    std::size_t slots() const override { return sets_.size(); }
    std::int16_t* frames(std::size_t slot) override { return sets_[slot].frames.map<std::int16_t*>(); }

    std::uint32_t* program(std::size_t slot, std::size_t writes) override {
        BufferSet& set = sets_[slot];
        if (writes > set.program_writes) { // a classifier upload: the buffer grows once
            set.program_writes = std::max(writes, 2 * set.program_writes);
            set.program =
                xrt::bo(device_, set.program_writes * 2 * sizeof(std::uint32_t), kernel_.group_id(abi::kArgProgram));
        }
        return set.program.map<std::uint32_t*>();
    }

    void start(std::size_t slot, const fpga::RunArgs& args) override {
        BufferSet& set = sets_[slot];
        set.frames.sync(XCL_BO_SYNC_BO_TO_DEVICE, args.n_frames * frame_bytes_, 0);
        if (args.n_program_writes > 0)
            set.program.sync(XCL_BO_SYNC_BO_TO_DEVICE, args.n_program_writes * 2 * sizeof(std::uint32_t), 0);
        set.run.set_arg(abi::kArgFrames, set.frames);
        set.run.set_arg(abi::kArgNFrames, args.n_frames);
        set.run.set_arg(abi::kArgProgram, set.program);
        set.run.set_arg(abi::kArgNProgramWrites, args.n_program_writes);
        set.run.set_arg(abi::kArgOutput, set.output);
        set.run.set_arg(abi::kArgMaxRecords, max_records_);
        set.run.set_arg(abi::kArgControl, args.control);
        set.run.set_arg(abi::kArgState, state_);
        // The header is cleared in host memory only (no transfer): a run that writes nothing, as under XRT's noop
        // shim, reads back as an empty image; on a card the read-back replaces it with what the kernel wrote.
        std::fill_n(set.output.map<std::uint32_t*>(), abi::kOutputHeaderWords, 0u);
        set.run.start();
        set.started = true;
    }

    bool finished(std::size_t slot) override { return sets_[slot].run.state() == ERT_CMD_STATE_COMPLETED; }

    const std::uint32_t* wait(std::size_t slot) override {
        BufferSet& set = sets_[slot];
        const ert_cmd_state state = set.run.wait(timeout());
        if (state != ERT_CMD_STATE_COMPLETED)
            throw fpga::RunNotFinished(unfinished_run_message(display_name(), state, timeout_s_));
        set.started = false;
        set.output.sync(XCL_BO_SYNC_BO_FROM_DEVICE);
        return set.output.map<const std::uint32_t*>();
    }

    // Runs still in flight (after an error other than a timeout) are waited out before their buffers go.
    ~XrtRunEngine() override {
        for (BufferSet& set : sets_) {
            try {
                if (set.started)
                    set.run.wait(timeout());
            } catch (const std::exception&) {
                // nothing more can be done for a run that cannot be waited for
            }
        }
    }

    std::size_t output_words() const override {
        return abi::kOutputHeaderWords + static_cast<std::size_t>(max_records_) * abi::kRecordWords;
    }
    std::uint32_t max_records() const override { return max_records_; }

    // A run is aborted, then given the timeout once more; one that still has not finished keeps its buffers (the
    // card may yet write them) in retired_, and its set gets new ones.
    std::string reset(const std::vector<std::size_t>& in_flight) override {
        int finished_late = 0;
        int aborted = 0;
        int abandoned = 0;
        for (const std::size_t slot : in_flight) {
            BufferSet& set = sets_[slot];
            set.started = false;
            if (set.run.state() == ERT_CMD_STATE_COMPLETED) {
                ++finished_late;
                continue;
            }
            try {
                set.run.abort();
            } catch (const std::exception&) {
                // not every platform aborts: the wait below decides
            }
            const ert_cmd_state state = set.run.wait(timeout());
            if (state == ERT_CMD_STATE_COMPLETED || state == ERT_CMD_STATE_ABORT || state == ERT_CMD_STATE_ERROR) {
                ++aborted;
            } else {
                ++abandoned;
                retired_.push_back(std::move(set));
                set = make_set();
            }
        }
        ++resets_;
        return std::to_string(in_flight.size()) + " run(s) in flight: " + std::to_string(aborted) + " aborted, " +
               std::to_string(finished_late) + " finished meanwhile, " + std::to_string(abandoned) +
               " abandoned with their buffers";
    }

    std::uint64_t resets() const { return resets_; }
    const xrt::kernel& kernel() const { return kernel_; }
    const void* state_identity() const { return state_.address() == 0 ? nullptr : &state_; }

private:
    // "spikeline_sort (compute unit spikeline_sort_2)"
    std::string display_name() const {
        const auto colon = cu_name_.find(':');
        return cu_name_.substr(0, colon) + " (compute unit " + cu_name_.substr(colon + 1) + ")";
    }

    std::chrono::milliseconds timeout() const {
        return std::chrono::milliseconds(static_cast<long>(std::ceil(timeout_s_ * 1000)));
    }

    BufferSet make_set() {
        BufferSet set{xrt::bo(device_, std::max<std::size_t>(frame_bytes_, 1), kernel_.group_id(abi::kArgFrames)),
                      xrt::bo(device_, 2 * sizeof(std::uint32_t), kernel_.group_id(abi::kArgProgram)), 1,
                      xrt::bo(device_, output_words() * sizeof(std::uint32_t), kernel_.group_id(abi::kArgOutput)),
                      xrt::run(kernel_)};
        // Registered for its effect on waiting: a run with a completion callback is managed by XRT's monitor thread,
        // so wait(timeout) returns ERT_CMD_STATE_TIMEOUT on time whatever the driver's own wait does (under the noop
        // shim that one blocks until the run completes). The callback itself has nothing to do.
        set.run.add_callback(
            ERT_CMD_STATE_COMPLETED, [](const void*, ert_cmd_state, void*) {}, nullptr);
        return set;
    }

    xrt::device device_;
    xrt::kernel kernel_;
    std::string cu_name_;
    std::size_t frame_bytes_;
    std::uint32_t max_records_;
    double timeout_s_;
    xrt::bo state_;
    std::vector<BufferSet> sets_;
    std::vector<BufferSet> retired_;
    std::uint64_t resets_ = 0;
};

// The parameters of channels [first, first + n) as a stream of their own.
std::shared_ptr<const HwParams> block_params(const HwParams& params, int first, int n) {
    auto block = std::make_shared<HwParams>(params);
    block->n_channels = n;
    for (int ch = 0; ch < HwConfig::max_channels; ++ch) {
        const int from = ch + first;
        const bool inside = ch < n;
        block->group_of[ch] = inside ? params.group_of[from] : std::int16_t{0};
        for (int k = 0; k < HwConfig::max_neighbours; ++k) {
            const std::int16_t entry = inside ? params.neighbours[from][k] : std::int16_t{-1};
            block->neighbours[ch][k] = entry < 0
                                           ? std::int16_t{-1}
                                           : static_cast<std::int16_t>(((entry & (hw::kFarNeighbour - 1)) - first) |
                                                                       (entry & hw::kFarNeighbour));
        }
    }
    return block;
}

/// One compute unit and the channels it processes.
struct Lane {
    std::string name;
    int first_channel;
    XrtRunEngine* engine; ///< owned by driver
    std::unique_ptr<fpga::KernelDriver> driver;
    std::uint64_t carried_dropped = 0;    ///< dropped counts of the streams that ended
    std::uint64_t carried_candidates = 0; ///< artefact candidates of the streams that ended
    std::vector<int> groups;
};

class XrtBackendImpl final : public XrtBackend {
public:
    XrtBackendImpl(const HwParams& params, double sample_rate, const XrtOptions& options)
        : n_channels_(params.n_channels), options_(options) {
        require(options.buffer_sets >= 1 && options.buffer_sets <= 8, "--buffers must be between 1 and 8");
        require(options.chunk_ms > 0, "--chunk-ms must be positive");
        require(options.compute_units >= 0 && options.compute_units <= 16, "--compute-units must be between 0 and 16");
        require(options.max_events_per_chunk >= 0, "the records per chunk must not be negative");
        // XRT reads a zero timeout as "wait for ever", so anything below its 1 ms resolution is refused.
        require(options.timeout_s >= 0.001, "the kernel run timeout must be at least 1 ms");
        require(std::filesystem::is_regular_file(options.xclbin),
                "xclbin " + options.xclbin.string() +
                    " not found: build it with 'make -C kernels xclbin PLATFORM=...' and pass --xclbin FILE");
        const std::string file = options.xclbin.string();
        check_xclbin_container(options.xclbin);
        xrt::xclbin xclbin;
        try {
            xclbin = xrt::xclbin(file);
        } catch (const std::exception& e) {
            throw InputError("cannot read " + file + " as an xclbin: " + e.what());
        }
        kernel_name_ = choose_kernel(xclbin, file, options);
        check_kernel_interface(xclbin, file, kernel_name_);
        std::vector<std::string> cus;
        for (const auto& cu : xclbin.get_kernel(kernel_name_).get_cus())
            cus.push_back(cu.get_name());
        std::sort(cus.begin(), cus.end());
        require(!cus.empty(), file + ": the " + kernel_name_ + " kernel has no compute unit" + kRebuild);
        const int n_units = options.compute_units == 0 ? static_cast<int>(cus.size()) : options.compute_units;
        require(n_units <= static_cast<int>(cus.size()),
                "--compute-units " + std::to_string(n_units) + ": " + file + " has " + std::to_string(cus.size()) +
                    " compute unit(s) of " + kernel_name_ + " (link more with v++ --connectivity.nk)");
        const std::vector<int> firsts = split_channels(params, n_units);
        try {
            device_ = xrt::device(options.device_index);
        } catch (const std::exception& e) {
            throw xrt_device_error(e, options.device_index);
        }
        chunk_frames_ = static_cast<std::size_t>(std::max(1.0, std::round(options.chunk_ms * sample_rate / 1000.0)));
        const auto max_records = static_cast<std::uint32_t>(
            options.max_events_per_chunk > 0 ? static_cast<std::uint64_t>(options.max_events_per_chunk)
                                             : fpga::default_max_records(chunk_frames_));
        try {
            const auto uuid = device_.load_xclbin(xclbin);
            for (int u = 0; u < n_units; ++u) {
                const int first = firsts[static_cast<std::size_t>(u)];
                const int last = u + 1 < n_units ? firsts[static_cast<std::size_t>(u) + 1] : n_channels_;
                const std::string& cu = cus[static_cast<std::size_t>(u)];
                // "kernel:{instance}" opens this compute unit alone
                xrt::kernel kernel(device_, uuid, kernel_name_ + ":{" + cu.substr(cu.find(':') + 1) + "}");
                auto engine = std::make_unique<XrtRunEngine>(
                    device_, kernel, cu, static_cast<std::size_t>(options.buffer_sets),
                    chunk_frames_ * static_cast<std::size_t>(last - first) * sizeof(std::int16_t), max_records,
                    options.state_bytes, options.timeout_s);
                Lane lane{cu, first, engine.get(), nullptr, 0, 0, {}};
                for (const int arg : {abi::kArgFrames, abi::kArgProgram, abi::kArgOutput, abi::kArgState})
                    lane.groups.push_back(kernel.group_id(arg));
                lane.driver = std::make_unique<fpga::KernelDriver>(
                    std::move(engine), block_params(params, first, last - first), chunk_frames_, first);
                lanes_.push_back(std::move(lane));
            }
        } catch (const InputError&) {
            throw;
        } catch (const std::exception& e) {
            throw InputError("cannot use " + file + ": " + e.what() +
                             " (it must be built from kernels/ for this card's platform and contain the kernel " +
                             kernel_name_ + " with " + std::to_string(n_units) + " compute unit(s))");
        }
    }

    std::string name() const override { return "xrt"; }
    std::string kernel_name() const override { return kernel_name_; }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        frames_in_ += n_frames;
        guarded([&] {
            for (Lane& lane : lanes_)
                lane.driver->process(frames, n_frames, n_channels_);
        });
        hand_out(events);
    }

    void finish(std::vector<SpikeEvent>& events) override {
        guarded([&] {
            for (Lane& lane : lanes_)
                lane.driver->finish();
        });
        hand_out(events);
        end_stream();
    }

    std::uint64_t lost_events() const override {
        std::uint64_t lost = 0;
        for (const Lane& lane : lanes_) {
            const auto& out = lane.driver->output();
            lost += lane.carried_dropped + out.records_lost + out.last.dropped_events + out.last.dropped_sort;
        }
        return lost;
    }

    void take_artifacts(std::vector<hw::ArtifactEvent>& out) override {
        out.insert(out.end(), artifacts_.begin(), artifacts_.end());
        artifacts_.clear();
    }

    std::uint64_t artifact_candidates() const override {
        std::uint64_t total = 0;
        for (const Lane& lane : lanes_)
            total += lane.carried_candidates + lane.driver->output().last.artifact_candidates;
        return total;
    }

    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) override {
        require(kernel_sorts(kernel_name_), "the " + kernel_name_ +
                                                " kernel does not sort: sorting needs spikeline_rtl or spikeline_sort "
                                                "(spikeline sort selects one)");
        require(!keep_snippets, "the xrt backend returns no snippets: calibrate on the CPU backend");
        require(lanes_.size() == 1, "sorting runs on one compute unit (--compute-units 1): the classifier's snippet "
                                    "channels may cross the blocks of several");
        lanes_.front().driver->program().set_sorting(std::move(params));
    }

    // Writes ride with the next run; the kernel queues them and applies each before the first spike of its sample.
    void queue_table_writes(const std::vector<hw::TableWrite>& writes) override {
        require(!lanes_.empty() && lanes_.front().driver->program().sorting(),
                "table writes need the sorting stage (enable_sorting first)");
        check_table_writes(writes, n_channels_, frames_in_, last_write_sample_);
        if (!writes.empty())
            last_write_sample_ = writes.back().sample;
        lanes_.front().driver->program().queue_table_writes(writes);
    }

    void take_sorted(SortOutput& out) override {
        out.spikes.insert(out.spikes.end(), sorted_.begin(), sorted_.end());
        sorted_.clear();
    }

    std::vector<XrtComputeUnitStats> compute_unit_stats() const override {
        std::vector<XrtComputeUnitStats> stats;
        for (const Lane& lane : lanes_) {
            const auto& out = lane.driver->output();
            XrtComputeUnitStats s;
            s.name = lane.name;
            s.first_channel = lane.first_channel;
            s.n_channels = lane.driver->program().params().n_channels;
            s.runs_started = lane.driver->runs_started();
            s.runs_completed = lane.driver->runs_collected();
            s.program_writes = lane.driver->program_writes_sent();
            s.records_lost = out.records_lost;
            s.dropped_events = out.last.dropped_events;
            s.dropped_sort = out.last.dropped_sort;
            s.dropped_writes = out.last.dropped_writes;
            s.memory_groups = lane.groups;
            s.state_buffer = lane.engine->state_identity();
            s.resets = lane.engine->resets();
            stats.push_back(std::move(s));
        }
        return stats;
    }

private:
    // A run that did not finish ends the stream on every compute unit: each aborts or waits out what it has in
    // flight and drops its staged frames; the next process() begins a new stream.
    template <class F> void guarded(F&& work) {
        try {
            work();
        } catch (const fpga::RunNotFinished& e) {
            reset_after(e.what());
        } catch (const InputError& e) { // a corrupt output image: the stream cannot go on either
            reset_after(e.what());
        }
    }

    [[noreturn]] void reset_after(const std::string& what) {
        std::string done;
        for (Lane& lane : lanes_)
            done += (done.empty() ? "" : "; ") + lane.name + ": " + lane.driver->restart();
        end_stream();
        for (Lane& lane : lanes_)
            lane.driver->output() = {};
        throw InputError(what + ". The backend reset (" + done +
                         "); this stream's remaining output is lost and the next stream starts from a cleared engine. "
                         "If it happens again, check the card with 'xbutil examine' and reset it with 'xbutil reset'");
    }

    void hand_out(std::vector<SpikeEvent>& events) {
        const std::size_t first = events.size();
        for (Lane& lane : lanes_) {
            auto& out = lane.driver->output();
            events.insert(events.end(), out.events.begin(), out.events.end());
            sorted_.insert(sorted_.end(), out.spikes.begin(), out.spikes.end());
            artifacts_.insert(artifacts_.end(), out.artifacts.begin(), out.artifacts.end());
            out.events.clear();
            out.spikes.clear();
            out.artifacts.clear();
        }
        // several compute units: their events interleave in sample order
        if (lanes_.size() > 1) {
            const auto by_sample = [](const SpikeEvent& a, const SpikeEvent& b) { return a.sample < b.sample; };
            std::stable_sort(events.begin() + static_cast<std::ptrdiff_t>(first), events.end(), by_sample);
            std::stable_sort(
                artifacts_.begin(), artifacts_.end(),
                [](const hw::ArtifactEvent& a, const hw::ArtifactEvent& b) { return a.sample < b.sample; });
        }
    }

    // The stream's counters are kept; the next stream's headers count from zero.
    void end_stream() {
        for (Lane& lane : lanes_) {
            auto& out = lane.driver->output();
            lane.carried_dropped += out.records_lost + out.last.dropped_events + out.last.dropped_sort;
            lane.carried_candidates += out.last.artifact_candidates;
            out.records_lost = 0;
            out.last = {};
        }
        frames_in_ = 0;
        last_write_sample_ = 0;
    }

    int n_channels_;
    XrtOptions options_;
    std::string kernel_name_;
    xrt::device device_;
    std::size_t chunk_frames_ = 0;
    std::vector<Lane> lanes_;
    std::vector<hw::SortedSpike> sorted_;
    std::vector<hw::ArtifactEvent> artifacts_;
    std::uint64_t frames_in_ = 0;
    std::uint64_t last_write_sample_ = 0;
};

} // namespace

std::vector<int> split_channels(const HwParams& params, int parts) {
    const int n = params.n_channels;
    require(parts >= 1 && parts <= n,
            "cannot split " + std::to_string(n) + " channels into " + std::to_string(parts) + " compute units");
    // cut[p]: channels < p and >= p share no reference group and no neighbour
    std::vector<int> crossing(static_cast<std::size_t>(n) + 1, 0);
    const auto span = [&crossing](int a, int b) {
        if (a > b)
            std::swap(a, b);
        ++crossing[static_cast<std::size_t>(a) + 1];
        --crossing[static_cast<std::size_t>(b) + 1];
    };
    std::vector<int> group_first(HwConfig::max_groups, -1);
    for (int ch = 0; ch < n; ++ch) {
        const int group = params.group_of[ch];
        if (group >= 0) {
            if (group_first[static_cast<std::size_t>(group)] >= 0)
                span(group_first[static_cast<std::size_t>(group)], ch);
            else
                group_first[static_cast<std::size_t>(group)] = ch;
        }
        for (int k = 0; k < HwConfig::max_neighbours; ++k)
            if (params.neighbours[ch][k] >= 0)
                span(ch, params.neighbours[ch][k] & (hw::kFarNeighbour - 1));
    }
    std::vector<int> valid;
    int open = 0;
    for (int p = 1; p < n; ++p) {
        open += crossing[static_cast<std::size_t>(p)];
        if (open == 0)
            valid.push_back(p);
    }
    std::vector<int> firsts = {0};
    for (int k = 1; k < parts; ++k) {
        const double target = static_cast<double>(n) * k / parts;
        int best = -1;
        for (const int p : valid)
            if (p > firsts.back() && (best < 0 || std::abs(p - target) < std::abs(best - target)))
                best = p;
        require(best > 0, "cannot split the " + std::to_string(n) + " channels over " + std::to_string(parts) +
                              " compute units: each needs whole shanks (reference groups and their de-duplication "
                              "neighbours), and the probe has fewer separable blocks; use fewer --compute-units");
        firsts.push_back(best);
    }
    return firsts;
}

std::string unfinished_run_message(const std::string& kernel_name, ert_cmd_state state, double timeout_s) {
    char timeout[32];
    std::snprintf(timeout, sizeof timeout, "%g", timeout_s);
    const std::string said = std::string(" (XRT state ") + state_name(state) + ")";
    switch (state) {
    case ERT_CMD_STATE_NEW:
    case ERT_CMD_STATE_QUEUED:
    case ERT_CMD_STATE_SUBMITTED:
    case ERT_CMD_STATE_RUNNING:
    case ERT_CMD_STATE_TIMEOUT:
        return "the " + kernel_name + " kernel did not finish within " + timeout + " s" + said +
               ": the card may be hung; check it with 'xbutil examine', reset it with 'xbutil reset' and run again";
    default:
        return "a run of the " + kernel_name + " kernel failed on the card" + said +
               ": check 'xbutil examine' and the kernel log (dmesg), reset the card with 'xbutil reset' and run "
               "again";
    }
}

std::unique_ptr<XrtBackend> make_xrt_backend(const HwParams& params, double sample_rate, const XrtOptions& options) {
    return std::make_unique<XrtBackendImpl>(params, sample_rate, options);
}

} // namespace spikeline
