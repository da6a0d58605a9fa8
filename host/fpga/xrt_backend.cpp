// Chunks of chunk_ms frames rotate through buffer_sets sets of device buffers: while the kernel runs on chunk k,
// the host fills and syncs chunk k+1 and reads back the events of chunk k-1, so transfers overlap compute.
#include "fpga/xrt_backend.hpp"

#include "spikeline_detect.hpp"
#include "util/errors.hpp"

#include <xclbin.h>
#include <xrt/xrt_bo.h>
#include <xrt/xrt_device.h>
#include <xrt/xrt_kernel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <vector>

namespace spikeline {
namespace {

constexpr const char* kKernelName = "spikeline_detect";

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

struct BufferSet {
    xrt::bo frames;
    xrt::bo events;
    xrt::bo count;
    xrt::run run;
};

class XrtBackend final : public Backend {
public:
    XrtBackend(const HwParams& params, double sample_rate, const XrtOptions& options)
        : n_channels_(params.n_channels), options_(options) {
        require(options.buffer_sets >= 1 && options.buffer_sets <= 8, "--buffers must be between 1 and 8");
        require(options.chunk_ms > 0, "--chunk-ms must be positive");
        require(std::filesystem::is_regular_file(options.xclbin),
                "xclbin " + options.xclbin.string() +
                    " not found: build it with 'make -C kernels xclbin PLATFORM=...' and pass --xclbin FILE");
        check_xclbin_container(options.xclbin);
        try {
            device_ = xrt::device(options.device_index);
        } catch (const std::exception& e) {
            throw InputError("no XRT device " + std::to_string(options.device_index) + " (" + e.what() +
                             "): check that an Alveo card is installed and 'xbutil examine' lists it, or use "
                             "--backend cpu");
        }
        try {
            const auto uuid = device_.load_xclbin(options.xclbin.string());
            kernel_ = xrt::kernel(device_, uuid, kKernelName);
        } catch (const std::exception& e) {
            throw InputError("cannot use " + options.xclbin.string() + ": " + e.what() +
                             " (it must be built from kernels/ for this card's platform and contain the kernel " +
                             kKernelName + ")");
        }
        chunk_frames_ = static_cast<std::size_t>(std::max(1.0, std::round(options.chunk_ms * sample_rate / 1000.0)));
        const std::size_t frame_bytes = static_cast<std::size_t>(n_channels_) * sizeof(std::int16_t);
        params_bo_ = xrt::bo(device_, sizeof(HwParams), kernel_.group_id(kernels::kArgParams));
        std::memcpy(params_bo_.map<void*>(), &params, sizeof(HwParams));
        params_bo_.sync(XCL_BO_SYNC_BO_TO_DEVICE);
        for (int s = 0; s < options.buffer_sets; ++s) {
            BufferSet set{xrt::bo(device_, chunk_frames_ * frame_bytes, kernel_.group_id(kernels::kArgFrames)),
                          xrt::bo(device_, static_cast<std::size_t>(options.max_events_per_chunk) * sizeof(SpikeEvent),
                                  kernel_.group_id(kernels::kArgEvents)),
                          xrt::bo(device_, sizeof(std::uint32_t), kernel_.group_id(kernels::kArgEventCount)),
                          xrt::run(kernel_)};
            sets_.push_back(std::move(set));
        }
        staging_.reserve(chunk_frames_ * static_cast<std::size_t>(n_channels_));
    }

    std::string name() const override { return "xrt"; }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        const std::size_t stride = static_cast<std::size_t>(n_channels_);
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
    }

    void finish(std::vector<SpikeEvent>& events) override {
        submit(true, events); // the partial chunk (possibly empty) with the flush bit
        while (!in_flight_.empty())
            collect(events);
    }

    std::uint64_t lost_events() const override { return lost_events_; }

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
        set.run.set_arg(kernels::kArgFrames, set.frames);
        set.run.set_arg(kernels::kArgNFrames, static_cast<std::uint32_t>(staged_frames_));
        set.run.set_arg(kernels::kArgParams, params_bo_);
        set.run.set_arg(kernels::kArgEvents, set.events);
        set.run.set_arg(kernels::kArgMaxEvents, static_cast<std::uint32_t>(options_.max_events_per_chunk));
        set.run.set_arg(kernels::kArgEventCount, set.count);
        set.run.set_arg(kernels::kArgControl, control);
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
        const auto timeout = std::chrono::milliseconds(static_cast<long>(options_.timeout_s * 1000));
        const ert_cmd_state state = set.run.wait(timeout);
        if (state != ERT_CMD_STATE_COMPLETED)
            throw std::runtime_error("the spikeline_detect kernel did not complete within " +
                                     std::to_string(options_.timeout_s) + " s (state " +
                                     std::to_string(static_cast<int>(state)) + "): reset the card with 'xbutil reset'");
        set.count.sync(XCL_BO_SYNC_BO_FROM_DEVICE);
        const std::uint32_t count = *set.count.map<std::uint32_t*>();
        const auto capacity = static_cast<std::uint32_t>(options_.max_events_per_chunk);
        const std::uint32_t kept = std::min(count, capacity);
        lost_events_ += count - kept;
        if (kept == 0)
            return;
        set.events.sync(XCL_BO_SYNC_BO_FROM_DEVICE, kept * sizeof(SpikeEvent), 0);
        const auto* first = set.events.map<const SpikeEvent*>();
        events.insert(events.end(), first, first + kept);
    }

    int n_channels_;
    XrtOptions options_;
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

std::unique_ptr<Backend> make_xrt_backend(const HwParams& params, double sample_rate, const XrtOptions& options) {
    return std::make_unique<XrtBackend>(params, sample_rate, options);
}

} // namespace spikeline
