#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "io/recording.hpp"
#include "pipeline/detect_run.hpp"
#include "util/errors.hpp"
#include "util/progress.hpp"

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

namespace spikeline::cli {

namespace po = boost::program_options;

int cmd_detect(int argc, char** argv) {
    std::string input, out, probe_file, backend_name = "cpu";
    int threads = default_threads();
    double chunk_ms = 0;
    std::string xclbin;
    unsigned device = 0;
    int buffers = 2;
    int channels = 0;
    double sample_rate = 0, uv_per_bit = 0;
    bool quiet = false, progress = false;
    DetectOptionValues detect;

    po::options_description visible("spikeline detect INPUT --out DIR [options]\n\n"
                                    "INPUT: a SpikeGLX .bin (with its .meta), a folder holding one, or a raw int16 "
                                    "file (with --channels and --sample-rate)\n\noptions");
    visible.add_options()                                                                                          //
        ("help,h", "show this help")                                                                               //
        ("out,o", po::value(&out)->required(), "output folder")                                                    //
        ("probe", po::value(&probe_file), "probeinterface JSON (default: probe.json beside INPUT, else built-in)") //
        ("backend", po::value(&backend_name)->default_value(backend_name),
         "cpu, reference (plain L1 loop) or xrt (FPGA)")                                              //
        ("threads", po::value(&threads)->default_value(threads), "worker threads (cpu backend)")      //
        ("channels", po::value(&channels), "channel count (raw files)")                               //
        ("sample-rate", po::value(&sample_rate), "sample rate in Hz (raw files)")                     //
        ("uv-per-bit", po::value(&uv_per_bit), "gain in microvolts per bit (overrides the metadata)") //
        ("chunk-ms", po::value(&chunk_ms),
         "frames handed to the backend at a time; for xrt one kernel run, i.e. the latency (default: 100 for cpu "
         "and reference, 1 for xrt)")                                                                 //
        ("xclbin", po::value(&xclbin), "FPGA image built by 'make -C kernels xclbin' (xrt backend)")  //
        ("device", po::value(&device)->default_value(device), "XRT device index (spikeline devices)") //
        ("buffers", po::value(&buffers)->default_value(buffers),
         "buffer sets rotated by the xrt backend: 2 double, 3 triple buffering")                              //
        ("progress", po::bool_switch(&progress), "draw the progress line even when stderr is not a terminal") //
        ("quiet,q", po::bool_switch(&quiet), "no progress line and no summary");
    add_detect_options(visible, detect);
    po::options_description all;
    all.add(visible).add_options()("input", po::value(&input));
    po::positional_options_description positional;
    positional.add("input", 1);

    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, all, positional, vm))
        return 0;
    require(!input.empty(), "no recording given: spikeline detect INPUT --out DIR (see --help)");

    io::OpenOptions open;
    if (vm.count("channels"))
        open.n_channels = channels;
    if (vm.count("sample-rate"))
        open.sample_rate = sample_rate;
    if (vm.count("uv-per-bit"))
        open.microvolts_per_bit = uv_per_bit;
    auto source = io::open_recording(input, open);
    const io::RecordingInfo& info = source->info();
    std::string probe_origin;
    const probe::Probe probe = resolve_probe(probe_file, info, &probe_origin);

    DetectRunOptions options;
    options.backend = {backend_name, threads};
    options.settings = finish_detect_settings(detect);
    options.chunk_ms = vm.count("chunk-ms") ? chunk_ms : (backend_name == "xrt" ? 1.0 : 100.0);
    options.xrt.xclbin = xclbin;
    options.xrt.device_index = device;
    options.xrt.buffer_sets = buffers;
    require(backend_name != "xrt" || !xclbin.empty(),
            "--backend xrt needs --xclbin FILE (built with 'make -C kernels xclbin PLATFORM=...')");
    options.progress = !quiet && (progress || stderr_is_terminal());
    const DetectRunResult result = run_detection(*source, probe, options, out);

    if (!quiet) {
        std::printf("spikeline detect\n");
        std::printf("  input      %s (%s)\n", input.c_str(), info.format.c_str());
        std::printf("  recording  %d channels, %.0f Hz, %.2f s\n", info.n_channels, info.sample_rate,
                    result.recording_seconds);
        std::printf("  probe      %s\n", probe_origin.c_str());
        std::printf("  backend    %s, %d thread(s)\n", backend_name.c_str(), threads);
        std::printf("  spikes     %llu (%.1f per second, %.2f per channel per second)\n",
                    static_cast<unsigned long long>(result.events),
                    result.recording_seconds > 0 ? static_cast<double>(result.events) / result.recording_seconds : 0.0,
                    result.recording_seconds > 0
                        ? static_cast<double>(result.events) / result.recording_seconds / info.n_channels
                        : 0.0);
        std::printf("  speed      %.1fx real time (%.2f s wall)\n", result.realtime_factor, result.wall_seconds);
        std::printf("  memory     %.0f MB peak\n", static_cast<double>(result.peak_rss_bytes) / 1e6);
        if (result.lost_events > 0)
            std::printf("  WARNING    %llu spikes lost to a full de-duplication queue or kernel output buffer\n",
                        static_cast<unsigned long long>(result.lost_events));
        std::printf("  output     %s/{spike_times,spike_channels,spike_amplitudes}.npy, detect_info.json\n",
                    out.c_str());
    }
    return 0;
}

} // namespace spikeline::cli
