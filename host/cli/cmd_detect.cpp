#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/several_recordings.hpp"
#include "io/recording.hpp"
#include "pipeline/detect_run.hpp"
#include "util/errors.hpp"
#include "util/output_folder.hpp"

#include <boost/program_options.hpp>
#include <cstdio>

namespace spikeline::cli {

namespace po = boost::program_options;

int cmd_detect(int argc, char** argv) {
    InputOptionValues in;
    RunOptionValues run;
    DetectOptionValues detect;
    std::string out;
    std::vector<std::string> inputs;
    bool overwrite = false;

    po::options_description visible(
        "spikeline detect INPUT... --out DIR [options]\n\n"
        "INPUT: a SpikeGLX .bin or mtscomp .cbin (with its .meta), a folder holding one, or a raw int16 "
        "file (with --channels and --sample-rate)\n"
        "Several INPUTs: each is detected on its own (its own probe, rate and parameters) into DIR/<its name>; "
        "--backend opencl runs them in the same kernel launches, other backends one after another; a recording that "
        "fails is named and skipped\n\noptions");
    visible.add_options()("help,h", "show this help")("out,o", po::value(&out)->required(), "output folder");
    add_overwrite_option(visible, overwrite);
    add_input_options(visible, in);
    add_channel_selection_options(visible, in);
    add_run_options(visible, run);
    add_detect_options(visible, detect);
    po::options_description all;
    all.add(visible).add_options()("input", po::value(&inputs));
    po::positional_options_description positional;
    positional.add("input", -1);

    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, all, positional, vm))
        return 0;
    if (inputs.size() > 1) {
        const DetectRunOptions options = finish_run_options(run, vm, detect);
        return detect_recordings(inputs, in, vm, options, out, overwrite, run.quiet);
    }
    if (!inputs.empty())
        in.input = inputs.front();
    SelectedInput selected = open_selected_input(in, vm, "spikeline detect INPUT --out DIR");
    const io::RecordingInfo& info = selected.source->info();
    check_output_folder({"detect", out, input_files(in, info), overwrite});
    const probe::Probe& probe = selected.probe;
    const std::string& probe_origin = selected.probe_origin;
    DetectRunOptions options = finish_run_options(run, vm, detect);
    exclude_within_selection(options.settings, selected.channels);
    const DetectRunResult result = run_detection(*selected.source, probe, options, out);

    if (!run.quiet) {
        std::printf("spikeline detect\n");
        std::printf("  input      %s (%s)\n", in.input.c_str(), info.format.c_str());
        std::printf("  recording  %d channels, %.0f Hz, %.2f s\n", info.n_channels, info.sample_rate,
                    result.recording_seconds);
        if (!selected.channels.empty())
            std::printf("             selected with --%s (ids in the outputs are the recording's)\n",
                        in.shanks.empty() ? "channels-subset" : "shanks");
        else if (info.file_channels() > info.n_channels)
            std::printf("             %d non-neural channel(s) of the file skipped (%s)\n",
                        info.file_channels() - info.n_channels,
                        info.skipped_channels.empty() ? "SpikeGLX sync" : info.skipped_channels.front().second.c_str());
        std::printf("  probe      %s\n", probe_origin.c_str());
        if (!info.gain_source.empty())
            std::printf("  gain       %.4g uV/bit (%s)\n", info.microvolts_per_bit, info.gain_source.c_str());
        if (run.backend == "cpu")
            std::printf("  backend    cpu, %d thread(s)\n", run.threads);
        else // --threads applies to the cpu backend only
            std::printf("  backend    %s\n", run.backend.c_str());
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
