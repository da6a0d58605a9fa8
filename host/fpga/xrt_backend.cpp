// Chunks of chunk_ms frames rotate through buffer_sets sets of device buffers: while the kernel runs on chunk k,
// the host fills and syncs chunk k+1 and reads back the events of chunk k-1, so transfers overlap compute.
#include "fpga/xrt_backend.hpp"

#include "fpga/devices.hpp"
#include "spikeline_sort.hpp"
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

/// The kernel a backend drives and its signature.
struct KernelInterface {
    const char* name;
    const kernels::DetectArgInfo* args;
    std::size_t n_args;
};

constexpr KernelInterface kDetectKernel{"spikeline_detect", kernels::kDetectArgs, kernels::kDetectArgCount};
constexpr KernelInterface kSortKernel{"spikeline_sort", kernels::kSortArgs, kernels::kSortArgCount};

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

// v++ names the arguments after the C parameters of the kernel tops in kernels/. An xclbin built from another
// version of the kernel would take the arguments set by index below in the wrong registers, so names and kinds are
// compared first; this needs no device, so a wrong file is reported as such even where no card is present.
void check_kernel_interface(const xrt::xclbin& xclbin, const std::string& file,
                            const KernelInterface& expected_kernel) {
    const std::string rebuild = ": rebuild it from this version of kernels/ with 'make -C kernels xclbin PLATFORM=...'";
    const char* const kernel_name = expected_kernel.name;
    const xrt::xclbin::kernel kernel = xclbin.get_kernel(kernel_name);
    if (!kernel) {
        std::string found;
        for (const auto& other : xclbin.get_kernels())
            found += (found.empty() ? "" : ", ") + other.get_name();
        throw InputError(file + " holds no kernel named " + kernel_name +
                         " (it holds: " + (found.empty() ? "none" : found) + ")" + rebuild);
    }
    std::vector<xrt::xclbin::arg> by_index(expected_kernel.n_args);
    for (const auto& arg : kernel.get_args())
        if (arg.get_index() < by_index.size())
            by_index[arg.get_index()] = arg;
    const std::string where = "the " + std::string(kernel_name) + " kernel in " + file;
    for (std::size_t i = 0; i < by_index.size(); ++i) {
        const kernels::DetectArgInfo& expected = expected_kernel.args[i];
        require(static_cast<bool>(by_index[i]),
                where + " has no argument " + expected.name + " (index " + std::to_string(i) + ")" + rebuild);
        const std::string name = by_index[i].get_name();
        require(name == expected.name, where + " has argument '" + name + "' at index " + std::to_string(i) +
                                           " where '" + expected.name + "' belongs" + rebuild);
        // m_axi arguments sit on an AXI master port (M_AXI_<bundle>), scalars in the s_axilite register map.
        const bool pointer = by_index[i].get_port().rfind("M_AXI", 0) == 0;
        require(pointer == expected.pointer, where + " has argument " + name + " as a " +
                                                 (pointer ? "pointer" : "scalar") + ", expected a " +
                                                 (expected.pointer ? "pointer" : "scalar") + rebuild);
    }
    require(kernel.get_num_args() == by_index.size(), where + " has " + std::to_string(kernel.get_num_args()) +
                                                          " arguments, expected " + std::to_string(by_index.size()) +
                                                          rebuild);
}

struct BufferSet {
    xrt::bo frames;
    xrt::bo events; ///< SpikeEvent (spikeline_detect) or SortedSpike (spikeline_sort) records
    xrt::bo count;
    xrt::run run;
    xrt::bo sort_params; ///< the classifier this set's run used (kept alive until the run is collected)
    xrt::bo writes;      ///< table writes queued with this set's run
};

class XrtBackend final : public Backend {
public:
    XrtBackend(const HwParams& params, double sample_rate, const XrtOptions& options)
        : n_channels_(params.n_channels), options_(options), interface_(options.sorting ? kSortKernel : kDetectKernel) {
        require(options.buffer_sets >= 1 && options.buffer_sets <= 8, "--buffers must be between 1 and 8");
        require(options.chunk_ms > 0, "--chunk-ms must be positive");
        // XRT reads a zero timeout as "wait for ever", so anything below its 1 ms resolution is refused.
        require(options.timeout_s >= 0.001, "the kernel run timeout must be at least 1 ms");
        require(std::filesystem::is_regular_file(options.xclbin),
                "xclbin " + options.xclbin.string() +
                    " not found: build it with 'make -C kernels xclbin PLATFORM=...' and pass --xclbin FILE");
        check_xclbin_container(options.xclbin);
        xrt::xclbin xclbin;
        try {
            xclbin = xrt::xclbin(options.xclbin.string());
        } catch (const std::exception& e) {
            throw InputError("cannot read " + options.xclbin.string() + " as an xclbin: " + e.what());
        }
        check_kernel_interface(xclbin, options.xclbin.string(), interface_);
        try {
            device_ = xrt::device(options.device_index);
        } catch (const std::exception& e) {
            throw xrt_device_error(e, options.device_index);
        }
        try {
            const auto uuid = device_.load_xclbin(xclbin);
            kernel_ = xrt::kernel(device_, uuid, interface_.name);
        } catch (const std::exception& e) {
            throw InputError("cannot use " + options.xclbin.string() + ": " + e.what() +
                             " (it must be built from kernels/ for this card's platform and contain the kernel " +
                             interface_.name + ")");
        }
        chunk_frames_ = static_cast<std::size_t>(std::max(1.0, std::round(options.chunk_ms * sample_rate / 1000.0)));
        const std::size_t frame_bytes = static_cast<std::size_t>(n_channels_) * sizeof(std::int16_t);
        const bool sorting = options.sorting;
        params_bo_ = xrt::bo(device_, sizeof(HwParams),
                             kernel_.group_id(sorting ? int{kernels::kSortArgDetect} : int{kernels::kArgParams}));
        std::memcpy(params_bo_.map<void*>(), &params, sizeof(HwParams));
        params_bo_.sync(XCL_BO_SYNC_BO_TO_DEVICE);
        record_bytes_ = sorting ? sizeof(hw::SortedSpike) : sizeof(SpikeEvent);
        for (int s = 0; s < options.buffer_sets; ++s) {
            BufferSet set{
                xrt::bo(device_, chunk_frames_ * frame_bytes,
                        kernel_.group_id(sorting ? int{kernels::kSortArgFrames} : int{kernels::kArgFrames})),
                xrt::bo(device_, static_cast<std::size_t>(options.max_events_per_chunk) * record_bytes_,
                        kernel_.group_id(sorting ? int{kernels::kSortArgSpikes} : int{kernels::kArgEvents})),
                xrt::bo(device_, sizeof(std::uint32_t),
                        kernel_.group_id(sorting ? int{kernels::kSortArgSpikeCount} : int{kernels::kArgEventCount})),
                xrt::run(kernel_),
                {},
                {}};
            sets_.push_back(std::move(set));
        }
        staging_.reserve(chunk_frames_ * static_cast<std::size_t>(n_channels_));
    }

    std::string name() const override { return "xrt"; }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        const std::size_t stride = static_cast<std::size_t>(n_channels_);
        frames_in_ += n_frames;
        while (n_frames > 0) {
            const std::size_t room = chunk_frames_ - staged_frames_;
            const std::size_t take = std::min(room, n_frames);
            staging_.insert(staging_.end(), frames, frames + take * stride);
            staged_frames_ += take;
            frames += take * stride;
            n_frames -= take;
            if (staged_frames_ == chunk_frames_)
                submit(false, events);
        }
        // Runs that have finished hand their events back now, not when their buffer set is needed again (up to
        // buffer_sets chunks later). A failed run is left to collect()'s wait, which reports it.
        while (!in_flight_.empty() && sets_[in_flight_.front()].run.state() == ERT_CMD_STATE_COMPLETED)
            collect(events);
    }

    void finish(std::vector<SpikeEvent>& events) override {
        submit(true, events); // the partial chunk (possibly empty) with the flush bit
        while (!in_flight_.empty())
            collect(events);
    }

    std::uint64_t lost_events() const override { return lost_events_; }

    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) override {
        require(options_.sorting, "this xrt backend runs the spikeline_detect kernel; sorting needs spikeline_sort "
                                  "(spikeline sort selects it)");
        require(!keep_snippets, "the xrt backend returns no snippets: calibrate on the CPU backend");
        sort_params_bo_ = xrt::bo(device_, sizeof(HwSortParams), kernel_.group_id(kernels::kSortArgSort));
        std::memcpy(sort_params_bo_.map<void*>(), params.get(), sizeof(HwSortParams));
        sort_params_bo_.sync(XCL_BO_SYNC_BO_TO_DEVICE);
        sort_params_changed_ = true;
    }

    // Writes ride with the next run; the kernel queues them (hw::TableWriteQueue) and applies each before the first
    // spike of its sample, as every backend does.
    void queue_table_writes(const std::vector<hw::TableWrite>& writes) override {
        require(options_.sorting, "table writes need the spikeline_sort kernel");
        check_table_writes(writes, n_channels_, frames_in_,
                           pending_writes_.empty() ? 0 : pending_writes_.back().sample);
        pending_writes_.insert(pending_writes_.end(), writes.begin(), writes.end());
    }

    void take_sorted(SortOutput& out) override {
        out.spikes.insert(out.spikes.end(), sorted_.begin(), sorted_.end());
        sorted_.clear();
    }

private:
    // Starts a run on the next free buffer set; when every set is busy, first collects the oldest.
    void submit(bool flush, std::vector<SpikeEvent>& events) {
        if (static_cast<int>(in_flight_.size()) == options_.buffer_sets)
            collect(events);
        const std::size_t index = next_set_;
        next_set_ = (next_set_ + 1) % sets_.size();
        BufferSet& set = sets_[index];
        if (!staging_.empty())
            std::memcpy(set.frames.map<void*>(), staging_.data(), staging_.size() * sizeof(std::int16_t));
        set.frames.sync(XCL_BO_SYNC_BO_TO_DEVICE, staging_.size() * sizeof(std::int16_t), 0);
        *set.count.map<std::uint32_t*>() = 0;
        set.count.sync(XCL_BO_SYNC_BO_TO_DEVICE);
        std::uint32_t control = first_run_ ? kernels::kControlReset : 0;
        if (flush)
            control |= kernels::kControlFlush;
        const auto n_frames = static_cast<std::uint32_t>(staged_frames_);
        const auto capacity = static_cast<std::uint32_t>(options_.max_events_per_chunk);
        if (options_.sorting) {
            require(static_cast<bool>(sort_params_bo_), "the spikeline_sort kernel needs its classifier before the "
                                                        "first chunk (enable_sorting)");
            if (sort_params_changed_)
                control |= kernels::kControlLoadSort;
            sort_params_changed_ = false;
            set.sort_params = sort_params_bo_;
            set.run.set_arg(kernels::kSortArgFrames, set.frames);
            set.run.set_arg(kernels::kSortArgNFrames, n_frames);
            set.run.set_arg(kernels::kSortArgDetect, params_bo_);
            set.run.set_arg(kernels::kSortArgSort, set.sort_params);
            const auto n_writes = static_cast<std::uint32_t>(pending_writes_.size());
            if (n_writes > 0) {
                set.writes =
                    xrt::bo(device_, n_writes * sizeof(hw::TableWrite), kernel_.group_id(kernels::kSortArgWrites));
                std::memcpy(set.writes.map<void*>(), pending_writes_.data(), n_writes * sizeof(hw::TableWrite));
                set.writes.sync(XCL_BO_SYNC_BO_TO_DEVICE);
            } else if (!set.writes) {
                set.writes = xrt::bo(device_, sizeof(hw::TableWrite), kernel_.group_id(kernels::kSortArgWrites));
            }
            pending_writes_.clear();
            set.run.set_arg(kernels::kSortArgWrites, set.writes);
            set.run.set_arg(kernels::kSortArgNWrites, n_writes);
            set.run.set_arg(kernels::kSortArgSpikes, set.events);
            set.run.set_arg(kernels::kSortArgMaxSpikes, capacity);
            set.run.set_arg(kernels::kSortArgSpikeCount, set.count);
            set.run.set_arg(kernels::kSortArgControl, control);
        } else {
            set.run.set_arg(kernels::kArgFrames, set.frames);
            set.run.set_arg(kernels::kArgNFrames, n_frames);
            set.run.set_arg(kernels::kArgParams, params_bo_);
            set.run.set_arg(kernels::kArgEvents, set.events);
            set.run.set_arg(kernels::kArgMaxEvents, capacity);
            set.run.set_arg(kernels::kArgEventCount, set.count);
            set.run.set_arg(kernels::kArgControl, control);
        }
        set.run.start();
        in_flight_.push_back(index);
        first_run_ = false;
        staging_.clear();
        staged_frames_ = 0;
    }

    // Waits for the oldest run and appends its events.
    void collect(std::vector<SpikeEvent>& events) {
        BufferSet& set = sets_[in_flight_.front()];
        in_flight_.pop_front();
        const auto timeout = std::chrono::milliseconds(static_cast<long>(std::ceil(options_.timeout_s * 1000)));
        const ert_cmd_state state = set.run.wait(timeout);
        if (state != ERT_CMD_STATE_COMPLETED)
            throw InputError(unfinished_run_message(interface_.name, state, options_.timeout_s));
        set.count.sync(XCL_BO_SYNC_BO_FROM_DEVICE);
        const std::uint32_t count = *set.count.map<std::uint32_t*>();
        const auto capacity = static_cast<std::uint32_t>(options_.max_events_per_chunk);
        const std::uint32_t kept = std::min(count, capacity);
        lost_events_ += count - kept;
        if (kept == 0)
            return;
        set.events.sync(XCL_BO_SYNC_BO_FROM_DEVICE, kept * record_bytes_, 0);
        if (options_.sorting) {
            // Every detected spike leaves the kernel sorted; its event is the detection output.
            const auto* first = set.events.map<const hw::SortedSpike*>();
            for (std::uint32_t i = 0; i < kept; ++i)
                events.push_back(first[i].event);
            sorted_.insert(sorted_.end(), first, first + kept);
        } else {
            const auto* first = set.events.map<const SpikeEvent*>();
            events.insert(events.end(), first, first + kept);
        }
    }

    int n_channels_;
    XrtOptions options_;
    KernelInterface interface_;
    std::size_t record_bytes_ = 0; ///< bytes per output record
    xrt::bo sort_params_bo_;
    bool sort_params_changed_ = false;
    std::vector<hw::SortedSpike> sorted_;
    std::vector<hw::TableWrite> pending_writes_; ///< for the next run
    std::uint64_t frames_in_ = 0;                ///< frames handed to process()
    xrt::device device_;
    xrt::kernel kernel_;
    xrt::bo params_bo_;
    std::vector<BufferSet> sets_;
    std::deque<std::size_t> in_flight_;
    std::size_t next_set_ = 0;
    std::size_t chunk_frames_ = 0;
    std::vector<std::int16_t> staging_;
    std::size_t staged_frames_ = 0;
    bool first_run_ = true;
    std::uint64_t lost_events_ = 0;
};

} // namespace

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

std::unique_ptr<Backend> make_xrt_backend(const HwParams& params, double sample_rate, const XrtOptions& options) {
    return std::make_unique<XrtBackend>(params, sample_rate, options);
}

} // namespace spikeline
