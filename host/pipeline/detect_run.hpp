#pragma once
// Offline detection: a recording source streamed through a backend into .npy outputs, with bounded memory.
#include "backend/backend.hpp"
#include "fpga/xrt_backend.hpp"
#include "io/npy.hpp"
#include "io/recording.hpp"
#include "probe/probe.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace spikeline {

struct DetectRunOptions {
    BackendOptions backend; ///< cpu, reference or xrt
    XrtOptions xrt;         ///< for the xrt backend
    DetectSettings settings;
    double chunk_ms = 100.0; ///< frames read and handed to the backend at a time (for xrt: one kernel run)
    bool progress = false;   ///< draw a progress line on stderr
    /// When set, the backend to run instead of one made from `backend` (e.g. one stream of OpenclStreams).
    std::function<std::unique_ptr<Backend>(const HwParams&)> make_backend;
};

/// DetectRunOptions with sorting_detect_settings(): what sort and stream detect with.
inline DetectRunOptions detect_options_for_sorting() {
    DetectRunOptions options;
    options.settings = sorting_detect_settings();
    return options;
}

struct DetectRunResult {
    std::uint64_t frames = 0;
    std::uint64_t events = 0;
    double recording_seconds = 0;
    double wall_seconds = 0;
    double realtime_factor = 0;
    std::uint64_t lost_events = 0;         ///< to a full de-duplication queue or kernel output buffer
    std::uint64_t artifacts = 0;           ///< artefacts found (rows of artifacts.npy)
    std::uint64_t artifact_candidates = 0; ///< candidates dropped as artefacts
    std::size_t peak_rss_bytes = 0;
    StageSeconds stages;
};

/// Detects spikes in source and writes into out_dir (created if needed): spike_times.npy (uint64 samples),
/// spike_channels.npy (int32), spike_amplitudes.npy (float32, uV when the gain is known, else LSB), artifacts.npy
/// (append_artifacts) and detect_info.json. Outputs appear atomically when the whole recording has been processed.
DetectRunResult run_detection(io::RecordingSource& source, const probe::Probe& probe, const DetectRunOptions& options,
                              const std::filesystem::path& out_dir);

/// Appends artefacts as rows {sample, reference group, crossings} of artifacts.npy (int64, n x 3).
void append_artifacts(io::NpyAppendWriter<std::int64_t>& out, const std::vector<hw::ArtifactEvent>& artifacts);

/// The backend options name (cpu, reference or xrt), for these detection parameters, seeing zeros on the channels
/// excluded_channels(options.settings, probe) names.
std::unique_ptr<Backend> make_run_backend(const DetectRunOptions& options, const HwParams& params, double sample_rate,
                                          const probe::Probe& probe);

/// Frames per chunk of chunk_ms; throws InputError outside (0, 10000] ms.
std::size_t chunk_frames_for(double chunk_ms, double sample_rate);

/// Picks the probe for a recording: the file given, else probe.json beside the recording, else the geometry of the
/// recording's metadata (RecordingInfo::probe), else the built-in default probe for the channel count, with a warning
/// on stderr (shown even with -q), as for a gain the reader had to guess. Checks that the channel counts agree.
probe::Probe resolve_probe(const std::string& probe_file, const io::RecordingInfo& info, std::string* description);

/// meta with "geometry_fallback" (the built-in default probe), "gain_source" and "gain_fallback" (microvolts per bit
/// unknown or a default) added: every output's metadata says when its geometry or gain is not the recording's.
nlohmann::json with_input_provenance(nlohmann::json meta, const io::RecordingInfo& info, const probe::Probe& probe);

/// Adds the backend's cycle facts (the verilator backend) to an output's metadata as its "rtl" section.
void add_rtl_section(nlohmann::json& meta, const Backend& backend);
void add_rtl_section(nlohmann::json& meta, const std::optional<RtlCycleFacts>& facts);

} // namespace spikeline
