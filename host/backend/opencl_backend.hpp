#pragma once
// The OpenCL backend: L1's per-channel detection stages (band-pass, common reference, noise tracking, threshold,
// alignment) as OpenCL C kernels on any OpenCL device (GPUs, CPUs through pocl), de-duplication and sorting on the
// host with the L1 functions. Also runs several independent probes per launch for throughput: OpenclBatch (N probes
// with the same parameters, driven together) and OpenclStreams (recordings with their own parameters, each driven by
// its own thread as if alone).
#include "backend/backend.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace spikeline {

struct OpenclOptions {
    int platform = 0; ///< index in `spikeline devices`
    int device = 0;   ///< index within the platform
    /// Frames per kernel launch (the chunk; at most hw::DetectConfig::reference_period are used, see detect.cl). A
    /// process() call is cut into chunks of at most this many frames.
    std::size_t chunk_frames = 1024;
    int chunks_in_flight = 2; ///< chunk buffer sets: the device computes one while the host finishes the previous
    int probes = 1;           ///< independent streams per launch (OpenclBatch; the Backend takes one)
    /// Where built kernels are kept; empty: $XDG_CACHE_HOME/spikeline/opencl (else ~/.cache/spikeline/opencl).
    std::filesystem::path cache_dir;
    /// Test hook: OpenCL C appended to the kernels' source (a syntax error provokes a build failure).
    std::string extra_source;
};

struct OpenclDeviceInfo {
    int index = 0;
    std::string name, type, version, driver;
    unsigned compute_units = 0;
    std::uint64_t global_memory_bytes = 0;
    std::uint64_t max_allocation_bytes = 0;
};

struct OpenclPlatformInfo {
    int index = 0;
    std::string name, version;
    std::vector<OpenclDeviceInfo> devices;
};

/// The OpenCL platforms and their devices. Throws InputError, saying what to install, when the ICD loader finds no
/// platform (no ICD file under /etc/OpenCL/vendors or OCL_ICD_VENDORS).
std::vector<OpenclPlatformInfo> list_opencl_devices();

/// Opens the device, builds (or loads from the cache) the kernels and allocates the chunk buffers. Throws InputError
/// for a missing platform or device, a kernel build failure, buffers beyond the device's memory and bad options.
std::unique_ptr<Backend> make_opencl_backend(const HwParams& params, const OpenclOptions& options);

/// Several independent probes with the same parameters, each stream's chunk processed by the same kernel launches:
/// what `bench --backend opencl --probes N` measures. No sorting stage.
class OpenclBatch {
public:
    OpenclBatch(const HwParams& params, const OpenclOptions& options);
    ~OpenclBatch();
    OpenclBatch(const OpenclBatch&) = delete;
    OpenclBatch& operator=(const OpenclBatch&) = delete;

    /// probe_frames[p]: n_frames time-major frames of probe p; final events of probe p are appended to events[p].
    void process(const std::vector<const std::int16_t*>& probe_frames, std::size_t n_frames,
                 std::vector<std::vector<SpikeEvent>>& events);
    void finish(std::vector<std::vector<SpikeEvent>>& events);
    /// "device name (platform name)".
    std::string device_description() const;
    /// Whether the kernels came from the cache instead of a build.
    bool kernels_from_cache() const;
    std::uint64_t lost_events() const;

    class Engine;

private:
    std::unique_ptr<Engine> engine_;
};

/// Several independent recordings through the same kernel launches, each with its own parameters (channel count,
/// probe geometry, sample rate, settings). stream(i) is recording i's Backend, to be driven from its own thread exactly
/// as a backend of its own (process() calls of any length, then finish()): a launch takes the frames of every stream
/// waiting in process() once each live stream waits or has ended, so a stream's events are those it gives alone.
/// A stream whose Backend is destroyed unfinished (an error in its thread) leaves the batch; the others go on. No
/// sorting stage.
class OpenclStreams {
public:
    OpenclStreams(std::vector<std::shared_ptr<const HwParams>> params, const OpenclOptions& options);
    ~OpenclStreams();
    OpenclStreams(const OpenclStreams&) = delete;
    OpenclStreams& operator=(const OpenclStreams&) = delete;

    /// Recording index's backend; each index once. Take every stream before driving any, or the first launches run
    /// without the streams not yet taken.
    std::unique_ptr<Backend> stream(std::size_t index);
    std::size_t size() const;
    /// "device name (platform name)".
    std::string device_description() const;

    class Shared;

private:
    std::shared_ptr<Shared> shared_;
    std::set<std::size_t> taken_;
};

} // namespace spikeline
