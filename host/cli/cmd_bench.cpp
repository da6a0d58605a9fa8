#include "backend/backend.hpp"
#include "backend/opencl_backend.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "io/spikeglx.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "sort/calibration.hpp"
#include "stream/stream_run.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "util/machine.hpp"
#include "util/memory.hpp"

#include <algorithm>
#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

namespace spikeline::cli {

namespace po = boost::program_options;

namespace {

struct Measurement {
    double wall_seconds = 0;
    StageSeconds stages;
    std::vector<SpikeEvent> events;
};

/// One pass over the data; with sorting parameters the sorting stage runs too (its output lands in sorted).
Measurement run_once(const BackendOptions& options, const HwParams& params, const std::vector<std::int16_t>& data,
                     std::size_t n_frames, std::shared_ptr<const HwSortParams> sorting = nullptr,
                     bool keep_snippets = false, SortOutput* sorted = nullptr) {
    auto backend = make_backend(options, params);
    if (sorting)
        backend->enable_sorting(sorting, keep_snippets);
    Measurement m;
    m.events.reserve(1 << 16);
    constexpr std::size_t kChunk = 3000; // 100 ms at 30 kHz, as the detect command reads
    const std::size_t stride = static_cast<std::size_t>(params.n_channels);
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t f = 0; f < n_frames; f += kChunk)
        backend->process(&data[f * stride], std::min(kChunk, n_frames - f), m.events);
    backend->finish(m.events);
    if (sorted)
        backend->take_sorted(*sorted);
    m.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    m.stages = backend->stage_seconds();
    return m;
}

/// User + system CPU time of this process so far (every thread, the OpenCL runtime's included).
double process_cpu_seconds() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

struct BatchMeasurement {
    double wall_seconds = 0;
    double cpu_seconds = 0; ///< on a shared machine, what the run cost whatever else ran
    std::string device;
    std::vector<SpikeEvent> first_probe_events;
};

/// N independent streams through one OpenclBatch, 100 ms per process() call as `detect` reads. Probe p reads the
/// recording from a different point (rotated by p/N of its whole 100 ms blocks), so that every launch carries N
/// different chunks without N copies of the data in memory; probe 0 reads it from the start.
BatchMeasurement run_opencl_batch(const HwParams& params, const std::vector<std::int16_t>& data, std::size_t n_frames,
                                  int probes, int platform, int device) {
    constexpr std::size_t kChunk = 3000;
    const std::size_t n_blocks = n_frames / kChunk;
    require(n_blocks >= 1, "--seconds is too short for the OpenCL batch (at least 100 ms)");
    OpenclOptions options;
    options.platform = platform;
    options.device = device;
    options.probes = probes;
    OpenclBatch batch(params, options);
    std::vector<std::vector<SpikeEvent>> events(static_cast<std::size_t>(probes));
    for (auto& e : events)
        e.reserve(1 << 16);
    const std::size_t stride = static_cast<std::size_t>(params.n_channels);
    std::vector<const std::int16_t*> pointers(static_cast<std::size_t>(probes));
    const double cpu_start = process_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t b = 0; b < n_blocks; ++b) {
        for (std::size_t p = 0; p < pointers.size(); ++p)
            pointers[p] = &data[((b + p * n_blocks / pointers.size()) % n_blocks) * kChunk * stride];
        batch.process(pointers, kChunk, events);
    }
    batch.finish(events);
    BatchMeasurement m;
    m.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    m.cpu_seconds = process_cpu_seconds() - cpu_start;
    m.device = batch.device_description();
    m.first_probe_events = std::move(events[0]);
    return m;
}

/// The live path of `spikeline stream` on data held in memory: the data goes to a temporary SpikeGLX file that the
/// stream's file source delivers at the recording's pace in 1 ms blocks (reader thread, queues, backend with sorting
/// after a calibration on the first seconds, ZeroMQ publication, sink thread). Returns stream.json's figures.
nlohmann::json run_stream_bench(const std::vector<std::int16_t>& data, std::size_t n_frames, int channels,
                                double sample_rate, double microvolts_per_bit, const DetectSettings& settings,
                                int realtime_priority) {
    struct TemporaryDirectory {
        std::filesystem::path path =
            std::filesystem::temp_directory_path() / ("spikeline-bench-stream-" + std::to_string(::getpid()));
        TemporaryDirectory() { std::filesystem::create_directories(path); }
        ~TemporaryDirectory() {
            std::error_code ignored;
            std::filesystem::remove_all(path, ignored);
        }
    } temporary;
    const std::filesystem::path recording = temporary.path / "recording.bin";
    io::SpikeGlxWriter writer(recording, channels, sample_rate, microvolts_per_bit);
    writer.write(data.data(), n_frames);
    writer.finish();

    stream::StreamOptions options;
    options.source.source = recording.string();
    options.source.realtime = true;
    options.source.block_ms = 1.0;
    options.out_dir = temporary.path / "out";
    options.publish = "tcp://127.0.0.1:*"; // any free port: the send is part of the latency
    options.detect.settings = settings;
    options.detect.backend = {"cpu", 1};
    options.sort.calibration_s = std::min(2.0, static_cast<double>(n_frames) / sample_rate / 2);
    options.save_raw = false;
    options.realtime_priority = realtime_priority;
    const std::atomic<bool> stop{false};
    return stream::run_stream(options, stop);
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

} // namespace

int cmd_bench(int argc, char** argv) {
    int channels = 1024, threads = default_threads(), repeats = 5;
    double sample_rate = 30000, seconds = 5;
    std::uint64_t seed = 1;
    std::string json_path;
    bool with_reference = false, with_sort = false, with_decoder = false, with_stream = false;
    int realtime_priority = 0;
    std::string backend = "cpu";
    int probes = 1, opencl_platform = 0, opencl_device = 0;
    std::vector<int> decoder_inputs = {1024, 4000};
    int decoder_bins = 6000, decoder_lags = 5;
    DetectOptionValues detect;
    po::options_description visible("spikeline bench [options]\n\nSimulates a recording into memory, then measures "
                                    "detection throughput per stage and per thread count\n\noptions");
    visible.add_options()                                                                                    //
        ("help,h", "show this help")                                                                         //
        ("channels", po::value(&channels)->default_value(channels), "channel count")                         //
        ("sample-rate", po::value(&sample_rate)->default_value(sample_rate), "Hz")                           //
        ("seconds", po::value(&seconds)->default_value(seconds), "seconds of simulated data held in memory") //
        ("threads", po::value(&threads)->default_value(threads), "thread count of the multithreaded run")    //
        ("backend", po::value(&backend)->default_value(backend),
         "cpu, or opencl: also time the OpenCL backend (after cpu with 1 thread, whose events it must equal)") //
        ("probes", po::value(&probes)->default_value(probes),
         "--backend opencl: independent streams (of --channels channels each) per kernel launch") //
        ("opencl-platform", po::value(&opencl_platform)->default_value(opencl_platform),
         "--backend opencl: platform index (spikeline devices)") //
        ("opencl-device", po::value(&opencl_device)->default_value(opencl_device),
         "--backend opencl: device index within the platform")                                                  //
        ("repeats", po::value(&repeats)->default_value(repeats), "runs per configuration (the median is kept)") //
        ("seed", po::value(&seed)->default_value(seed), "simulation seed")                                      //
        ("reference", po::bool_switch(&with_reference), "also time the plain L1 reference loop (slow)")         //
        ("sort", po::bool_switch(&with_sort),
         "also time calibration (on all the data) and the full detect + sort pipeline") //
        ("stream", po::bool_switch(&with_stream),
         "also run spikeline stream's live path on the data at real-time pace (1 ms blocks, sorting after a 2 s "
         "calibration) and report its latency percentiles") //
        ("rt-priority", po::value(&realtime_priority)->default_value(0),
         "--stream: SCHED_FIFO priority of the stream's reader and pipeline threads (needs root or CAP_SYS_NICE)") //
        ("json", po::value(&json_path), "write the figures to this JSON file")                                     //
        ("decoder", po::bool_switch(&with_decoder),
         "instead of detection: time the velocity decoders (training, step per bin) on synthetic sessions") //
        ("decoder-inputs", po::value(&decoder_inputs)->multitoken()->default_value(decoder_inputs, "1024 4000"),
         "--decoder: input counts (units or channels) to time") //
        ("decoder-bins", po::value(&decoder_bins)->default_value(decoder_bins),
         "--decoder: 20 ms bins per session (training set and timed steps)") //
        ("decoder-lags", po::value(&decoder_lags)->default_value(decoder_lags), "--decoder: Wiener filter lags");
    add_detect_options(visible, detect);
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, vm))
        return 0;
    require(seconds > 0 && seconds <= 600, "--seconds must be in (0, 600]");
    require(repeats >= 1, "--repeats must be at least 1");
    if (with_decoder)
        return run_decoder_bench(decoder_inputs, decoder_bins, decoder_lags, repeats, seed, json_path);
    require(threads >= 1 && threads <= 256, "--threads must be between 1 and 256");
    require(channels >= 1, "--channels must be positive");
    require(backend == "cpu" || backend == "opencl", "bench --backend must be cpu or opencl (got '" + backend + "')");
    require(probes >= 1 && probes <= 4096, "--probes must be between 1 and 4096");
    require(probes == 1 || backend == "opencl", "--probes needs --backend opencl");

    sim::SimulationConfig config;
    config.n_channels = channels;
    config.sample_rate = sample_rate;
    config.duration_s = seconds;
    config.seed = seed;
    const probe::Probe probe = probe::default_probe(channels);
    sim::Simulator simulator(config, probe);
    const std::size_t n_frames = simulator.info().n_frames;
    std::vector<std::int16_t> data(n_frames * static_cast<std::size_t>(channels));
    std::fprintf(stderr, "bench: simulating %.1f s of %d channels into memory (%.0f MB)...\n", seconds, channels,
                 static_cast<double>(data.size() * 2) / 1e6);
    for (std::size_t done = 0; done < n_frames;) {
        const std::size_t n = simulator.read(&data[done * static_cast<std::size_t>(channels)], n_frames - done);
        require(n > 0, "simulator ended early");
        done += n;
        simulator.take_spikes();
    }
    const DetectSettings settings = finish_detect_settings(detect);
    const auto params = make_detect_params(settings, probe, sample_rate);
    const double data_seconds = static_cast<double>(n_frames) / sample_rate;

    // Every figure carries the machine: the same code ran 1.7x faster on a Zen 5 than on a Zen 4 of the same kind.
    const MachineInfo machine = this_machine();
    nlohmann::json report = {{"channels", channels},
                             {"sample_rate", sample_rate},
                             {"seconds", data_seconds},
                             {"repeats", repeats},
                             {"seed", seed},
                             {"hardware_threads", default_threads()},
                             {"cpu", machine.cpu_model},
                             {"machine", machine.to_json()}};
    auto measure = [&](const BackendOptions& options, int runs) {
        std::vector<double> walls, bandpass, detect_stage, dedup;
        Measurement last;
        for (int r = 0; r < runs; ++r) {
            last = run_once(options, *params, data, n_frames);
            walls.push_back(last.wall_seconds);
            bandpass.push_back(last.stages.bandpass);
            detect_stage.push_back(last.stages.detect);
            dedup.push_back(last.stages.dedup);
        }
        const double wall = median(walls);
        nlohmann::json j = {{"backend", options.name},
                            {"threads", options.threads},
                            {"wall_seconds_median", wall},
                            {"x_realtime", data_seconds / wall},
                            {"spikes", last.events.size()}};
        if (options.name == "cpu")
            j["stages_x_realtime"] = {{"bandpass_and_reference_sums", data_seconds / median(bandpass)},
                                      {"reference_noise_threshold_align", data_seconds / median(detect_stage)},
                                      {"dedup", data_seconds / median(dedup)}};
        std::printf("  %-9s %2d thread(s): %7.1fx real time (median of %d, %.3f s for %.1f s of data), %zu spikes\n",
                    options.name.c_str(), options.threads, data_seconds / wall, runs, wall, data_seconds,
                    last.events.size());
        if (options.name == "cpu")
            std::printf("            stages: band-pass %.1fx, reference+noise+threshold+align %.1fx, dedup %.1fx\n",
                        data_seconds / median(bandpass), data_seconds / median(detect_stage),
                        data_seconds / median(dedup));
        return std::make_pair(j, last.events);
    };

    std::printf("spikeline bench: %d channels @ %.0f Hz, %.1f s simulated (seed %llu), %d hardware threads\n"
                "  machine: %s\n",
                channels, sample_rate, data_seconds, static_cast<unsigned long long>(seed), default_threads(),
                machine.summary().c_str());
    auto [single, single_events] = measure({"cpu", 1}, repeats);
    report["cpu_1_thread"] = single;
    if (threads > 1) {
        auto [multi, multi_events] = measure({"cpu", threads}, repeats);
        const double speedup = multi["x_realtime"].get<double>() / single["x_realtime"].get<double>();
        multi["speedup_vs_1_thread"] = speedup;
        multi["events_identical_to_1_thread"] = multi_events == single_events;
        report["cpu_n_threads"] = multi;
        std::printf("            speed-up with %d threads: %.2fx; events identical to 1 thread: %s\n", threads, speedup,
                    multi_events == single_events ? "yes" : "NO");
    }
    if (backend == "opencl") {
        // One probe, then (with --probes N) N per launch; each the median of --repeats runs.
        for (int n : probes > 1 ? std::vector<int>{1, probes} : std::vector<int>{1}) {
            std::vector<double> walls, cpu_times;
            BatchMeasurement last;
            for (int r = 0; r < repeats; ++r) {
                last = run_opencl_batch(*params, data, n_frames, n, opencl_platform, opencl_device);
                walls.push_back(last.wall_seconds);
                cpu_times.push_back(last.cpu_seconds);
            }
            const double wall = median(walls), cpu_time = median(cpu_times);
            const double covered = static_cast<double>(n_frames / 3000 * 3000) / sample_rate;
            const bool identical = n_frames % 3000 == 0 ? last.first_probe_events == single_events : false;
            std::printf("  opencl %d probe(s) on %s: %7.1fx real time per probe, %7.1fx in total (median of %d, "
                        "%.3f s)%s\n",
                        n, last.device.c_str(), covered / wall, n * covered / wall, repeats, wall,
                        n_frames % 3000 == 0 ? (identical ? "; events identical to cpu" : "; events DIFFER from cpu")
                                             : "");
            std::printf("            %.3f CPU seconds (all threads): %.1fx real time per probe per CPU second\n",
                        cpu_time, covered / cpu_time);
            report[n == 1 ? "opencl_1_probe" : "opencl_n_probes"] = {{"probes", n},
                                                                     {"device", last.device},
                                                                     {"wall_seconds_median", wall},
                                                                     {"x_realtime_per_probe", covered / wall},
                                                                     {"x_realtime_total", n * covered / wall},
                                                                     {"cpu_seconds_median", cpu_time},
                                                                     {"x_realtime_per_cpu_second", covered / cpu_time},
                                                                     {"events_identical_to_cpu", identical}};
        }
    }
    if (with_reference) {
        auto [reference, reference_events] = measure({"reference", 1}, 1);
        reference["events_identical_to_cpu"] = reference_events == single_events;
        report["reference"] = reference;
        std::printf("            reference events identical to cpu: %s\n",
                    reference_events == single_events ? "yes" : "NO");
    }
    if (with_sort) {
        // Calibration: a pass that keeps snippets, then the host clustering; then detect + sort passes.
        const auto geometry = sort::make_sort_params(sort::SortSettings{}, probe, sample_rate, *params);
        SortOutput window;
        const auto start = std::chrono::steady_clock::now();
        const Measurement pass = run_once({"cpu", 1}, *params, data, n_frames, geometry, true, &window);
        const auto clustering_start = std::chrono::steady_clock::now();
        sort::SortSettings sort_settings;
        sort_settings.sample_rate = sample_rate;
        const sort::Calibration calibration = sort::calibrate(*geometry, window, sort_settings);
        const auto end = std::chrono::steady_clock::now();
        const double clustering = std::chrono::duration<double>(end - clustering_start).count();
        const double calibration_wall = std::chrono::duration<double>(end - start).count();
        std::printf("  calibration on %.1f s: %.2f s (snippet pass %.2f s, clustering %.2f s of %zu snippets), %zu "
                    "units\n",
                    data_seconds, calibration_wall, pass.wall_seconds, clustering, window.spikes.size(),
                    calibration.units.size());
        report["calibration"] = {{"wall_seconds", calibration_wall},
                                 {"clustering_seconds", clustering},
                                 {"snippets", window.spikes.size()},
                                 {"units", calibration.units.size()}};
        for (int t : threads > 1 ? std::vector<int>{1, threads} : std::vector<int>{1}) {
            std::vector<double> walls;
            std::size_t labelled = 0, total = 0;
            for (int r = 0; r < repeats; ++r) {
                SortOutput sorted;
                walls.push_back(
                    run_once({"cpu", t}, *params, data, n_frames, calibration.params, false, &sorted).wall_seconds);
                total = sorted.spikes.size();
                labelled = static_cast<std::size_t>(std::count_if(sorted.spikes.begin(), sorted.spikes.end(),
                                                                  [](const auto& x) { return x.unit >= 0; }));
            }
            const double wall = median(walls);
            std::printf("  detect+sort %2d thread(s): %7.1fx real time (median of %d), %zu spikes, %zu labelled\n", t,
                        data_seconds / wall, repeats, total, labelled);
            report[t == 1 ? "sort_cpu_1_thread" : "sort_cpu_n_threads"] = {
                {"threads", t}, {"x_realtime", data_seconds / wall}, {"spikes", total}, {"labelled", labelled}};
        }
    }
    if (with_stream) {
        std::fprintf(stderr, "bench: streaming %.1f s at real-time pace...\n", data_seconds);
        const nlohmann::json summary = run_stream_bench(
            data, n_frames, channels, sample_rate, simulator.info().microvolts_per_bit, settings, realtime_priority);
        const nlohmann::json& latency = summary["latency"];
        std::printf("  stream (1 ms blocks, real-time pace, cpu 1 thread, sorting after %.1f s): latency p50 %.3f ms, "
                    "p99 %.3f ms, max %.3f ms over %llu spikes; %llu overrun blocks\n",
                    summary["calibration"]["calibration_s"].get<double>(), latency["p50_us"].get<double>() / 1000,
                    latency["p99_us"].get<double>() / 1000, latency["max_us"].get<double>() / 1000,
                    static_cast<unsigned long long>(latency["count"].get<std::uint64_t>()),
                    static_cast<unsigned long long>(summary["overrun_blocks"].get<std::uint64_t>()));
        report["stream"] = {{"latency", latency},
                            {"latency_definition", summary["latency_definition"]},
                            {"spikes", summary["spikes"]},
                            {"calibration", summary["calibration"]},
                            {"overrun_blocks", summary["overrun_blocks"]},
                            {"queue_high_water", summary["queue_high_water"]},
                            {"realtime_priority", realtime_priority},
                            {"realtime_priority_error", summary["realtime_priority_error"]}};
    }
    // Each figure names its machine too, so that one copied out of the file still says where it was measured.
    for (auto& [name, figure] : report.items())
        if (figure.is_object() && name != "machine")
            figure["machine"] = machine.summary();
    report["peak_rss_bytes"] = peak_rss_bytes();
    report["settings"] = to_json(settings);
    std::printf("  peak memory %.0f MB (includes the %.0f MB of data held in memory)\n",
                static_cast<double>(peak_rss_bytes()) / 1e6, static_cast<double>(data.size() * 2) / 1e6);
    if (!json_path.empty())
        write_text_file(json_path, report.dump(2) + "\n");
    return 0;
}

} // namespace spikeline::cli
