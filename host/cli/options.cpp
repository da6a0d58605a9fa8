#include "cli/options.hpp"

#include "io/channel_selection.hpp"
#include "util/channel_list.hpp"
#include "util/errors.hpp"
#include "util/progress.hpp"

#include <algorithm>
#include <iostream>
#include <thread>

namespace spikeline::cli {

namespace po = boost::program_options;

bool parse_command_line(int argc, char** argv, const po::options_description& visible,
                        const po::options_description& all, const po::positional_options_description& positional,
                        po::variables_map& vm) {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
        std::cout << visible << "\n";
        return false;
    }
    po::notify(vm);
    return true;
}

bool parse_command_line(int argc, char** argv, const po::options_description& visible, po::variables_map& vm) {
    return parse_command_line(argc, argv, visible, visible, po::positional_options_description(), vm);
}

void add_detect_options(po::options_description& options, DetectOptionValues& values) {
    DetectSettings& s = values.settings;
    options.add_options()                                                                                    //
        ("band-low", po::value(&s.band_low_hz)->default_value(s.band_low_hz), "band-pass low edge (Hz)")     //
        ("band-high", po::value(&s.band_high_hz)->default_value(s.band_high_hz), "band-pass high edge (Hz)") //
        ("threshold", po::value(&s.threshold_sigma)->default_value(s.threshold_sigma),
         "detection threshold in robust noise sigmas (median|x|/0.6745)") //
        ("polarity", po::value(&values.polarity)->default_value(values.polarity),
         "spike polarity: negative, positive or both")                                                          //
        ("align-ms", po::value(&s.align_ms)->default_value(s.align_ms), "search for the peak after a crossing") //
        ("dead-time-ms", po::value(&s.dead_time_ms)->default_value(s.dead_time_ms),
         "per-channel dead time after a peak") //
        ("dedup-ms", po::value(&s.dedup_ms)->default_value(s.dedup_ms),
         "+- time within which neighbouring detections are merged") //
        ("dedup-radius-um", po::value(&s.dedup_radius_um)->default_value(s.dedup_radius_um),
         "radius within which detections are merged (at most the 16 nearest contacts)") //
        ("dedup-near-um", po::value(&s.dedup_near_um)->default_value(s.dedup_near_um),
         "within this radius a larger detection always absorbs a smaller one; beyond it only a larger detection "
         "that is not later absorbs one (lobes are dropped within --dedup-radius-um)") //
        ("shadow-ms", po::value(&s.shadow_ms)->default_value(s.shadow_ms),
         "after a spike, smaller detections within --dedup-radius-um and this time are its lobes (0: off)") //
        ("shadow-ratio", po::value(&s.shadow_ratio)->default_value(s.shadow_ratio),
         "a detection below this fraction of a preceding nearby spike is a lobe (higher: fewer false events from late "
         "troughs on far contacts, fewer real spikes after large ones; docs/ACCURACY.md)") //
        ("spatial-threshold", po::value(&s.spatial_sigma)->default_value(s.spatial_sigma),
         "a sample beyond --spatial-gate x the threshold is also a crossing when its sum with its nearest contacts "
         "is beyond this many sigmas of that sum's noise (0: off)") //
        ("spatial-gate", po::value(&s.spatial_gate)->default_value(s.spatial_gate),
         "fraction of the threshold a sample must reach for the spatial rule") //
        ("warmup-ms", po::value(&s.warmup_ms)->default_value(s.warmup_ms),
         "no detection while the noise estimate settles") //
        ("reference-clip", po::value(&s.reference_clip)->default_value(s.reference_clip),
         "each channel's share of its shank's mean is clipped to this many times its median |x|, so that large "
         "spikes on a few contacts do not move it (0: the plain mean)") //
        ("no-common-reference", po::bool_switch(&values.no_common_reference),
         "do not subtract the per-shank mean (also turns artefact rejection off: it works per shank)") //
        ("no-artifact-rejection", po::bool_switch(&values.no_artifact_rejection),
         "keep crossings that are coincident on a large part of a shank (stimulation, movement artefacts)") //
        ("artifact-fraction", po::value(&s.artifact_fraction)->default_value(s.artifact_fraction),
         "an artefact crosses on more than this fraction of a shank (and on more contacts than lie within "
         "--artifact-reach-um of any one) within --artifact-window-ms") //
        ("artifact-window-ms", po::value(&s.artifact_window_ms)->default_value(s.artifact_window_ms),
         "the crossings of one artefact come within this time (at most --dedup-ms + 1 sample)") //
        ("artifact-reach-um", po::value(&s.artifact_reach_um)->default_value(s.artifact_reach_um),
         "one spike can cross on every contact within this distance of its peak: more crossings than 1.5 x "
         "those contacts are needed for an artefact") //
        ("artifact-blank-ms", po::value(&s.artifact_blank_ms)->default_value(s.artifact_blank_ms),
         "after an artefact, the shank's detections are dropped for this long") //
        ("exclude-channels", po::value(&values.excluded_channels),
         "channels neither detected nor referenced, e.g. 5,10,100:110 (bad or reference channels)");
}

DetectSettings finish_detect_settings(DetectOptionValues& values) {
    values.settings.polarity = parse_polarity(values.polarity);
    values.settings.common_reference = !values.no_common_reference;
    values.settings.artifact_rejection = !values.no_artifact_rejection && !values.no_common_reference;
    values.settings.excluded_channels = parse_channel_list(values.excluded_channels, "--exclude-channels");
    return values.settings;
}

void add_input_options(po::options_description& options, InputOptionValues& v) {
    options.add_options()                                                                                       //
        ("probe", po::value(&v.probe_file), "probeinterface JSON (default: probe.json, ~snsGeomMap, built-in)") //
        ("channels", po::value(&v.channels), "channel count (raw files)")                                       //
        ("sample-rate", po::value(&v.sample_rate), "sample rate in Hz (raw files)")                             //
        ("uv-per-bit", po::value(&v.uv_per_bit), "gain in microvolts per bit (overrides the metadata)")         //
        ("oe-stream", po::value(&v.open_ephys_stream),
         "Open Ephys: the stream's folder_name or stream_name (default: the first)") //
        ("allow-truncated", po::bool_switch(&v.allow_truncated),
         "SpikeGLX: read the whole frames of a .bin cut short (e.g. by a crash) instead of refusing it; warns how "
         "much is missing") //
        ("force-non-neural", po::bool_switch(&v.force_non_neural),
         "Open Ephys: read a stream without electrode channels (NI-DAQ, ADC) instead of refusing it; volts per bit "
         "become microvolts per bit");
}

void add_channel_selection_options(po::options_description& options, InputOptionValues& v) {
    options.add_options() //
        ("shanks", po::value(&v.shanks),
         "process only these shanks of the probe, e.g. 0,1 (channel ids in the outputs stay the recording's)") //
        ("channels-subset", po::value(&v.channels_subset),
         "process only these channels, e.g. 0:383,400 (ids in the outputs and of --exclude-channels are the "
         "recording's); the detector takes at most 1024 channels at a time");
}

SelectedInput open_selected_input(const InputOptionValues& v, const po::variables_map& vm, const std::string& usage) {
    SelectedInput selected;
    selected.source = open_input(v, vm, usage);
    selected.probe = resolve_probe(v.probe_file, selected.source->info(), &selected.probe_origin);
    require(v.shanks.empty() || v.channels_subset.empty(),
            "--shanks and --channels-subset both select channels: pass one of them");
    if (!v.shanks.empty())
        selected.channels = io::channels_on_shanks(selected.probe, parse_channel_list(v.shanks, "--shanks"));
    else if (!v.channels_subset.empty())
        selected.channels = parse_channel_list(v.channels_subset, "--channels-subset");

    const std::string limit =
        " but the detector processes at most " + std::to_string(HwConfig::max_channels) + " at a time";
    require(!selected.channels.empty() || selected.probe.n_channels() <= HwConfig::max_channels,
            v.input + ": the recording has " + std::to_string(selected.probe.n_channels()) + " channels" + limit +
                ": process it in parts, e.g. " + io::suggest_selection(selected.probe, HwConfig::max_channels) +
                " (channel ids in the outputs stay the recording's)");
    require(selected.channels.size() <= static_cast<std::size_t>(HwConfig::max_channels),
            v.input + ": the selection has " + std::to_string(selected.channels.size()) + " channels" + limit +
                ": select fewer shanks or channels");
    if (!selected.channels.empty()) {
        selected.source = io::select_channels(std::move(selected.source), selected.channels);
        selected.probe = io::probe_subset(selected.probe, selected.channels);
    }
    return selected;
}

void exclude_within_selection(DetectSettings& settings, const std::vector<int>& selection) {
    if (selection.empty())
        return;
    std::vector<int> local;
    for (const int channel : settings.excluded_channels)
        if (const auto it = std::lower_bound(selection.begin(), selection.end(), channel);
            it != selection.end() && *it == channel)
            local.push_back(static_cast<int>(it - selection.begin()));
    settings.excluded_channels = std::move(local);
}

std::unique_ptr<io::RecordingSource> open_input(const InputOptionValues& v, const po::variables_map& vm,
                                                const std::string& usage) {
    require(!v.input.empty(), "no recording given: " + usage + " (see --help)");
    io::OpenOptions open;
    if (vm.count("channels"))
        open.n_channels = v.channels;
    if (vm.count("sample-rate"))
        open.sample_rate = v.sample_rate;
    if (vm.count("uv-per-bit"))
        open.microvolts_per_bit = v.uv_per_bit;
    open.open_ephys_stream = v.open_ephys_stream;
    open.allow_truncated = v.allow_truncated;
    open.allow_non_neural = v.force_non_neural;
    auto source = io::open_recording(v.input, open);
    if (!source->info().warning.empty())
        std::cerr << "spikeline: warning: " << source->info().warning << "\n";
    return source;
}

std::vector<std::filesystem::path> input_files(const InputOptionValues& v, const io::RecordingInfo& info) {
    std::vector<std::filesystem::path> files = {v.input, v.probe_file, info.data_path};
    if (!info.data_path.empty()) {
        std::filesystem::path meta = info.data_path;
        files.push_back(meta.replace_extension(".meta"));
        if (info.data_path.extension() == ".cbin")
            files.push_back(meta.replace_extension(".ch"));
    }
    return files;
}

void add_overwrite_option(po::options_description& options, bool& overwrite) {
    options.add_options()("overwrite", po::bool_switch(&overwrite),
                          "write into a folder that holds results of another command (or of an earlier stream)");
}

void add_run_options(po::options_description& options, RunOptionValues& v) {
    if (v.threads <= 0)
        v.threads = default_threads();
    options.add_options() //
        ("backend", po::value(&v.backend)->default_value(v.backend),
         "cpu, reference (plain L1 loop), verilator (the RTL, simulated), opencl (GPU or CPU through OpenCL) or xrt "
         "(FPGA)")                                                                                   //
        ("threads", po::value(&v.threads)->default_value(v.threads), "worker threads (cpu backend)") //
        ("chunk-ms", po::value(&v.chunk_ms),
         "frames handed to the backend at a time; for xrt one kernel run, i.e. the latency (default: 100 for cpu "
         "and reference, 1 for xrt)")                                                                     //
        ("xclbin", po::value(&v.xclbin), "FPGA image built by 'make -C kernels xclbin' (xrt backend)")    //
        ("device", po::value(&v.device)->default_value(v.device), "XRT device index (spikeline devices)") //
        ("buffers", po::value(&v.buffers)->default_value(v.buffers),
         "buffer sets rotated by the xrt backend: 2 double, 3 triple buffering") //
        ("kernel", po::value(&v.kernel),
         "xrt: the kernel to run when the xclbin holds several (spikeline_rtl, spikeline_sort, spikeline_detect)") //
        ("compute-units", po::value(&v.compute_units)->default_value(v.compute_units),
         "xrt: compute units of the kernel to use, each on its own block of whole shanks (0: all in the xclbin)") //
        ("opencl-platform", po::value(&v.opencl_platform)->default_value(v.opencl_platform),
         "OpenCL platform index (spikeline devices; opencl backend)") //
        ("opencl-device", po::value(&v.opencl_device)->default_value(v.opencl_device),
         "OpenCL device index within the platform (opencl backend)")                                            //
        ("progress", po::bool_switch(&v.progress), "draw the progress line even when stderr is not a terminal") //
        ("quiet,q", po::bool_switch(&v.quiet), "no progress line and no summary");
}

DetectRunOptions finish_run_options(const RunOptionValues& v, const po::variables_map& vm, DetectOptionValues& detect) {
    DetectRunOptions options;
    options.backend = {v.backend, v.threads, v.opencl_platform, v.opencl_device};
    options.settings = finish_detect_settings(detect);
    options.chunk_ms = vm.count("chunk-ms") ? v.chunk_ms : (v.backend == "xrt" ? 1.0 : 100.0);
    options.xrt.xclbin = v.xclbin;
    options.xrt.device_index = v.device;
    options.xrt.buffer_sets = v.buffers;
    options.xrt.kernel = v.kernel;
    options.xrt.compute_units = v.compute_units;
    require(v.backend != "xrt" || !v.xclbin.empty(),
            "--backend xrt needs --xclbin FILE (built with 'make -C kernels xclbin PLATFORM=...')");
    options.progress = !v.quiet && (v.progress || stderr_is_terminal());
    return options;
}

int default_threads() {
    const unsigned cores = std::thread::hardware_concurrency();
    return cores == 0 ? 1 : static_cast<int>(cores);
}

} // namespace spikeline::cli
