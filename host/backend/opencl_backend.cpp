// The OpenCL backend. Per chunk of frames (all probes of a batch in the same launches):
//   device: bandpass (one work item per 8 channels, through the chunk) -> group_means (one per frame) -> detect
//           (reference, noise tracker, threshold, alignment; one per 8 channels) -> candidate lists per channel
//           and, when sorting, the referenced samples;
//   host:   candidates in (emitted frame, channel) order into L1's de-duplication, frame by frame, and L1's sorting
//           stage on a ring of the referenced samples, as the cpu backend's stage (C).
// Chunks rotate through `chunks_in_flight` buffer sets on one in-order queue: while the device filters chunk k, the
// host de-duplicates chunk k-1. Every process() call returns with all its chunks finished, so events come out as
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
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
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
    Engine(const HwParams& params, const OpenclOptions& options)
        : params_(std::make_unique<HwParams>(params)), options_(options), n_channels_(params.n_channels),
          n_probes_(options.probes), padded_((params.n_channels + kVector - 1) / kVector * kVector),
          n_lanes_(padded_ * options.probes) {
        require(options.probes >= 1 && options.probes <= 4096, "--probes must be between 1 and 4096");
        require(options.chunk_frames >= 1 && options.chunk_frames <= (1u << 20),
                "the OpenCL chunk must hold between 1 and 2^20 frames");
        require(options.chunks_in_flight >= 1 && options.chunks_in_flight <= 8,
                "the OpenCL backend keeps between 1 and 8 chunks in flight");
        require(params.align_window >= 1, "the alignment window must hold at least one sample");
        for (int p = 0; p < n_probes_; ++p) {
            dedup_.push_back(std::make_unique<hw::DedupState<HwConfig>>());
            artifacts_.emplace_back();
            artifacts_taken_.push_back(0);
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

    std::string device_description() const { return device_name_ + " (" + platform_name_ + ")"; }
    void take_artifacts(std::size_t probe, std::vector<hw::ArtifactEvent>& out) {
        out.insert(out.end(), artifacts_[probe].begin(), artifacts_[probe].end());
        artifacts_[probe].clear();
    }
    std::uint64_t artifact_candidates(std::size_t probe) const { return dedup_[probe]->artifacts.dropped_candidates; }
    bool kernels_from_cache() const { return from_cache_; }
    std::uint64_t lost_events() const {
        std::uint64_t lost = sorting_.dropped_events() + (sorting_.enabled() ? sorting_.dropped_writes() : 0);
        for (const auto& d : dedup_)
            lost += d->dropped;
        return lost;
    }

    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) {
        require(n_probes_ == 1, "the OpenCL batch of several probes has no sorting stage");
        sorting_.enable(std::move(params), keep_snippets);
        ring_.resize(ring_frames() * static_cast<std::size_t>(n_channels_));
    }
    void take_sorted(SortOutput& out) { sorting_.take(out); }
    void queue_table_writes(const std::vector<hw::TableWrite>& writes) { sorting_.queue_writes(writes, collected_); }

    void process(const std::int16_t* const* probe_frames, std::size_t n_frames, std::vector<SpikeEvent>* events) {
        try {
            for (std::size_t start = 0; start < n_frames; start += options_.chunk_frames) {
                Slot& slot = slots_[next_slot_];
                if (slot.busy)
                    collect(slot, events);
                launch(slot, probe_frames, start, std::min(options_.chunk_frames, n_frames - start));
                next_slot_ = (next_slot_ + 1) % slots_.size();
            }
            drain(events);
        } catch (const cl::Error& e) {
            throw translated(e, "processing a chunk");
        }
    }

    void finish(std::vector<SpikeEvent>* events) {
        try {
            drain(events);
            // The channels still searching: L1's flush_detector on the device's detector state.
            std::vector<cl_int> searching(static_cast<std::size_t>(n_lanes_)), count(searching.size()),
                best_pos(searching.size()), best_value(searching.size());
            queue_.enqueueReadBuffer(searching_, CL_TRUE, 0, lane_bytes(), searching.data());
            queue_.enqueueReadBuffer(count_, CL_TRUE, 0, lane_bytes(), count.data());
            queue_.enqueueReadBuffer(best_pos_, CL_TRUE, 0, lane_bytes(), best_pos.data());
            queue_.enqueueReadBuffer(best_value_, CL_TRUE, 0, lane_bytes(), best_value.data());
            auto detector = std::make_unique<hw::DetectorState<HwConfig>>();
            for (int p = 0; p < n_probes_; ++p) {
                for (int ch = 0; ch < n_channels_; ++ch) {
                    const std::size_t lane = static_cast<std::size_t>(p * padded_ + ch);
                    detector->searching[ch] = static_cast<std::uint8_t>(searching[lane]);
                    detector->count[ch] = static_cast<std::uint8_t>(count[lane]);
                    detector->best_pos[ch] = static_cast<std::uint8_t>(best_pos[lane]);
                    detector->best_value[ch] = best_value[lane];
                }
                hw::DedupState<HwConfig>& dedup = *dedup_[static_cast<std::size_t>(p)];
                hw::flush_detector(*detector, collected_, 0, n_channels_,
                                   [&](const SpikeEvent& c) { hw::dedup_add(dedup, *params_, c); });
                hw::dedup_advance(dedup, *params_, collected_, true,
                                  [&](const SpikeEvent& e) { add_event(e, events[p]); });
                take_logged_artifacts(dedup.artifacts, artifacts_taken_[static_cast<std::size_t>(p)],
                                      artifacts_[static_cast<std::size_t>(p)]);
            }
        } catch (const cl::Error& e) {
            throw translated(e, "finishing the stream");
        }
        if (sorting_.enabled()) {
            // Samples past the end read as 0, as in hw::sort_flush.
            const int post = sorting_.params().post;
            for (int i = 0; i < post; ++i)
                std::fill_n(ring_row(collected_ + static_cast<std::uint64_t>(i)), n_channels_, 0);
            sort_ready(collected_ + static_cast<std::uint64_t>(post));
        }
    }

private:
    struct Slot {
        cl::Buffer frames, candidates, counts, referenced;
        std::vector<cl_int> host_candidates, host_counts, host_referenced;
        cl::Event done;
        std::size_t n_frames = 0;
        int capacity = 0;
        bool busy = false;
    };

    InputError translated(const cl::Error& e, const std::string& doing) const {
        std::string message = "OpenCL device " + device_description() + " failed " + doing + ": " + e.what() +
                              " returned " + error_name(e.err());
        if (out_of_memory(e.err()))
            message += ": the device ran out of memory or resources for " + std::to_string(n_probes_) +
                       " probe(s) of " + std::to_string(n_channels_) + " channels in chunks of " +
                       std::to_string(options_.chunk_frames) + " frames; use fewer --probes, or another device";
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
        return static_cast<int>(n_frames / static_cast<std::size_t>(params_->align_window)) + 1;
    }

    void allocate() {
        const std::size_t chunk = options_.chunk_frames;
        const std::size_t samples = chunk * static_cast<std::size_t>(n_lanes_);
        const std::size_t frames_bytes = samples * sizeof(cl_short);
        const std::size_t sample_bytes = samples * sizeof(cl_int);
        const std::size_t means_bytes = chunk * static_cast<std::size_t>(n_probes_) * HwConfig::max_groups * 4;
        const std::size_t candidate_bytes =
            static_cast<std::size_t>(capacity_for(chunk)) * 3 * sizeof(cl_int) * static_cast<std::size_t>(n_lanes_);
        const std::size_t history_bytes = (HwConfig::n_sections + 1) * 2 * lane_bytes();
        const std::size_t per_slot = frames_bytes + candidate_bytes + lane_bytes() + sample_bytes;
        const std::size_t total = sample_bytes + means_bytes + history_bytes + 6 * lane_bytes() +
                                  static_cast<std::size_t>(options_.chunks_in_flight) * per_slot;
        const std::uint64_t max_allocation = device_.getInfo<CL_DEVICE_MAX_MEM_ALLOC_SIZE>();
        const std::uint64_t global_memory = device_.getInfo<CL_DEVICE_GLOBAL_MEM_SIZE>();
        const std::size_t largest = std::max({sample_bytes, candidate_bytes, frames_bytes});
        require(largest <= max_allocation && total <= global_memory,
                "the OpenCL device " + device_description() + " allows buffers of " + megabytes(max_allocation) +
                    " and " + megabytes(global_memory) + " in all, but " + std::to_string(n_probes_) + " probe(s) of " +
                    std::to_string(n_channels_) + " channels in chunks of " + std::to_string(chunk) +
                    " frames need a buffer of " + megabytes(largest) + " and " + megabytes(total) +
                    " in all: use fewer --probes, or another device");

        filtered_ = cl::Buffer(context_, CL_MEM_READ_WRITE, sample_bytes);
        means_ = cl::Buffer(context_, CL_MEM_READ_WRITE, means_bytes);
        history_ = cl::Buffer(context_, CL_MEM_READ_WRITE, history_bytes);
        std::vector<cl_int> sections;
        for (int k = 0; k < HwConfig::n_sections; ++k)
            sections.insert(sections.end(), {params_->sections[k].gain, params_->sections[k].a1,
                                             params_->sections[k].a2, HwConfig::numerator_middle(k)});
        sections_ = cl::Buffer(context_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sections.size() * sizeof(cl_int),
                               sections.data());
        std::vector<cl_short> group_of(params_->group_of, params_->group_of + n_channels_);
        group_of.resize(static_cast<std::size_t>(padded_), -1); // the padding is in no group
        group_of_ = cl::Buffer(context_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, group_of.size() * sizeof(cl_short),
                               group_of.data());
        std::vector<cl_int> inverse(params_->group_inverse_size, params_->group_inverse_size + HwConfig::max_groups);
        group_inverse_ = cl::Buffer(context_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, inverse.size() * sizeof(cl_int),
                                    inverse.data());
        // L1's reset_detect: filters at zero, noise at its initial value, nothing searching or holding.
        std::vector<cl_int> zeros((HwConfig::n_sections + 1) * 2 * static_cast<std::size_t>(n_lanes_), 0);
        std::vector<cl_int> initial_noise(static_cast<std::size_t>(n_lanes_), params_->noise_initial);
        history_ = cl::Buffer(context_, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, history_bytes, zeros.data());
        noise_ = cl::Buffer(context_, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, lane_bytes(), initial_noise.data());
        for (cl::Buffer* state : {&searching_, &count_, &best_pos_, &best_value_, &hold_})
            *state = cl::Buffer(context_, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, lane_bytes(), zeros.data());
        slots_.resize(static_cast<std::size_t>(options_.chunks_in_flight));
        for (Slot& slot : slots_) {
            slot.frames = cl::Buffer(context_, CL_MEM_READ_ONLY, frames_bytes);
            queue_.enqueueFillBuffer(slot.frames, cl_short{0}, 0, frames_bytes);
            slot.candidates = cl::Buffer(context_, CL_MEM_WRITE_ONLY, candidate_bytes);
            slot.counts = cl::Buffer(context_, CL_MEM_WRITE_ONLY, lane_bytes());
            slot.referenced = cl::Buffer(context_, CL_MEM_WRITE_ONLY, sample_bytes);
            slot.host_counts.resize(static_cast<std::size_t>(n_lanes_));
        }
        bandpass_.setArg(1, filtered_);
        bandpass_.setArg(2, history_);
        bandpass_.setArg(3, sections_);
        bandpass_.setArg(4, padded_);
        bandpass_.setArg(6, n_lanes_ / kVector);
        // Runs of neighbouring channels of one reference group, for the group sums.
        std::vector<cl_int> runs;
        for (int ch = 0; ch < n_channels_; ++ch) {
            const int group = params_->group_of[ch];
            if (group < 0)
                continue;
            if (!runs.empty() && runs[runs.size() - 2] == ch && runs.back() == group)
                ++runs[runs.size() - 2];
            else
                runs.insert(runs.end(), {ch, ch + 1, group});
        }
        const cl_int n_runs = static_cast<cl_int>(runs.size() / 3);
        runs.resize(std::max<std::size_t>(runs.size(), 3)); // no buffer is empty
        runs_ =
            cl::Buffer(context_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, runs.size() * sizeof(cl_int), runs.data());
        group_means_.setArg(0, filtered_);
        group_means_.setArg(1, runs_);
        group_means_.setArg(2, n_runs);
        group_means_.setArg(3, group_inverse_);
        group_means_.setArg(4, means_);
        group_means_.setArg(5, padded_);
        const HwParams& p = *params_;
        int i = 0;
        for (const cl::Buffer* b :
             {&filtered_, &means_, &group_of_, &noise_, &searching_, &count_, &best_pos_, &best_value_, &hold_})
            detect_.setArg(static_cast<cl_uint>(i++), *b);
        detect_.setArg(kDetectChannels, padded_);
        detect_.setArg(kDetectChannels + 2, n_lanes_ / kVector);
        detect_.setArg(kDetectChannels + 4, p.noise_step_fast);
        detect_.setArg(kDetectChannels + 5, p.noise_step_slow);
        detect_.setArg(kDetectChannels + 6, static_cast<cl_uint>(p.warmup_frames));
        detect_.setArg(kDetectChannels + 7, p.threshold_gain);
        detect_.setArg(kDetectChannels + 8, static_cast<cl_int>(p.polarity));
        detect_.setArg(kDetectChannels + 9, p.align_window);
        detect_.setArg(kDetectChannels + 10, p.dead_time);
    }

    // Argument indices of the detect kernel (kernels/opencl/detect.cl) after its nine state and input buffers.
    static constexpr cl_uint kDetectReferenced = 9, kDetectKeepReferenced = 10, kDetectCandidates = 11,
                             kDetectCounts = 12, kDetectCapacity = 13, kDetectChannels = 14;

    void launch(Slot& slot, const std::int16_t* const* probe_frames, std::size_t start, std::size_t n_frames) {
        const std::size_t stride = static_cast<std::size_t>(n_channels_);
        // Rows of n_channels into rows of padded_ (the padding was zeroed once and is never written).
        for (int p = 0; p < n_probes_; ++p)
            queue_.enqueueWriteBufferRect(slot.frames, CL_FALSE, {0, static_cast<std::size_t>(p) * n_frames, 0},
                                          {0, 0, 0}, {stride * sizeof(cl_short), n_frames, 1},
                                          static_cast<std::size_t>(padded_) * sizeof(cl_short), 0,
                                          stride * sizeof(cl_short), 0, probe_frames[p] + start * stride);
        const cl_int frames = static_cast<cl_int>(n_frames);
        slot.n_frames = n_frames;
        slot.capacity = capacity_for(n_frames);
        bandpass_.setArg(0, slot.frames);
        bandpass_.setArg(5, frames);
        const cl::NDRange vectors = whole_groups(static_cast<std::size_t>(n_lanes_ / kVector));
        queue_.enqueueNDRangeKernel(bandpass_, cl::NullRange, vectors, cl::NDRange(local_size_));
        const cl_int rows = frames * n_probes_;
        group_means_.setArg(6, rows);
        queue_.enqueueNDRangeKernel(group_means_, cl::NullRange, whole_groups(static_cast<std::size_t>(rows)),
                                    cl::NDRange(local_size_));
        const bool keep_referenced = sorting_.enabled();
        detect_.setArg(kDetectReferenced, slot.referenced);
        detect_.setArg(kDetectKeepReferenced, static_cast<cl_int>(keep_referenced));
        detect_.setArg(kDetectCandidates, slot.candidates);
        detect_.setArg(kDetectCounts, slot.counts);
        detect_.setArg(kDetectCapacity, slot.capacity);
        detect_.setArg(kDetectChannels + 1, frames);
        detect_.setArg(kDetectChannels + 3, static_cast<cl_ulong>(launched_));
        queue_.enqueueNDRangeKernel(detect_, cl::NullRange, vectors, cl::NDRange(local_size_));
        const std::size_t candidate_ints =
            static_cast<std::size_t>(slot.capacity) * 3 * static_cast<std::size_t>(n_lanes_);
        slot.host_candidates.resize(candidate_ints);
        queue_.enqueueReadBuffer(slot.counts, CL_FALSE, 0, lane_bytes(), slot.host_counts.data());
        if (keep_referenced) {
            slot.host_referenced.resize(n_frames * stride);
            queue_.enqueueReadBufferRect(slot.referenced, CL_FALSE, {0, 0, 0}, {0, 0, 0},
                                         {stride * sizeof(cl_int), n_frames, 1},
                                         static_cast<std::size_t>(padded_) * sizeof(cl_int), 0, stride * sizeof(cl_int),
                                         0, slot.host_referenced.data());
        }
        queue_.enqueueReadBuffer(slot.candidates, CL_FALSE, 0, candidate_ints * sizeof(cl_int),
                                 slot.host_candidates.data(), nullptr, &slot.done);
        queue_.flush();
        slot.busy = true;
        launched_ += n_frames;
    }

    void drain(std::vector<SpikeEvent>* events) {
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            Slot& slot = slots_[(next_slot_ + i) % slots_.size()]; // oldest first
            if (slot.busy)
                collect(slot, events);
        }
    }

    // Host stage of a finished chunk: the cpu backend's stage (C) on the device's candidates.
    void collect(Slot& slot, std::vector<SpikeEvent>* events) {
        slot.done.wait();
        slot.busy = false;
        const std::size_t n_frames = slot.n_frames;
        if (sorting_.enabled())
            for (std::size_t f = 0; f < n_frames; ++f)
                std::memcpy(ring_row(collected_ + f), &slot.host_referenced[f * static_cast<std::size_t>(n_channels_)],
                            static_cast<std::size_t>(n_channels_) * sizeof(std::int32_t));
        for (int p = 0; p < n_probes_; ++p) {
            candidates_.clear();
            for (int ch = 0; ch < n_channels_; ++ch) {
                const std::size_t lane = static_cast<std::size_t>(p * padded_ + ch);
                const cl_int* list = &slot.host_candidates[lane * static_cast<std::size_t>(slot.capacity) * 3];
                for (int k = 0; k < slot.host_counts[lane]; ++k) {
                    const std::uint64_t sample = static_cast<std::uint64_t>(static_cast<std::int64_t>(collected_) +
                                                                            static_cast<std::int64_t>(list[3 * k + 1]));
                    candidates_.push_back({list[3 * k], SpikeEvent{sample, ch, list[3 * k + 2]}});
                }
            }
            // Channel order within a frame, as L1 emits them.
            std::stable_sort(candidates_.begin(), candidates_.end(),
                             [](const Candidate& a, const Candidate& b) { return a.emitted < b.emitted; });
            hw::DedupState<HwConfig>& dedup = *dedup_[static_cast<std::size_t>(p)];
            std::size_t next = 0;
            for (std::size_t f = 0; f < n_frames; ++f) {
                const std::uint64_t frame = collected_ + f;
                for (; next < candidates_.size() && candidates_[next].emitted == static_cast<int>(f); ++next)
                    hw::dedup_add(dedup, *params_, candidates_[next].event);
                hw::dedup_advance(dedup, *params_, frame, false, [&](const SpikeEvent& e) { add_event(e, events[p]); });
                take_logged_artifacts(dedup.artifacts, artifacts_taken_[static_cast<std::size_t>(p)],
                                      artifacts_[static_cast<std::size_t>(p)]);
                if (sorting_.enabled())
                    sort_ready(frame);
            }
        }
        collected_ += n_frames;
        if (sorting_.enabled() && collected_ > HwSortConfig::ring_frames)
            sorting_.apply_writes_until(collected_ - HwSortConfig::ring_frames); // every spike before is sorted
    }

    std::size_t ring_frames() const { return options_.chunk_frames + HwSortConfig::ring_frames; }
    std::int32_t* ring_row(std::uint64_t frame) {
        return &ring_[(frame % ring_frames()) * static_cast<std::size_t>(n_channels_)];
    }

    void add_event(const SpikeEvent& e, std::vector<SpikeEvent>& events) {
        events.push_back(e);
        if (sorting_.enabled())
            sorting_.wait(e);
    }

    void sort_ready(std::uint64_t frame) {
        sorting_.sort_ready(frame, ring_.data(), static_cast<int>(ring_frames()), n_channels_);
    }

    std::unique_ptr<HwParams> params_;
    OpenclOptions options_;
    /// Channels per work item (VEC in detect.cl): rows are padded to a multiple of it.
    static constexpr int kVector = 8;
    int n_channels_, n_probes_;
    int padded_;  ///< channels per row on the device
    int n_lanes_; ///< padded channels of all probes
    std::string platform_name_, device_name_;
    std::uint64_t cache_key_ = 0;
    bool from_cache_ = false;

    cl::Device device_;
    cl::Context context_;
    cl::CommandQueue queue_;
    cl::Program program_;
    cl::Kernel bandpass_, group_means_, detect_;
    cl::Buffer filtered_, means_, history_, sections_, group_of_, group_inverse_, runs_;
    cl::Buffer noise_, searching_, count_, best_pos_, best_value_, hold_;
    std::vector<Slot> slots_;
    std::size_t local_size_ = 8;
    std::size_t next_slot_ = 0;
    std::uint64_t launched_ = 0;  ///< frames sent to the device
    std::uint64_t collected_ = 0; ///< frames whose results the host has taken

    std::vector<std::unique_ptr<hw::DedupState<HwConfig>>> dedup_; ///< one per probe
    std::vector<std::vector<hw::ArtifactEvent>> artifacts_;        ///< per probe, not yet taken
    std::vector<std::uint64_t> artifacts_taken_;                   ///< per probe, from its de-duplication's log
    std::vector<Candidate> candidates_;
    SortStageOutput sorting_;
    std::vector<std::int32_t> ring_;
};

OpenclBatch::OpenclBatch(const HwParams& params, const OpenclOptions& options)
    : engine_(std::make_unique<Engine>(params, options)) {}

OpenclBatch::~OpenclBatch() = default;

void OpenclBatch::process(const std::vector<const std::int16_t*>& probe_frames, std::size_t n_frames,
                          std::vector<std::vector<SpikeEvent>>& events) {
    require(probe_frames.size() == events.size(), "one event list per probe");
    engine_->process(probe_frames.data(), n_frames, events.data());
}

void OpenclBatch::finish(std::vector<std::vector<SpikeEvent>>& events) {
    engine_->finish(events.data());
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
    OpenclBackend(const HwParams& params, const OpenclOptions& options) : engine_(params, single_probe(options)) {}

    std::string name() const override { return "opencl"; }
    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        engine_.process(&frames, n_frames, &events);
    }
    void finish(std::vector<SpikeEvent>& events) override { engine_.finish(&events); }
    std::uint64_t lost_events() const override { return engine_.lost_events(); }
    void take_artifacts(std::vector<hw::ArtifactEvent>& out) override { engine_.take_artifacts(0, out); }
    std::uint64_t artifact_candidates() const override { return engine_.artifact_candidates(0); }
    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) override {
        engine_.enable_sorting(std::move(params), keep_snippets);
    }
    void take_sorted(SortOutput& out) override { engine_.take_sorted(out); }
    void queue_table_writes(const std::vector<hw::TableWrite>& writes) override { engine_.queue_table_writes(writes); }

private:
    static OpenclOptions single_probe(OpenclOptions options) {
        options.probes = 1;
        return options;
    }

    OpenclBatch::Engine engine_;
};

} // namespace

std::unique_ptr<Backend> make_opencl_backend(const HwParams& params, const OpenclOptions& options) {
    return std::make_unique<OpenclBackend>(params, options);
}

} // namespace spikeline
