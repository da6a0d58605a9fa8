// The OpenCL backend. Per chunk of frames (all probes of a batch in the same launches):
//   device: bandpass (one work item per 8 channels, through the chunk) -> group_means (one per frame, clipped by levels
//           an earlier launch's detect took) -> detect (reference, noise tracker, threshold, alignment, clip levels;
//           one per 8 channels) -> candidate lists per channel and, when sorting, the referenced samples;
//   host:   candidates in (emitted frame, channel) order into L1's de-duplication, frame by frame, and L1's sorting
//           stage on a ring of the referenced samples, as the cpu backend's stage (C).
// Streams (independent recordings) share the launches: each has its own lanes, parameters and frame count per
// launch. Chunks rotate through `chunks_in_flight` buffer sets on one in-order queue: while the device filters chunk k,
// the host de-duplicates chunk k-1. Every process() call returns with all its chunks finished, so events come out as
// promptly as the cpu backend's and the caller's frames are not read after the call.
#include "backend/opencl_backend.hpp"

#include "backend/sort_stage.hpp"
#include "spikeline/hw/spatial_dedup.hpp"
#include "spikeline/hw/threshold_detector.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#define CL_HPP_ENABLE_EXCEPTIONS
#define CL_HPP_TARGET_OPENCL_VERSION 300
#define CL_HPP_MINIMUM_OPENCL_VERSION 200
#include <CL/opencl.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <mutex>
#include <sstream>

namespace spikeline {

namespace {

// The kernels' source, embedded at build time from kernels/opencl/detect.cl.
constexpr const char* kKernelSource =
#include "opencl_kernel_source.inc"
    ;

std::string error_name(cl_int code) {
    switch (code) {
    case CL_DEVICE_NOT_FOUND:
        return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE:
        return "CL_DEVICE_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
        return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES:
        return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY:
        return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE:
        return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_BUFFER_SIZE:
        return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_WORK_GROUP_SIZE:
        return "CL_INVALID_WORK_GROUP_SIZE";
    case -1001:
        return "CL_PLATFORM_NOT_FOUND_KHR";
    default:
        return "OpenCL error " + std::to_string(code);
    }
}

bool out_of_memory(cl_int code) {
    return code == CL_MEM_OBJECT_ALLOCATION_FAILURE || code == CL_OUT_OF_RESOURCES || code == CL_OUT_OF_HOST_MEMORY ||
           code == CL_INVALID_BUFFER_SIZE;
}

const char* const kNoPlatformAdvice =
    "install an OpenCL driver (ICD): 'apt-get install pocl-opencl-icd' runs on the CPU, or your GPU vendor's driver; "
    "the ICD loader reads the .icd files in /etc/OpenCL/vendors (or in the folder OCL_ICD_VENDORS names)";

std::vector<cl::Platform> platforms_or_throw() {
    std::vector<cl::Platform> platforms;
    try {
        cl::Platform::get(&platforms);
    } catch (const cl::Error& e) {
        if (e.err() != -1001) // CL_PLATFORM_NOT_FOUND_KHR: the loader found no ICD
            throw InputError(std::string("OpenCL could not list its platforms (") + e.what() + ", " +
                             error_name(e.err()) + "): " + kNoPlatformAdvice);
    }
    if (platforms.empty())
        throw InputError(std::string("no OpenCL platform found: ") + kNoPlatformAdvice);
    return platforms;
}

std::string device_type_name(cl_device_type type) {
    if (type & CL_DEVICE_TYPE_GPU)
        return "GPU";
    if (type & CL_DEVICE_TYPE_CPU)
        return "CPU";
    if (type & CL_DEVICE_TYPE_ACCELERATOR)
        return "accelerator";
    return "other";
}

std::uint64_t fnv1a(std::uint64_t hash, const std::string& text) {
    for (unsigned char c : text) {
        hash ^= c;
        hash *= 1099511628211ull;
    }
    return hash ^ 0xff; // separates consecutive fields
}

std::filesystem::path default_cache_dir() {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    if (xdg && *xdg)
        return std::filesystem::path(xdg) / "spikeline" / "opencl";
    const char* home = std::getenv("HOME");
    if (home && *home)
        return std::filesystem::path(home) / ".cache" / "spikeline" / "opencl";
    return {};
}

std::string megabytes(std::uint64_t bytes) {
    std::ostringstream text;
    text.precision(1);
    text << std::fixed << static_cast<double>(bytes) / 1e6 << " MB";
    return text.str();
}

struct Candidate {
    int emitted; ///< frame of the chunk whose processing emitted it
    SpikeEvent event;
};

} // namespace

std::vector<OpenclPlatformInfo> list_opencl_devices() {
    std::vector<OpenclPlatformInfo> list;
    const std::vector<cl::Platform> platforms = platforms_or_throw();
    for (std::size_t p = 0; p < platforms.size(); ++p) {
        OpenclPlatformInfo info;
        info.index = static_cast<int>(p);
        info.name = platforms[p].getInfo<CL_PLATFORM_NAME>();
        info.version = platforms[p].getInfo<CL_PLATFORM_VERSION>();
        std::vector<cl::Device> devices;
        try {
            platforms[p].getDevices(CL_DEVICE_TYPE_ALL, &devices);
        } catch (const cl::Error& e) {
            if (e.err() != CL_DEVICE_NOT_FOUND)
                throw InputError("OpenCL platform " + std::to_string(p) + " (" + info.name +
                                 ") could not list its devices: " + error_name(e.err()));
        }
        for (std::size_t d = 0; d < devices.size(); ++d) {
            OpenclDeviceInfo device;
            device.index = static_cast<int>(d);
            device.name = devices[d].getInfo<CL_DEVICE_NAME>();
            device.type = device_type_name(devices[d].getInfo<CL_DEVICE_TYPE>());
            device.version = devices[d].getInfo<CL_DEVICE_VERSION>();
            device.driver = devices[d].getInfo<CL_DRIVER_VERSION>();
            device.compute_units = devices[d].getInfo<CL_DEVICE_MAX_COMPUTE_UNITS>();
            device.global_memory_bytes = devices[d].getInfo<CL_DEVICE_GLOBAL_MEM_SIZE>();
            device.max_allocation_bytes = devices[d].getInfo<CL_DEVICE_MAX_MEM_ALLOC_SIZE>();
            info.devices.push_back(device);
        }
        list.push_back(info);
    }
    return list;
}

class OpenclBatch::Engine {
public:
    /// One stream per entry of params (streams may share a parameter set).
    Engine(std::vector<std::shared_ptr<const HwParams>> params, const OpenclOptions& options)
        : options_(options), chunk_frames_(std::min<std::size_t>(options.chunk_frames, HwConfig::reference_period)) {
        require(!params.empty() && params.size() <= 4096, "--probes must be between 1 and 4096");
        require(options.chunk_frames >= 1 && options.chunk_frames <= (1u << 20),
                "the OpenCL chunk must hold between 1 and 2^20 frames");
        require(options.chunks_in_flight >= 1 && options.chunks_in_flight <= 8,
                "the OpenCL backend keeps between 1 and 8 chunks in flight");
        for (std::shared_ptr<const HwParams>& p : params) {
            require(p != nullptr, "no detection parameters for a stream of the OpenCL batch");
            require(p->align_window >= 1, "the alignment window must hold at least one sample");
            require(p->n_channels >= 1 && p->n_channels <= HwConfig::max_channels,
                    "a stream of the OpenCL batch has " + std::to_string(p->n_channels) + " channels; the detector " +
                        "takes 1 to " + std::to_string(HwConfig::max_channels));
            Stream stream;
            stream.n_channels = p->n_channels;
            stream.padded = (p->n_channels + kVector - 1) / kVector * kVector;
            stream.lane_base = n_lanes_;
            stream.params = std::move(p);
            stream.dedup = std::make_unique<hw::DedupState<HwConfig>>();
            n_lanes_ += stream.padded;
            min_align_window_ = std::min(min_align_window_, stream.params->align_window);
            max_channels_ = std::max(max_channels_, stream.n_channels);
            streams_.push_back(std::move(stream));
        }
        try {
            open_device();
            build_kernels();
            allocate();
        } catch (const cl::Error& e) {
            throw translated(e, "setting up");
        }
    }

    ~Engine() {
        try {
            if (queue_())
                queue_.finish();
        } catch (const cl::Error&) { // nothing to report while unwinding or closing
        }
    }

    std::size_t n_streams() const { return streams_.size(); }
    std::string device_description() const { return device_name_ + " (" + platform_name_ + ")"; }
    void take_artifacts(std::size_t stream, std::vector<hw::ArtifactEvent>& out) {
        std::vector<hw::ArtifactEvent>& artifacts = streams_[stream].artifacts;
        out.insert(out.end(), artifacts.begin(), artifacts.end());
        artifacts.clear();
    }
    std::uint64_t artifact_candidates(std::size_t stream) const {
        return streams_[stream].dedup->artifacts.dropped_candidates;
    }
    bool kernels_from_cache() const { return from_cache_; }
    std::uint64_t lost_events(std::size_t stream) const {
        std::uint64_t lost = streams_[stream].dedup->dropped;
        if (stream == 0)
            lost += sorting_.dropped_events() + (sorting_.enabled() ? sorting_.dropped_writes() : 0);
        return lost;
    }
    std::uint64_t lost_events() const {
        std::uint64_t lost = 0;
        for (std::size_t s = 0; s < streams_.size(); ++s)
            lost += lost_events(s);
        return lost;
    }

    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) {
        require(streams_.size() == 1, "the OpenCL batch of several probes has no sorting stage");
        sorting_.enable(std::move(params), keep_snippets);
        ring_.resize(ring_frames() * static_cast<std::size_t>(streams_[0].n_channels));
    }
    void take_sorted(SortOutput& out) { sorting_.take(out); }
    void queue_table_writes(const std::vector<hw::TableWrite>& writes) {
        sorting_.queue_writes(writes, streams_[0].collected);
    }

    /// n_frames[s] frames of stream s (0: the stream only waits) from frames[s]; stream s's final events are appended
    /// to *events[s]. Returns with every chunk finished.
    void process(const std::int16_t* const* frames, const std::size_t* n_frames,
                 std::vector<SpikeEvent>* const* events) {
        const std::size_t longest = *std::max_element(n_frames, n_frames + streams_.size());
        std::vector<std::size_t> counts(streams_.size());
        try {
            for (std::size_t start = 0; start < longest; start += chunk_frames_) {
                for (std::size_t s = 0; s < streams_.size(); ++s)
                    counts[s] = n_frames[s] > start ? std::min(chunk_frames_, n_frames[s] - start) : 0;
                Slot& slot = slots_[next_slot_];
                if (slot.busy)
                    collect(slot, events);
                launch(slot, frames, start, counts);
                next_slot_ = (next_slot_ + 1) % slots_.size();
            }
            drain(events);
        } catch (const cl::Error& e) {
            throw translated(e, "processing a chunk");
        }
    }

    /// The end of stream s: its channels still searching flushed (L1's flush_detector on the device's detector
    /// state) and its de-duplication emptied into events. Only between process() calls.
    void finish(std::size_t s, std::vector<SpikeEvent>& events) {
        Stream& stream = streams_[s];
        const std::size_t n = static_cast<std::size_t>(stream.n_channels);
        std::vector<cl_int> searching(n), count(n), best_pos(n), best_value(n), opposite_run(n);
        try {
            const std::size_t offset = static_cast<std::size_t>(stream.lane_base) * sizeof(cl_int);
            queue_.enqueueReadBuffer(searching_, CL_TRUE, offset, n * sizeof(cl_int), searching.data());
            queue_.enqueueReadBuffer(count_, CL_TRUE, offset, n * sizeof(cl_int), count.data());
            queue_.enqueueReadBuffer(best_pos_, CL_TRUE, offset, n * sizeof(cl_int), best_pos.data());
            queue_.enqueueReadBuffer(best_value_, CL_TRUE, offset, n * sizeof(cl_int), best_value.data());
            queue_.enqueueReadBuffer(opposite_run_, CL_TRUE, offset, n * sizeof(cl_int), opposite_run.data());
        } catch (const cl::Error& e) {
            throw translated(e, "finishing the stream");
        }
        auto detector = std::make_unique<hw::DetectorState<HwConfig>>();
        for (std::size_t ch = 0; ch < n; ++ch) {
            detector->searching[ch] = static_cast<std::uint8_t>(searching[ch]);
            detector->count[ch] = static_cast<std::uint8_t>(count[ch]);
            detector->best_pos[ch] = static_cast<std::uint8_t>(best_pos[ch]);
            detector->best_value[ch] = best_value[ch];
            detector->opposite_run[ch] = opposite_run[ch];
        }
        const HwParams& params = *stream.params;
        hw::DedupState<HwConfig>& dedup = *stream.dedup;
        hw::flush_detector(*detector, stream.collected, 0, stream.n_channels,
                           [&](const SpikeEvent& c) { hw::dedup_add(dedup, params, c); });
        hw::dedup_advance(dedup, params, stream.collected, true, [&](const SpikeEvent& e) { add_event(e, events); });
        take_logged_artifacts(dedup.artifacts, stream.artifacts_taken, stream.artifacts);
        if (s == 0 && sorting_.enabled()) {
            // Samples past the end read as 0, as in hw::sort_flush.
            const int post = sorting_.params().post;
            for (int i = 0; i < post; ++i)
                std::fill_n(ring_row(stream.collected + static_cast<std::uint64_t>(i)), stream.n_channels, 0);
            sort_ready(stream.collected + static_cast<std::uint64_t>(post));
        }
    }

private:
    /// One independent recording of the batch.
    struct Stream {
        std::shared_ptr<const HwParams> params;
        int n_channels = 0;
        int padded = 0;              ///< channels per row on the device
        int lane_base = 0;           ///< its first lane (padded channels of the streams before it)
        std::uint64_t launched = 0;  ///< frames sent to the device
        std::uint64_t collected = 0; ///< frames whose results the host has taken
        std::unique_ptr<hw::DedupState<HwConfig>> dedup;
        std::vector<hw::ArtifactEvent> artifacts; ///< not yet taken
        std::uint64_t artifacts_taken = 0;        ///< from its de-duplication's log
    };

    struct Slot {
        cl::Buffer frames, candidates, counts, referenced, frames_now;
        std::vector<cl_short> host_frames; ///< rows of the streams that need padding, staged for the transfer
        std::vector<cl_int> host_candidates, host_counts, host_referenced, host_frames_now;
        cl::Event done;
        std::vector<std::size_t> n_frames; ///< per stream
        std::size_t stride = 0;            ///< the longest stream's frames
        int capacity = 0;
        bool busy = false;
    };

    InputError translated(const cl::Error& e, const std::string& doing) const {
        std::string message = "OpenCL device " + device_description() + " failed " + doing + ": " + e.what() +
                              " returned " + error_name(e.err());
        if (out_of_memory(e.err()))
            message += ": the device ran out of memory or resources for " + std::to_string(streams_.size()) +
                       " probe(s) of up to " + std::to_string(max_channels_) + " channels in chunks of " +
                       std::to_string(chunk_frames_) + " frames; use fewer --probes, or another device";
        return InputError(message);
    }

    void open_device() {
        const std::vector<cl::Platform> platforms = platforms_or_throw();
        std::string available;
        for (std::size_t p = 0; p < platforms.size(); ++p)
            available += (p ? ", " : "") + std::to_string(p) + ": " + platforms[p].getInfo<CL_PLATFORM_NAME>();
        require(options_.platform >= 0 && options_.platform < static_cast<int>(platforms.size()),
                "--opencl-platform " + std::to_string(options_.platform) + " does not exist: there are " +
                    std::to_string(platforms.size()) + " OpenCL platform(s) (" + available +
                    "); 'spikeline devices' lists them");
        const cl::Platform& platform = platforms[static_cast<std::size_t>(options_.platform)];
        platform_name_ = platform.getInfo<CL_PLATFORM_NAME>();
        std::vector<cl::Device> devices;
        try {
            platform.getDevices(CL_DEVICE_TYPE_ALL, &devices);
        } catch (const cl::Error& e) {
            if (e.err() != CL_DEVICE_NOT_FOUND)
                throw;
        }
        require(options_.device >= 0 && options_.device < static_cast<int>(devices.size()),
                "--opencl-device " + std::to_string(options_.device) + " does not exist: OpenCL platform " +
                    std::to_string(options_.platform) + " (" + platform_name_ + ") has " +
                    std::to_string(devices.size()) + " device(s); 'spikeline devices' lists them");
        device_ = devices[static_cast<std::size_t>(options_.device)];
        device_name_ = device_.getInfo<CL_DEVICE_NAME>();
        context_ = cl::Context(device_);
        queue_ = cl::CommandQueue(context_, device_);
        cache_key_ =
            fnv1a(fnv1a(fnv1a(fnv1a(1469598103934665603ull, platform_name_), platform.getInfo<CL_PLATFORM_VERSION>()),
                        device_name_ + device_.getInfo<CL_DEVICE_VERSION>()),
                  device_.getInfo<CL_DRIVER_VERSION>());
    }

    static std::string build_options() {
        using C = HwConfig;
        static_assert(C::coef_frac_bits == 14 && C::coef_bits <= 16 && C::state_bits <= 26,
                      "detect.cl's band-pass splits states into 16-bit halves at bit 14 (bandpass.hpp)");
        std::string o;
        auto define = [&o](const char* name, int value) {
            o += " -D" + std::string(name) + "=" + std::to_string(value);
        };
        define("N_SECTIONS", C::n_sections);
        define("COEF_FRAC_BITS", C::coef_frac_bits);
        define("STATE_FRAC_BITS", C::state_frac_bits);
        define("STATE_BITS", C::state_bits);
        define("SAMPLE_FRAC_BITS", C::sample_frac_bits);
        define("SAMPLE_BITS", C::sample_bits);
        define("NOISE_FRAC_BITS", C::noise_frac_bits);
        define("NOISE_BITS", C::noise_bits);
        define("GAIN_FRAC_BITS", C::gain_frac_bits);
        define("MAX_GROUPS", C::max_groups);
        define("MAX_PARTNERS", C::max_partners);
        define("REFERENCE_PERIOD", C::reference_period);
        return o;
    }

    // Kernels built once per device: the binary is kept under the cache folder, named by a hash of the platform,
    // device, driver, build options and source; a cached binary the driver refuses is rebuilt from source.
    void build_kernels() {
        const std::string source = std::string(kKernelSource) + options_.extra_source;
        const std::string options = build_options();
        const std::filesystem::path dir = options_.cache_dir.empty() ? default_cache_dir() : options_.cache_dir;
        char key[17];
        std::snprintf(key, sizeof key, "%016llx",
                      static_cast<unsigned long long>(fnv1a(fnv1a(cache_key_, options), source)));
        const std::filesystem::path cached = dir.empty() ? dir : dir / (std::string(key) + ".bin");
        if (!cached.empty()) {
            const std::vector<unsigned char> binary = load_binary(cached);
            if (!binary.empty()) {
                try {
                    program_ = cl::Program(context_, {device_}, cl::Program::Binaries{binary});
                    program_.build({device_}, options.c_str());
                    from_cache_ = true;
                } catch (const cl::Error&) {
                    from_cache_ = false; // refused by the driver: rebuilt below and replaced
                }
            }
        }
        if (!from_cache_) {
            program_ = cl::Program(context_, source);
            try {
                program_.build({device_}, options.c_str());
            } catch (const cl::Error& e) {
                std::string log;
                try {
                    log = program_.getBuildInfo<CL_PROGRAM_BUILD_LOG>(device_);
                } catch (const cl::Error&) {
                    log = "(no build log)";
                }
                throw InputError("the OpenCL kernels did not build for " + device_description() + " (" +
                                 error_name(e.err()) + "); the compiler said:\n" + log +
                                 "\nuse another --opencl-device, or --backend cpu, and report this with the log");
            }
            if (!cached.empty())
                store_binary(cached);
        }
        bandpass_ = cl::Kernel(program_, "bandpass");
        group_means_ = cl::Kernel(program_, "group_means");
        detect_ = cl::Kernel(program_, "detect");
        // Small work-groups on a CPU, so that a probe's 128 work items spread over every core (left to itself,
        // pocl put them in one group, on one core); a GPU wants at least a warp or wavefront per group.
        local_size_ = (device_.getInfo<CL_DEVICE_TYPE>() & CL_DEVICE_TYPE_CPU) ? 8 : 64;
        for (const cl::Kernel* kernel : {&bandpass_, &group_means_, &detect_})
            local_size_ =
                std::min<std::size_t>(local_size_, kernel->getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(device_));
    }

    // A cache file is a header (kCacheMagic, size, hash of the binary) and the driver's binary. Only a binary whose
    // size and hash match reaches the driver: some drivers (pocl 3.1) abort on a damaged one instead of failing.
    static constexpr char kCacheMagic[8] = {'S', 'P', 'K', 'L', 'O', 'C', 'L', '1'};

    static std::uint64_t binary_hash(const std::vector<unsigned char>& binary) {
        return fnv1a(1469598103934665603ull, std::string(binary.begin(), binary.end()));
    }

    static std::vector<unsigned char> load_binary(const std::filesystem::path& path) {
        std::ifstream in(path, std::ios::binary);
        char magic[sizeof kCacheMagic] = {};
        std::uint64_t size = 0, hash = 0;
        if (!in.read(magic, sizeof magic) || std::memcmp(magic, kCacheMagic, sizeof magic) != 0 ||
            !in.read(reinterpret_cast<char*>(&size), sizeof size) ||
            !in.read(reinterpret_cast<char*>(&hash), sizeof hash) || size == 0 || size > (std::uint64_t{1} << 30))
            return {};
        std::vector<unsigned char> binary(size);
        if (!in.read(reinterpret_cast<char*>(binary.data()), static_cast<std::streamsize>(size)) ||
            binary_hash(binary) != hash)
            return {};
        return binary;
    }

    void store_binary(const std::filesystem::path& path) const {
        const auto binaries = program_.getInfo<CL_PROGRAM_BINARIES>();
        if (binaries.empty() || binaries[0].empty())
            return;
        const std::uint64_t size = binaries[0].size(), hash = binary_hash(binaries[0]);
        try { // a cache that cannot be written costs a build per run, nothing else
            std::filesystem::create_directories(path.parent_path());
            AtomicFile file(path);
            file.stream().write(kCacheMagic, sizeof kCacheMagic);
            file.stream().write(reinterpret_cast<const char*>(&size), sizeof size);
            file.stream().write(reinterpret_cast<const char*>(&hash), sizeof hash);
            file.stream().write(reinterpret_cast<const char*>(binaries[0].data()), static_cast<std::streamsize>(size));
            file.commit();
        } catch (const std::exception&) {
        }
    }

    /// A global size of whole work-groups (the kernels ignore work items past their count).
    cl::NDRange whole_groups(std::size_t items) const {
        return cl::NDRange((items + local_size_ - 1) / local_size_ * local_size_);
    }

    std::size_t lane_bytes() const { return static_cast<std::size_t>(n_lanes_) * sizeof(cl_int); }
    int capacity_for(std::size_t n_frames) const {
        return static_cast<int>(n_frames / static_cast<std::size_t>(min_align_window_)) + 1;
    }

    // Words per stream of the kernels' tables (PROBE_WORDS, FRAMES_WORDS and the P_* fields in detect.cl).
    enum LayoutField : std::size_t {
        kLaneBase,
        kPadded,
        kRunsBegin,
        kRuns,
        kNoiseStepFast,
        kNoiseStepSlow,
        kWarmupFrames,
        kThresholdGain,
        kPolarity,
        kAlignWindow,
        kDeadTime,
        kSpatialGateGain,
        kReferenceClipGain,
        kSpatialGain // max_partners words, the last field
    };
    static constexpr std::size_t kLayoutWords = kSpatialGain + HwConfig::max_partners, kFramesWords = 3;

    void allocate() {
        const std::size_t chunk = chunk_frames_;
        const std::size_t n_streams = streams_.size();
        const std::size_t samples = chunk * static_cast<std::size_t>(n_lanes_);
        const std::size_t frames_bytes = samples * sizeof(cl_short);
        const std::size_t sample_bytes = samples * sizeof(cl_int);
        const std::size_t means_bytes = chunk * n_streams * HwConfig::max_groups * 4;
        const std::size_t candidate_bytes =
            static_cast<std::size_t>(capacity_for(chunk)) * 4 * sizeof(cl_int) * static_cast<std::size_t>(n_lanes_);
        const std::size_t history_bytes = (HwConfig::n_sections + 1) * 2 * lane_bytes();
        const std::size_t per_slot = frames_bytes + candidate_bytes + lane_bytes() + sample_bytes;
        const std::size_t total = sample_bytes + means_bytes + history_bytes + 8 * lane_bytes() +
                                  static_cast<std::size_t>(options_.chunks_in_flight) * per_slot;
        const std::uint64_t max_allocation = device_.getInfo<CL_DEVICE_MAX_MEM_ALLOC_SIZE>();
        const std::uint64_t global_memory = device_.getInfo<CL_DEVICE_GLOBAL_MEM_SIZE>();
        const std::size_t largest = std::max({sample_bytes, candidate_bytes, frames_bytes});
        require(largest <= max_allocation && total <= global_memory,
                "the OpenCL device " + device_description() + " allows buffers of " + megabytes(max_allocation) +
                    " and " + megabytes(global_memory) + " in all, but " + std::to_string(n_streams) +
                    " probe(s) of up to " + std::to_string(max_channels_) + " channels in chunks of " +
                    std::to_string(chunk) + " frames need a buffer of " + megabytes(largest) + " and " +
                    megabytes(total) + " in all: use fewer --probes, or another device");

        filtered_ = cl::Buffer(context_, CL_MEM_READ_WRITE, sample_bytes);
        means_ = cl::Buffer(context_, CL_MEM_READ_WRITE, means_bytes);
        // Per stream: its sections, reference groups, runs and settings; per vector of 8 lanes: its stream.
        std::vector<cl_int> sections, inverse, runs, layout, vector_stream, partners;
        std::vector<cl_short> group_of;
        for (std::size_t s = 0; s < n_streams; ++s) {
            const Stream& stream = streams_[s];
            const HwParams& p = *stream.params;
            for (int k = 0; k < HwConfig::n_sections; ++k)
                sections.insert(sections.end(), {p.sections[k].gain, p.sections[k].a1, p.sections[k].a2,
                                                 HwConfig::numerator_middle(k)});
            inverse.insert(inverse.end(), p.group_inverse_size, p.group_inverse_size + HwConfig::max_groups);
            group_of.insert(group_of.end(), p.group_of, p.group_of + stream.n_channels);
            group_of.resize(group_of.size() + static_cast<std::size_t>(stream.padded - stream.n_channels),
                            -1); // the padding is in no group
            vector_stream.resize(vector_stream.size() + static_cast<std::size_t>(stream.padded / kVector),
                                 static_cast<cl_int>(s));
            // Runs of neighbouring channels of one reference group, for the group sums.
            const std::size_t runs_begin = runs.size();
            for (int ch = 0; ch < stream.n_channels; ++ch) {
                const int group = p.group_of[ch];
                if (group < 0)
                    continue;
                if (runs.size() > runs_begin && runs[runs.size() - 2] == ch && runs.back() == group)
                    ++runs[runs.size() - 2];
                else
                    runs.insert(runs.end(), {ch, ch + 1, group});
            }
            std::vector<cl_int> words(kLayoutWords, 0);
            words[kLaneBase] = stream.lane_base;
            words[kPadded] = stream.padded;
            words[kRunsBegin] = static_cast<cl_int>(runs_begin / 3);
            words[kRuns] = static_cast<cl_int>((runs.size() - runs_begin) / 3);
            words[kNoiseStepFast] = p.noise_step_fast;
            words[kNoiseStepSlow] = p.noise_step_slow;
            words[kWarmupFrames] = static_cast<cl_int>(p.warmup_frames);
            words[kThresholdGain] = p.threshold_gain;
            words[kPolarity] = static_cast<cl_int>(p.polarity);
            words[kAlignWindow] = p.align_window;
            words[kDeadTime] = p.dead_time;
            words[kSpatialGateGain] = p.spatial_gate_gain;
            words[kReferenceClipGain] = p.reference_clip_gain;
            for (int k = 0; k < HwConfig::max_partners; ++k)
                words[kSpatialGain + static_cast<std::size_t>(k)] = p.spatial_gain[k];
            layout.insert(layout.end(), words.begin(), words.end());
            // Per lane, the spatial rule's partners (channels of the stream; the padding has none).
            for (int ch = 0; ch < stream.padded; ++ch)
                for (int k = 0; k < HwConfig::max_partners; ++k)
                    partners.push_back(ch < stream.n_channels && p.spatial_gate_gain != 0 ? p.partners[ch][k] : -1);
        }
        runs.resize(std::max<std::size_t>(runs.size(), 3)); // no buffer is empty
        auto read_only = [this](auto& values) {
            return cl::Buffer(context_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, values.size() * sizeof(values[0]),
                              values.data());
        };
        sections_ = read_only(sections);
        group_inverse_ = read_only(inverse);
        runs_ = read_only(runs);
        layout_ = read_only(layout);
        vector_stream_ = read_only(vector_stream);
        group_of_ = read_only(group_of);
        partners_ = read_only(partners);
        // L1's reset_detect: filters at zero, no clip levels, noise at its initial value, nothing searching or holding.
        std::vector<cl_int> zeros((HwConfig::n_sections + 1) * 2 * static_cast<std::size_t>(n_lanes_), 0);
        std::vector<cl_int> initial_noise;
        for (const Stream& stream : streams_)
            initial_noise.resize(initial_noise.size() + static_cast<std::size_t>(stream.padded),
                                 stream.params->noise_initial);
        history_ = cl::Buffer(context_, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, history_bytes, zeros.data());
        clip_ = cl::Buffer(context_, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, 2 * lane_bytes(), zeros.data());
        noise_ = cl::Buffer(context_, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, lane_bytes(), initial_noise.data());
        for (cl::Buffer* state : {&searching_, &count_, &best_pos_, &best_value_, &hold_, &opposite_run_})
            *state = cl::Buffer(context_, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, lane_bytes(), zeros.data());
        slots_.resize(static_cast<std::size_t>(options_.chunks_in_flight));
        for (Slot& slot : slots_) {
            slot.frames = cl::Buffer(context_, CL_MEM_READ_ONLY, frames_bytes);
            slot.candidates = cl::Buffer(context_, CL_MEM_WRITE_ONLY, candidate_bytes);
            slot.counts = cl::Buffer(context_, CL_MEM_WRITE_ONLY, lane_bytes());
            slot.referenced = cl::Buffer(context_, CL_MEM_WRITE_ONLY, sample_bytes);
            slot.frames_now = cl::Buffer(context_, CL_MEM_READ_ONLY, n_streams * kFramesWords * sizeof(cl_int));
            slot.host_counts.resize(static_cast<std::size_t>(n_lanes_));
            slot.host_frames_now.resize(n_streams * kFramesWords);
            slot.n_frames.resize(n_streams);
        }
        const cl_int n_vectors = n_lanes_ / kVector;
        bandpass_.setArg(kBandpassFiltered, filtered_);
        bandpass_.setArg(kBandpassHistory, history_);
        bandpass_.setArg(kBandpassSections, sections_);
        bandpass_.setArg(kBandpassVectorStream, vector_stream_);
        bandpass_.setArg(kBandpassLayout, layout_);
        bandpass_.setArg(kBandpassVectors, n_vectors);
        group_means_.setArg(kMeansFiltered, filtered_);
        group_means_.setArg(kMeansRuns, runs_);
        group_means_.setArg(kMeansGroupInverse, group_inverse_);
        group_means_.setArg(kMeansMeans, means_);
        group_means_.setArg(kMeansLayout, layout_);
        group_means_.setArg(kMeansStreams, static_cast<cl_int>(n_streams));
        group_means_.setArg(kMeansClip, clip_);
        group_means_.setArg(kMeansLanes, static_cast<cl_int>(n_lanes_));
        int i = 0;
        for (const cl::Buffer* b :
             {&filtered_, &means_, &group_of_, &noise_, &searching_, &count_, &best_pos_, &best_value_, &hold_})
            detect_.setArg(static_cast<cl_uint>(i++), *b);
        detect_.setArg(kDetectVectorStream, vector_stream_);
        detect_.setArg(kDetectLayout, layout_);
        detect_.setArg(kDetectVectors, n_vectors);
        detect_.setArg(kDetectPartners, partners_);
        detect_.setArg(kDetectClip, clip_);
        detect_.setArg(kDetectOppositeRun, opposite_run_);
    }

    // Argument indices of the kernels in kernels/opencl/detect.cl (detect: after its nine state and input buffers).
    static constexpr cl_uint kBandpassFrames = 0, kBandpassFiltered = 1, kBandpassHistory = 2, kBandpassSections = 3,
                             kBandpassVectorStream = 4, kBandpassLayout = 5, kBandpassFramesNow = 6,
                             kBandpassStride = 7, kBandpassVectors = 8;
    static constexpr cl_uint kMeansFiltered = 0, kMeansRuns = 1, kMeansGroupInverse = 2, kMeansMeans = 3,
                             kMeansLayout = 4, kMeansFramesNow = 5, kMeansStride = 6, kMeansStreams = 7, kMeansClip = 8,
                             kMeansLanes = 9;
    static constexpr cl_uint kDetectReferenced = 9, kDetectKeepReferenced = 10, kDetectCandidates = 11,
                             kDetectCounts = 12, kDetectCapacity = 13, kDetectVectorStream = 14, kDetectLayout = 15,
                             kDetectFramesNow = 16, kDetectStride = 17, kDetectVectors = 18, kDetectPartners = 19,
                             kDetectClip = 20, kDetectOppositeRun = 21;

    void launch(Slot& slot, const std::int16_t* const* frames, std::size_t start,
                const std::vector<std::size_t>& counts) {
        const std::size_t stride = *std::max_element(counts.begin(), counts.end());
        slot.stride = stride;
        slot.n_frames = counts;
        // Each stream's rows at stride * lane_base: straight from the caller's frames when its rows need no padding
        // (384, 1024 channels...), else staged into rows of its padded width with the padding at 0.
        slot.host_frames.resize(stride * static_cast<std::size_t>(n_lanes_));
        for (std::size_t s = 0; s < streams_.size(); ++s) {
            Stream& stream = streams_[s];
            const std::size_t n = static_cast<std::size_t>(stream.n_channels);
            const std::size_t padded = static_cast<std::size_t>(stream.padded);
            const std::size_t block = stride * static_cast<std::size_t>(stream.lane_base);
            const cl_short* rows = frames[s] + start * n;
            if (counts[s] > 0 && n != padded) {
                cl_short* staged = &slot.host_frames[block];
                for (std::size_t f = 0; f < counts[s]; ++f) {
                    std::memcpy(staged + f * padded, rows + f * n, n * sizeof(cl_short));
                    std::fill(staged + f * padded + n, staged + (f + 1) * padded, cl_short{0});
                }
                rows = staged;
            }
            if (counts[s] > 0)
                queue_.enqueueWriteBuffer(slot.frames, CL_FALSE, block * sizeof(cl_short),
                                          counts[s] * padded * sizeof(cl_short), rows);
            slot.host_frames_now[s * kFramesWords] = static_cast<cl_int>(counts[s]);
            slot.host_frames_now[s * kFramesWords + 1] = static_cast<cl_int>(stream.launched & 0xffffffffu);
            slot.host_frames_now[s * kFramesWords + 2] = static_cast<cl_int>(stream.launched >> 32);
            stream.launched += counts[s];
        }
        queue_.enqueueWriteBuffer(slot.frames_now, CL_FALSE, 0, slot.host_frames_now.size() * sizeof(cl_int),
                                  slot.host_frames_now.data());
        const cl_int stride_arg = static_cast<cl_int>(stride);
        slot.capacity = capacity_for(stride);
        bandpass_.setArg(kBandpassFrames, slot.frames);
        bandpass_.setArg(kBandpassFramesNow, slot.frames_now);
        bandpass_.setArg(kBandpassStride, stride_arg);
        const cl::NDRange vectors = whole_groups(static_cast<std::size_t>(n_lanes_ / kVector));
        queue_.enqueueNDRangeKernel(bandpass_, cl::NullRange, vectors, cl::NDRange(local_size_));
        group_means_.setArg(kMeansFramesNow, slot.frames_now);
        group_means_.setArg(kMeansStride, stride_arg);
        const cl::NDRange rows = whole_groups(stride);
        queue_.enqueueNDRangeKernel(group_means_, cl::NullRange, cl::NDRange(rows[0], streams_.size()),
                                    cl::NDRange(local_size_, 1));
        const bool keep_referenced = sorting_.enabled();
        detect_.setArg(kDetectReferenced, slot.referenced);
        detect_.setArg(kDetectKeepReferenced, static_cast<cl_int>(keep_referenced));
        detect_.setArg(kDetectCandidates, slot.candidates);
        detect_.setArg(kDetectCounts, slot.counts);
        detect_.setArg(kDetectCapacity, slot.capacity);
        detect_.setArg(kDetectFramesNow, slot.frames_now);
        detect_.setArg(kDetectStride, stride_arg);
        queue_.enqueueNDRangeKernel(detect_, cl::NullRange, vectors, cl::NDRange(local_size_));
        const std::size_t candidate_ints =
            static_cast<std::size_t>(slot.capacity) * 4 * static_cast<std::size_t>(n_lanes_);
        slot.host_candidates.resize(candidate_ints);
        queue_.enqueueReadBuffer(slot.counts, CL_FALSE, 0, lane_bytes(), slot.host_counts.data());
        if (keep_referenced) { // one stream: its block starts at 0 and holds stride == its frames
            const std::size_t n = static_cast<std::size_t>(streams_[0].n_channels);
            slot.host_referenced.resize(stride * n);
            queue_.enqueueReadBufferRect(slot.referenced, CL_FALSE, {0, 0, 0}, {0, 0, 0},
                                         {n * sizeof(cl_int), stride, 1},
                                         static_cast<std::size_t>(streams_[0].padded) * sizeof(cl_int), 0,
                                         n * sizeof(cl_int), 0, slot.host_referenced.data());
        }
        queue_.enqueueReadBuffer(slot.candidates, CL_FALSE, 0, candidate_ints * sizeof(cl_int),
                                 slot.host_candidates.data(), nullptr, &slot.done);
        queue_.flush();
        slot.busy = true;
    }

    void drain(std::vector<SpikeEvent>* const* events) {
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            Slot& slot = slots_[(next_slot_ + i) % slots_.size()]; // oldest first
            if (slot.busy)
                collect(slot, events);
        }
    }

    // Host stage of a finished chunk: the cpu backend's stage (C) on the device's candidates, stream by stream.
    void collect(Slot& slot, std::vector<SpikeEvent>* const* events) {
        slot.done.wait();
        slot.busy = false;
        for (std::size_t s = 0; s < streams_.size(); ++s) {
            Stream& stream = streams_[s];
            const std::size_t n_frames = slot.n_frames[s];
            if (n_frames == 0)
                continue;
            const bool sorting = s == 0 && sorting_.enabled();
            if (sorting)
                for (std::size_t f = 0; f < n_frames; ++f)
                    std::memcpy(ring_row(stream.collected + f),
                                &slot.host_referenced[f * static_cast<std::size_t>(stream.n_channels)],
                                static_cast<std::size_t>(stream.n_channels) * sizeof(std::int32_t));
            candidates_.clear();
            for (int ch = 0; ch < stream.n_channels; ++ch) {
                const std::size_t lane = static_cast<std::size_t>(stream.lane_base + ch);
                const cl_int* list = &slot.host_candidates[lane * static_cast<std::size_t>(slot.capacity) * 4];
                for (int k = 0; k < slot.host_counts[lane]; ++k) {
                    const std::uint64_t sample = static_cast<std::uint64_t>(
                        static_cast<std::int64_t>(stream.collected) + static_cast<std::int64_t>(list[4 * k + 1]));
                    candidates_.push_back({list[4 * k], SpikeEvent{sample, ch, list[4 * k + 2], list[4 * k + 3]}});
                }
            }
            // Channel order within a frame, as L1 emits them.
            std::stable_sort(candidates_.begin(), candidates_.end(),
                             [](const Candidate& a, const Candidate& b) { return a.emitted < b.emitted; });
            const HwParams& params = *stream.params;
            hw::DedupState<HwConfig>& dedup = *stream.dedup;
            std::vector<SpikeEvent>& out = *events[s];
            std::size_t next = 0;
            for (std::size_t f = 0; f < n_frames; ++f) {
                const std::uint64_t frame = stream.collected + f;
                for (; next < candidates_.size() && candidates_[next].emitted == static_cast<int>(f); ++next)
                    hw::dedup_add(dedup, params, candidates_[next].event);
                hw::dedup_advance(dedup, params, frame, false, [&](const SpikeEvent& e) { add_event(e, out); });
                take_logged_artifacts(dedup.artifacts, stream.artifacts_taken, stream.artifacts);
                if (sorting)
                    sort_ready(frame);
            }
            stream.collected += n_frames;
            if (sorting && stream.collected > HwSortConfig::ring_frames)
                sorting_.apply_writes_until(stream.collected -
                                            HwSortConfig::ring_frames); // every spike before is sorted
        }
    }

    std::size_t ring_frames() const { return chunk_frames_ + HwSortConfig::ring_frames; }
    std::int32_t* ring_row(std::uint64_t frame) {
        return &ring_[(frame % ring_frames()) * static_cast<std::size_t>(streams_[0].n_channels)];
    }

    // Sorting runs only with one stream (enable_sorting), so an event to sort is stream 0's.
    void add_event(const SpikeEvent& e, std::vector<SpikeEvent>& events) {
        events.push_back(e);
        if (sorting_.enabled())
            sorting_.wait(e);
    }

    void sort_ready(std::uint64_t frame) {
        sorting_.sort_ready(frame, ring_.data(), static_cast<int>(ring_frames()), streams_[0].n_channels);
    }

    OpenclOptions options_;
    /// Frames per launch: options_.chunk_frames, at most a period of the common reference's clip levels, so that a
    /// launch's group sums only read levels that an earlier launch's detect took (detect.cl).
    std::size_t chunk_frames_;
    /// Channels per work item (VEC in detect.cl): each stream's rows are padded to a multiple of it.
    static constexpr int kVector = 8;
    std::vector<Stream> streams_;
    int n_lanes_ = 0; ///< padded channels of all streams
    int min_align_window_ = 255;
    int max_channels_ = 0;
    std::string platform_name_, device_name_;
    std::uint64_t cache_key_ = 0;
    bool from_cache_ = false;

    cl::Device device_;
    cl::Context context_;
    cl::CommandQueue queue_;
    cl::Program program_;
    cl::Kernel bandpass_, group_means_, detect_;
    cl::Buffer filtered_, means_, history_, sections_, group_of_, group_inverse_, runs_, layout_, vector_stream_,
        partners_;
    cl::Buffer noise_, searching_, count_, best_pos_, best_value_, hold_, opposite_run_;
    cl::Buffer clip_; ///< [2][lanes]: the common reference's clip levels (hw::ReferenceState)
    std::vector<Slot> slots_;
    std::size_t local_size_ = 8;
    std::size_t next_slot_ = 0;

    std::vector<Candidate> candidates_;
    SortStageOutput sorting_;
    std::vector<std::int32_t> ring_;
};

namespace {

std::vector<std::shared_ptr<const HwParams>> same_params(const HwParams& params, int probes) {
    require(probes >= 1 && probes <= 4096, "--probes must be between 1 and 4096");
    return std::vector<std::shared_ptr<const HwParams>>(static_cast<std::size_t>(probes),
                                                        std::make_shared<const HwParams>(params));
}

} // namespace

OpenclBatch::OpenclBatch(const HwParams& params, const OpenclOptions& options)
    : engine_(std::make_unique<Engine>(same_params(params, options.probes), options)) {}

OpenclBatch::~OpenclBatch() = default;

void OpenclBatch::process(const std::vector<const std::int16_t*>& probe_frames, std::size_t n_frames,
                          std::vector<std::vector<SpikeEvent>>& events) {
    require(probe_frames.size() == engine_->n_streams() && events.size() == engine_->n_streams(),
            "one frame pointer and one event list per probe");
    const std::vector<std::size_t> counts(probe_frames.size(), n_frames);
    std::vector<std::vector<SpikeEvent>*> lists;
    for (std::vector<SpikeEvent>& list : events)
        lists.push_back(&list);
    engine_->process(probe_frames.data(), counts.data(), lists.data());
}

void OpenclBatch::finish(std::vector<std::vector<SpikeEvent>>& events) {
    require(events.size() == engine_->n_streams(), "one event list per probe");
    for (std::size_t p = 0; p < events.size(); ++p)
        engine_->finish(p, events[p]);
}

std::string OpenclBatch::device_description() const {
    return engine_->device_description();
}

bool OpenclBatch::kernels_from_cache() const {
    return engine_->kernels_from_cache();
}

std::uint64_t OpenclBatch::lost_events() const {
    return engine_->lost_events();
}

namespace {

class OpenclBackend final : public Backend {
public:
    OpenclBackend(const HwParams& params, const OpenclOptions& options) : engine_(same_params(params, 1), options) {}

    std::string name() const override { return "opencl"; }
    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        std::vector<SpikeEvent>* list = &events;
        engine_.process(&frames, &n_frames, &list);
    }
    void finish(std::vector<SpikeEvent>& events) override { engine_.finish(0, events); }
    std::uint64_t lost_events() const override { return engine_.lost_events(0); }
    void take_artifacts(std::vector<hw::ArtifactEvent>& out) override { engine_.take_artifacts(0, out); }
    std::uint64_t artifact_candidates() const override { return engine_.artifact_candidates(0); }
    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) override {
        engine_.enable_sorting(std::move(params), keep_snippets);
    }
    void take_sorted(SortOutput& out) override { engine_.take_sorted(out); }
    void queue_table_writes(const std::vector<hw::TableWrite>& writes) override { engine_.queue_table_writes(writes); }

private:
    OpenclBatch::Engine engine_;
};

} // namespace

std::unique_ptr<Backend> make_opencl_backend(const HwParams& params, const OpenclOptions& options) {
    return std::make_unique<OpenclBackend>(params, options);
}

// The streams' meeting point. A launch happens when every live stream waits in process() (or has finished): the
// thread that completes the set runs it for all, under the lock, and wakes the others. A stream that stops early (its
// handle destroyed without finish(), e.g. on an error in its thread) leaves the set, so the others go on.
class OpenclStreams::Shared {
public:
    Shared(std::vector<std::shared_ptr<const HwParams>> params, const OpenclOptions& options)
        : engine(std::move(params), options), waiting(engine.n_streams()) {}

    void process(std::size_t s, const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) {
        std::unique_lock<std::mutex> lock(mutex);
        if (failure)
            std::rethrow_exception(failure);
        waiting[s] = {frames, n_frames, &events, true};
        const std::uint64_t my_round = round;
        if (everyone_waits())
            run_round();
        else
            woken.wait(lock, [&] { return round != my_round; });
        if (failure)
            std::rethrow_exception(failure);
    }

    void finish(std::size_t s, std::vector<SpikeEvent>& events) {
        std::unique_lock<std::mutex> lock(mutex);
        if (failure)
            std::rethrow_exception(failure);
        engine.finish(s, events); // no launch runs: every other live stream waits or works outside
        leave(s);
    }

    void leave(std::size_t s) {
        live[s] = false;
        if (std::any_of(waiting.begin(), waiting.end(), [](const Waiting& w) { return w.waiting; }) && everyone_waits())
            run_round();
    }

    OpenclBatch::Engine engine;
    std::mutex mutex;
    std::vector<bool> live;

private:
    struct Waiting {
        const std::int16_t* frames = nullptr;
        std::size_t n_frames = 0;
        std::vector<SpikeEvent>* events = nullptr;
        bool waiting = false;
    };

    bool everyone_waits() const {
        for (std::size_t s = 0; s < waiting.size(); ++s)
            if (live[s] && !waiting[s].waiting)
                return false;
        return true;
    }

    void run_round() {
        const std::size_t n = waiting.size();
        std::vector<const std::int16_t*> frames(n, nullptr);
        std::vector<std::size_t> counts(n, 0);
        std::vector<std::vector<SpikeEvent>*> events(n, &unused);
        for (std::size_t s = 0; s < n; ++s)
            if (waiting[s].waiting) {
                frames[s] = waiting[s].frames;
                counts[s] = waiting[s].n_frames;
                events[s] = waiting[s].events;
            }
        try {
            engine.process(frames.data(), counts.data(), events.data());
        } catch (...) {
            failure = std::current_exception(); // every stream's results depend on the launches: all stop
        }
        for (Waiting& w : waiting)
            w = Waiting{};
        ++round;
        woken.notify_all();
    }

    std::condition_variable woken;
    std::vector<Waiting> waiting;
    std::uint64_t round = 0;
    std::exception_ptr failure;
    std::vector<SpikeEvent> unused; ///< the event list of streams without frames in a launch (they emit nothing)
};

namespace {

class OpenclStream final : public Backend {
public:
    OpenclStream(std::shared_ptr<OpenclStreams::Shared> shared, std::size_t index)
        : shared_(std::move(shared)), index_(index) {}
    ~OpenclStream() override {
        if (finished_)
            return;
        std::lock_guard<std::mutex> lock(shared_->mutex);
        shared_->leave(index_);
    }

    std::string name() const override { return "opencl"; }
    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        require(!finished_, "an OpenCL stream was given frames after its end");
        shared_->process(index_, frames, n_frames, events);
    }
    void finish(std::vector<SpikeEvent>& events) override {
        require(!finished_, "an OpenCL stream was finished twice");
        shared_->finish(index_, events);
        finished_ = true;
    }
    // Read while no launch runs: between this stream's own calls, which only return after their launches.
    std::uint64_t lost_events() const override {
        std::lock_guard<std::mutex> lock(shared_->mutex);
        return shared_->engine.lost_events(index_);
    }
    void take_artifacts(std::vector<hw::ArtifactEvent>& out) override {
        std::lock_guard<std::mutex> lock(shared_->mutex);
        shared_->engine.take_artifacts(index_, out);
    }
    std::uint64_t artifact_candidates() const override {
        std::lock_guard<std::mutex> lock(shared_->mutex);
        return shared_->engine.artifact_candidates(index_);
    }
    void enable_sorting(std::shared_ptr<const HwSortParams>, bool) override {
        throw InputError("several recordings share OpenCL launches for detection only: sort them one at a time");
    }

private:
    std::shared_ptr<OpenclStreams::Shared> shared_;
    std::size_t index_;
    bool finished_ = false;
};

} // namespace

OpenclStreams::OpenclStreams(std::vector<std::shared_ptr<const HwParams>> params, const OpenclOptions& options)
    : shared_(std::make_shared<Shared>(std::move(params), options)) {
    shared_->live.assign(shared_->engine.n_streams(), false);
}

OpenclStreams::~OpenclStreams() = default;

std::unique_ptr<Backend> OpenclStreams::stream(std::size_t index) {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    require(index < shared_->live.size() && !taken_.count(index),
            "OpenCL stream " + std::to_string(index) + " does not exist or was taken already");
    taken_.insert(index);
    shared_->live[index] = true;
    return std::make_unique<OpenclStream>(shared_, index);
}

std::size_t OpenclStreams::size() const {
    return shared_->engine.n_streams();
}

std::string OpenclStreams::device_description() const {
    return shared_->engine.device_description();
}

} // namespace spikeline
