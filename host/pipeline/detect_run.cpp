#include "pipeline/detect_run.hpp"

#include "io/npy.hpp"
#include "io/spikeglx.hpp"
#include "pipeline/chunk_reader.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "util/manifest.hpp"
#include "util/memory.hpp"
#include "util/progress.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

namespace spikeline {

probe::Probe resolve_probe(const std::string& probe_file, const io::RecordingInfo& info, std::string* description) {
    probe::Probe probe;
    std::string origin;
    if (!probe_file.empty()) {
        probe = probe::read_probeinterface(probe_file);
        origin = probe_file;
    } else if (!info.data_path.empty() && std::filesystem::exists(info.data_path.parent_path() / "probe.json")) {
        origin = (info.data_path.parent_path() / "probe.json").string();
        probe = probe::read_probeinterface(origin);
    } else if (info.probe) {
        probe = *info.probe;
        origin = info.geometry_source;
    } else {
        require(info.geometry_error.empty(),
                info.geometry_error + ": pass --probe with the probe's probeinterface JSON");
        probe = probe::default_probe(info.n_channels);
        origin = "built-in default (" + std::to_string(probe.n_shanks()) +
                 " shank(s), 20 um pitch); pass --probe "
                 "for the real geometry";
        // Shown even with -q: a made-up layout misplaces every spike, so it must never pass unnoticed.
        std::fprintf(stderr,
                     "spikeline: warning: %s states no probe geometry: using the built-in default layout (%d "
                     "shank(s), 20 um pitch), which is not this probe's; pass --probe with its probeinterface JSON "
                     "(or put a probe.json beside the data)\n",
                     info.data_path.empty() ? "the recording" : info.data_path.string().c_str(), probe.n_shanks());
    }
    if (info.gain_fallback)
        std::fprintf(stderr, "spikeline: warning: microvolts per bit: %s; pass --uv-per-bit with the real value\n",
                     info.gain_source.c_str());
    require(probe.n_channels() == info.n_channels,
            "the probe (" + origin + ") has " + std::to_string(probe.n_channels()) +
                " channels but the recording has " + std::to_string(info.n_channels) +
                ": pass --probe with the probe this recording was made with");
    if (description)
        *description = origin;
    return probe;
}

nlohmann::json with_input_provenance(nlohmann::json meta, const io::RecordingInfo& info, const probe::Probe& probe) {
    meta["geometry_fallback"] = probe.builtin_default;
    meta["gain_source"] = info.gain_source;
    meta["gain_fallback"] = info.gain_fallback || info.microvolts_per_bit <= 0;
    return meta;
}

void append_artifacts(io::NpyAppendWriter<std::int64_t>& out, const std::vector<hw::ArtifactEvent>& artifacts) {
    for (const hw::ArtifactEvent& a : artifacts) {
        const std::int64_t row[3] = {static_cast<std::int64_t>(a.sample), a.group, a.crossings};
        out.append(row, 3);
    }
}

std::unique_ptr<Backend> make_run_backend(const DetectRunOptions& options, const HwParams& params, double sample_rate,
                                          const probe::Probe& probe) {
    std::unique_ptr<Backend> backend;
    if (options.make_backend) {
        backend = options.make_backend(params);
    } else if (options.backend.name == "xrt") {
        XrtOptions xrt = options.xrt;
        xrt.chunk_ms = options.chunk_ms;
        backend = make_xrt_backend(params, sample_rate, xrt);
    } else {
        backend = make_backend(options.backend, params);
    }
    return with_channels_zeroed(std::move(backend), params.n_channels, excluded_channels(options.settings, probe));
}

std::size_t chunk_frames_for(double chunk_ms, double sample_rate) {
    require(chunk_ms > 0 && chunk_ms <= 10000, "--chunk-ms must be in (0, 10000]");
    return static_cast<std::size_t>(std::max(1.0, std::round(chunk_ms * sample_rate / 1000.0)));
}

DetectRunResult run_detection(io::RecordingSource& source, const probe::Probe& probe, const DetectRunOptions& options,
                              const std::filesystem::path& out_dir) {
    const io::RecordingInfo& info = source.info();
    require(probe.n_channels() == info.n_channels, "probe and recording channel counts differ");
    require(info.n_frames > 0, "the recording " + info.data_path.string() + " holds no samples");
    const auto params = make_detect_params(options.settings, probe, info.sample_rate);
    std::unique_ptr<Backend> backend = make_run_backend(options, *params, info.sample_rate, probe);
    ensure_directory(out_dir);
    const OutputManifest manifest(out_dir);
    for (const char* name :
         {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy", "artifacts.npy", "detect_info.json"})
        require(!std::filesystem::is_directory(out_dir / name),
                (out_dir / name).string() + " is a folder: choose another --out or remove it");

    io::NpyAppendWriter<std::uint64_t> times(out_dir / "spike_times.npy");
    io::NpyAppendWriter<std::int32_t> channels(out_dir / "spike_channels.npy");
    io::NpyAppendWriter<float> amplitudes(out_dir / "spike_amplitudes.npy");
    io::NpyAppendWriter<std::int64_t> artifacts(out_dir / "artifacts.npy", {3});
    std::vector<hw::ArtifactEvent> new_artifacts;
    const bool microvolts = info.microvolts_per_bit > 0;
    // Amplitudes leave L1 in Q.sample_frac_bits LSB.
    const double scale = (microvolts ? info.microvolts_per_bit : 1.0) / (1 << HwConfig::sample_frac_bits);

    ChunkReader reader(source, chunk_frames_for(options.chunk_ms, info.sample_rate));
    DetectRunResult result;
    std::vector<SpikeEvent> events;
    auto write_events = [&] {
        for (const SpikeEvent& e : events) {
            times.append(e.sample);
            channels.append(info.channel_id(e.channel)); // global ids when a selection delivers a subset
            amplitudes.append(static_cast<float>(e.amplitude * scale));
        }
        events.clear();
        backend->take_artifacts(new_artifacts);
        append_artifacts(artifacts, new_artifacts);
        result.artifacts += new_artifacts.size();
        new_artifacts.clear();
    };

    ProgressLine progress(options.progress);
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        std::size_t n = 0;
        const std::int16_t* chunk = reader.next(n);
        if (n == 0)
            break;
        backend->process(chunk, n, events);
        result.events += events.size();
        write_events();
        result.frames += n;
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double done_s = static_cast<double>(result.frames) / info.sample_rate;
        char line[200];
        std::snprintf(
            line, sizeof line, "detect: %.1f / %.1f s (%.0f%%)  %.1fx real time  %.0f spikes/s", done_s,
            static_cast<double>(info.n_frames) / info.sample_rate,
            info.n_frames ? 100.0 * static_cast<double>(result.frames) / static_cast<double>(info.n_frames) : 0.0,
            elapsed > 0 ? done_s / elapsed : 0.0, done_s > 0 ? static_cast<double>(result.events) / done_s : 0);
        progress.update(line);
    }
    backend->finish(events);
    result.events += events.size();
    write_events();
    progress.finish();

    result.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.recording_seconds = static_cast<double>(result.frames) / info.sample_rate;
    result.realtime_factor = result.wall_seconds > 0 ? result.recording_seconds / result.wall_seconds : 0;
    result.lost_events = backend->lost_events();
    result.artifact_candidates = backend->artifact_candidates();
    result.stages = backend->stage_seconds();
    result.peak_rss_bytes = peak_rss_bytes();

    times.finish();
    channels.finish();
    amplitudes.finish();
    artifacts.finish();
    nlohmann::json meta = {
        {"format", "spikeline detect output"},
        {"n_channels", info.n_channels},
        {"sample_rate", info.sample_rate},
        {"n_frames", result.frames},
        {"n_spikes", result.events},
        {"amplitude_unit", microvolts ? "uV" : "LSB"},
        {"microvolts_per_bit", info.microvolts_per_bit},
        {"backend", backend->name()},
        {"threads", backend->name() == "reference" ? 1 : options.backend.threads},
        {"lost_events", result.lost_events},
        {"artifacts", result.artifacts},
        {"artifact_candidates", result.artifact_candidates},
        {"settings", to_json(options.settings)},
        {"recording", info.data_path.string()},
        {"probe", probe.name},
    };
    if (!info.channel_ids.empty())
        meta["channel_ids"] = info.channel_ids;
    add_rtl_section(meta, *backend);
    write_text_file(out_dir / "detect_info.json", with_input_provenance(meta, info, probe).dump(2) + "\n");
    manifest.write("detect");
    return result;
}

void add_rtl_section(nlohmann::json& meta, const Backend& backend) {
    add_rtl_section(meta, backend.rtl_cycle_facts());
}

void add_rtl_section(nlohmann::json& meta, const std::optional<RtlCycleFacts>& facts) {
    if (!facts)
        return;
    meta["rtl"] = {
        {"clock_mhz_assumed", facts->clock_mhz},
        {"clocks", facts->clocks},
        {"samples_in", facts->samples_in},
        {"samples_per_clock", facts->samples_per_clock},
        {"input_stall_clocks", facts->input_stall_clocks},
        {"latency_to", facts->sorted ? "sorted spike" : "detection event"},
        {"latency_events", facts->latency_events},
        {"latency_clocks",
         {{"median", facts->latency_median}, {"p99", facts->latency_p99}, {"max", facts->latency_max}}},
    };
}

} // namespace spikeline
