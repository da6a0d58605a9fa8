#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/several_recordings.hpp"
#include "io/channel_selection.hpp"
#include "pipeline/sort_run.hpp"
#include "util/errors.hpp"
#include "util/output_folder.hpp"

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

namespace spikeline::cli {

namespace po = boost::program_options;

int cmd_sort(int argc, char** argv) {
    const auto command_start = std::chrono::steady_clock::now();
    InputOptionValues in;
    RunOptionValues run;
    DetectOptionValues detect;
    detect.settings = sorting_detect_settings();
    sort::SortSettings settings;
    std::string out;
    std::vector<std::string> recordings;
    std::string sorter_file;
    std::string units_from;
    bool units_from_all = false;
    bool no_motion = false;
    bool no_learning = false;
    bool one_pass = false;
    bool overwrite = false;
    std::string nwb_file;
    exporting::NwbExportOptions nwb;

    po::options_description visible(
        "spikeline sort INPUT --out DIR [options]\n\n"
        "Detects and sorts: learns the units from the first --calibration-s seconds, then labels every spike of the "
        "recording with the backend's sorting stage. DIR becomes a Phy folder (phy template-gui DIR/params.py) and "
        "DIR/sorter.json holds the sorter, which --sorter reuses so that later runs keep its unit ids.\n\n"
        "INPUT: a SpikeGLX .bin (with its .meta), a folder holding one, or a raw int16 file (with --channels and "
        "--sample-rate)\nSeveral INPUTs: each is sorted on its own into DIR/<its name>, one after another; a "
        "recording that fails is named and skipped\n\noptions");
    visible.add_options()("help,h", "show this help")("out,o", po::value(&out)->required(), "output (Phy) folder");
    add_overwrite_option(visible, overwrite);
    add_input_options(visible, in);
    add_channel_selection_options(visible, in);
    add_run_options(visible, run);
    visible.add_options() //
        ("sorter", po::value(&sorter_file),
         "label with this sorter (a sorter.json from an earlier sort) instead of calibrating: same units, unit ids "
         "and template ids; the probe, sample rate, detection and snippet settings must be the ones it was "
         "calibrated with") //
        ("units-from", po::value(&units_from),
         "build the sorter from the units of a Kilosort 2.5/3/4 or Phy folder (or a spikeline sort folder), measured "
         "on the first --calibration-s seconds, so that labels keep the folder's cluster ids (docs/FORMATS.md): "
         "its good units (cluster_group.tsv, else cluster_KSLabel.tsv)") //
        ("units-from-all", po::bool_switch(&units_from_all),
         "with --units-from: every cluster not labelled noise, not only the good ones") //
        ("calibration-s", po::value(&settings.calibration_s)->default_value(settings.calibration_s),
         "seconds of data the units are learnt from") //
        ("recalibrate-every", po::value(&settings.recalibrate_every_s)->default_value(0.0),
         "learn again every S seconds to follow drift; matching units keep their ids (0: off)")                      //
        ("snippet-pre-ms", po::value(&settings.pre_ms)->default_value(settings.pre_ms), "snippet before the peak")   //
        ("snippet-post-ms", po::value(&settings.post_ms)->default_value(settings.post_ms), "snippet after the peak") //
        ("min-cluster-spikes", po::value(&settings.min_cluster_spikes)->default_value(settings.min_cluster_spikes),
         "smaller clusters of a calibration stay unsorted") //
        ("split-dip", po::value(&settings.split_dip)->default_value(settings.split_dip),
         "a cluster splits when the density between its two halves is below this share of theirs") //
        ("gate-scale", po::value(&settings.gate_scale)->default_value(settings.gate_scale),
         "a unit accepts spikes up to this multiple of its members' 95th-percentile feature distance") //
        ("merge-distance", po::value(&settings.merge_distance)->default_value(settings.merge_distance),
         "clusters on neighbouring channels whose mean snippets differ less than this (normalised) are one unit") //
        ("merge-candidate-distance",
         po::value(&settings.merge_candidate_distance)->default_value(settings.merge_candidate_distance),
         "also merge clusters whose mean snippets differ less than this when their spikes form one cloud: helps "
         "under fast drift (e.g. 0.2), costs accuracy on stable recordings (0: off)")                             //
        ("nwb", po::value(&nwb_file), "also write the result as this NWB 2.x file (see spikeline export-nwb)")    //
        ("nwb-raw", po::bool_switch(&nwb.raw), "with --nwb: the recording too, as a compressed ElectricalSeries") //
        ("no-motion", po::bool_switch(&no_motion),
         "do not track the probe's motion (units stay on the contacts they were learnt on): for rigidly fixed "
         "preparations") //
        ("no-learning", po::bool_switch(&no_learning),
         "learn the units once, from the calibration window, in one pass (default: learn them from a sample of the "
         "whole recording at its end, then label it again; with --one-pass, learn again at 2, 4, 8... times the "
         "window, from the spikes the units left unsorted since the last time, so that rare and late units are "
         "found)") //
        ("one-pass", po::bool_switch(&one_pass),
         "learn and label in one pass, as stream does live: faster, but a spike keeps the label of the sorter of its "
         "time (default: a first pass learns, at the end from a sample of the whole recording, and keeps every "
         "spike's snippet on disk, about 1.5 kB each; a second labels them all with that sorter; one pass anyway "
         "with --sorter, --units-from, --no-learning, --recalibrate-every or the xrt backend)") //
        ("burst-merge", po::value(&settings.burst_follow_share)->default_value(settings.burst_follow_share),
         "clusters with one waveform shape at two amplitudes are one bursting unit when, beyond chance, at least this "
         "share of the smaller one's spikes come 1-25 ms after the larger one's (0: off)") //
        ("moved-merge-distance",
         po::value(&settings.moved_merge_distance)->default_value(settings.moved_merge_distance),
         "with motion tracking, clusters whose spikes were recorded at separate displacements of the probe (5 um or "
         "more apart) are one unit when their mean snippets differ less than this (one neuron seen at two positions; "
         "0: off)") //
        ("register-from-um", po::value(&settings.register_from_um)->default_value(settings.register_from_um),
         "with motion tracking, calibration clusters a spike seen this far (um) or more from where the probe started "
         "as it would have been seen there (negative: never)") //
        ("relearn-all", po::bool_switch(&settings.relearn_all),
         "with --one-pass: learning re-clusters every spike of the sample, refining the units it had (ids kept where "
         "the labels agree); default: it clusters only the spikes the units left unsorted and adds what it finds "
         "(the first of two passes always re-clusters)");
    add_detect_options(visible, detect);
    po::options_description nwb_options("NWB session (with --nwb)");
    add_nwb_session_options(nwb_options, nwb);
    visible.add(nwb_options);
    po::options_description all;
    all.add(visible).add_options()("input", po::value(&recordings));
    po::positional_options_description positional;
    positional.add("input", -1);

    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, all, positional, vm))
        return 0;
    if (recordings.size() > 1)
        return sort_recordings(argc, argv, all, positional, vm, recordings, out, run.quiet);
    if (!recordings.empty())
        in.input = recordings.front();
    const std::string usage = "spikeline sort INPUT --out DIR";
    SelectedInput selected = open_selected_input(in, vm, usage);
    auto first = std::move(selected.source);
    const io::RecordingInfo info = first->info();
    std::vector<std::filesystem::path> inputs = input_files(in, info);
    inputs.emplace_back(sorter_file);
    inputs.emplace_back(units_from);
    require(!units_from_all || !units_from.empty(), "--units-from-all needs --units-from DIR");
    check_output_folder({"sort", out, inputs, overwrite});
    const probe::Probe& probe = selected.probe;
    const std::string& probe_origin = selected.probe_origin;
    SortRunOptions options;
    options.detect = finish_run_options(run, vm, detect);
    exclude_within_selection(options.detect.settings, selected.channels);
    options.sort = settings;
    options.sort.motion = !no_motion;
    options.sort.keep_learning = !no_learning;
    options.sort.threads = options.detect.backend.threads; // the calibration clusters between the backend's passes
    options.sorter_file = sorter_file;
    options.relabel = !one_pass;
    if (!units_from.empty())
        options.units_from = std::make_shared<const sort::OfflineUnits>(
            sort::read_offline_units(units_from, info, probe, {units_from_all}));
    auto open_source = [&]() {
        if (first)
            return std::move(first);
        auto source = open_input(in, vm, usage);
        return selected.channels.empty() ? std::move(source)
                                         : io::select_channels(std::move(source), selected.channels);
    };
    require(!nwb.raw || !nwb_file.empty(), "--nwb-raw needs --nwb FILE.nwb");
    require(nwb_file.empty() || overwrite || !std::filesystem::exists(nwb_file),
            nwb_file + " exists: choose another name or pass --overwrite");
    const SortRunResult result = run_sorting(open_source, probe, options, out);
    std::optional<exporting::NwbExportSummary> nwb_summary;
    const auto nwb_start = std::chrono::steady_clock::now();
    if (!nwb_file.empty())
        nwb_summary = exporting::export_nwb(out, nwb_file, nwb);
    const auto command_end = std::chrono::steady_clock::now();
    const double nwb_seconds = std::chrono::duration<double>(command_end - nwb_start).count();
    const double command_seconds = std::chrono::duration<double>(command_end - command_start).count();

    if (!run.quiet) {
        int good = 0;
        for (const auto& q : result.quality)
            good += q.group == "good";
        std::printf("spikeline sort\n");
        std::printf("  input        %s (%s)\n", in.input.c_str(), info.format.c_str());
        std::printf("  recording    %d channels, %.0f Hz, %.2f s\n", info.n_channels, info.sample_rate,
                    result.recording_seconds);
        if (!selected.channels.empty())
            std::printf("               selected with --%s (channel_map.npy holds the recording's ids)\n",
                        in.shanks.empty() ? "channels-subset" : "shanks");
        else if (info.file_channels() > info.n_channels)
            std::printf("               %d non-neural channel(s) of the file skipped (SpikeGLX sync)\n",
                        info.file_channels() - info.n_channels);
        std::printf("  probe        %s\n", probe_origin.c_str());
        if (!info.gain_source.empty())
            std::printf("  gain         %.4g uV/bit (%s)\n", info.microvolts_per_bit, info.gain_source.c_str());
        std::printf("  backend      %s, %d thread(s)\n", run.backend.c_str(), run.threads);
        if (options.units_from) {
            const sort::UnitsFromReport& r = result.units_from;
            std::printf("  units from   %s (%s layout, %zu units%s%s), %zu window spikes, %.2f s wall (building the "
                        "sorter %.2f s)\n",
                        units_from.c_str(), options.units_from->layout.c_str(), options.units_from->units.size(),
                        options.units_from->labels_file.empty() ? "" : " chosen by ",
                        options.units_from->labels_file.c_str(), result.calibration_spikes,
                        result.calibration_wall_seconds, result.clustering_wall_seconds);
            if (r.spike_times_used)
                std::printf("               its spike times match this recording (offset %+.0f samples): %zu window "
                            "spikes labelled; %d units measured from their spikes, %d from their templates\n",
                            r.spike_time_offset, r.matched_spikes, r.units_from_spikes, r.units_from_templates);
            else
                std::printf("               its spike times do not match this recording: %d units from their "
                            "templates\n",
                            r.units_from_templates);
            if (r.units_dropped > 0)
                std::printf("  WARNING      %d unit(s) left out: their channels' classifier tables were full\n",
                            r.units_dropped);
        } else if (result.relabelled)
            std::printf("  calibration  basis from %zu spikes (%.2f s wall); units from a sample of %zu spikes of the "
                        "whole recording (%.2f s)\n",
                        result.calibration_spikes, result.calibration_wall_seconds, result.end_learning_spikes,
                        result.end_learning_wall_seconds);
        else if (result.sorter_loaded.empty())
            std::printf("  calibration  %zu spikes, %.2f s wall (clustering %.2f s), %d calibration(s)\n",
                        result.calibration_spikes, result.calibration_wall_seconds, result.clustering_wall_seconds,
                        result.n_calibrations);
        else
            std::printf("  sorter       loaded from %s (learnt from %zu spikes), no calibration\n",
                        result.sorter_loaded.c_str(), result.calibration_spikes);
        if (result.relabelled)
            std::printf(
                "  passes       2: the first detected and learnt (%.2f s wall), the second labelled every spike "
                "again with its last sorter (%.2f s)\n",
                result.first_pass_wall_seconds, result.wall_seconds - result.first_pass_wall_seconds);
        if (result.n_recalibrations_skipped > 0)
            std::printf("  recalibration skipped %d time(s), the units of the previous calibration kept: %s\n",
                        result.n_recalibrations_skipped, result.last_skip_reason.c_str());
        if (result.motion_estimates > 0)
            std::printf("  motion       %zu estimates, displacement %.1f to %.1f um (median %.1f), %d units moved at "
                        "the end, %llu table writes (motion.npy, unit_updates.npy)\n",
                        result.motion_estimates, result.motion_min_um, result.motion_max_um, result.motion_median_um,
                        result.units_moved, static_cast<unsigned long long>(result.table_writes));
        else if (!result.motion_note.empty())
            std::printf("  motion       %s\n", result.motion_note.c_str());
        std::printf("  units        %d (%d good)\n", result.n_units, good);
        std::printf("  spikes       %llu, %llu unsorted (%.1f%%)\n", static_cast<unsigned long long>(result.spikes),
                    static_cast<unsigned long long>(result.unsorted),
                    result.spikes ? 100.0 * static_cast<double>(result.unsorted) / static_cast<double>(result.spikes)
                                  : 0.0);
        std::printf("  speed        %.1fx real time (%.2f s wall, the whole command)\n",
                    command_seconds > 0 ? result.recording_seconds / command_seconds : 0.0, command_seconds);
        std::printf("  stages      ");
        if (result.sorter_loaded.empty())
            std::printf(" calibration %.2f s,", result.calibration_wall_seconds);
        std::printf(" labelling %.2f s%s, writing %.2f s", result.labelling_wall_seconds,
                    result.window_labelled_on_host ? " (the window's spikes from the calibration's snippets)" : "",
                    result.writing_wall_seconds);
        if (nwb_summary)
            std::printf(", NWB %.2f s", nwb_seconds);
        std::printf("\n");
        std::printf("  memory       %.0f MB peak\n", static_cast<double>(result.peak_rss_bytes) / 1e6);
        if (result.lost_events > 0)
            std::printf("  WARNING      %llu spikes lost to a full queue\n",
                        static_cast<unsigned long long>(result.lost_events));
        std::printf("  output       %s (Phy: phy template-gui %s/params.py)\n", out.c_str(), out.c_str());
        std::printf("  sorter file  %s (reuse: --sorter)\n", result.sorter_written.c_str());
        if (nwb_summary)
            print_nwb_summary(nwb_file, *nwb_summary);
    }
    return 0;
}

} // namespace spikeline::cli
