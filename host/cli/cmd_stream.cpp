#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "stream/stream_run.hpp"
#include "stream/udp.hpp"
#include "util/errors.hpp"
#include "util/output_folder.hpp"
#include "util/progress.hpp"

#include <atomic>
#include <boost/program_options.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>

namespace spikeline::cli {

namespace po = boost::program_options;

namespace {

std::atomic<bool> g_stop_requested{false};
std::atomic<int> g_stop_signal{0};

extern "C" void request_stop(int signal_number) {
    g_stop_signal.store(signal_number);
    g_stop_requested.store(true);
}

/// Exit status of a stream that ended on an error after it started, with every output kept (2 stays bad input).
constexpr int kEndedEarly = 3;

} // namespace

int cmd_stream(int argc, char** argv) {
    InputOptionValues in;
    RunOptionValues run;
    DetectOptionValues detect;
    detect.settings = sorting_detect_settings();
    sort::SortSettings settings;
    settings.calibration_s = 10;
    stream::StreamOptions options;
    std::string out, overrun = "auto", decoder_model, sorter_file, units_from, curve_secret, curve_clients, key_file;
    bool units_from_all = false;
    bool realtime = false, no_raw_copy = false, no_motion = false, no_learning = false, overwrite = false;
    std::int64_t stream_id = -1;
    std::string nwb_file;
    exporting::NwbExportOptions nwb;

    po::options_description visible(
        "spikeline stream --source SOURCE --out DIR [options]\n\n"
        "Live acquisition: detects and sorts spikes as samples arrive, publishes each spike on ZeroMQ, saves the "
        "stream (DIR/recording.bin + .meta, SpikeGLX) and a Phy folder (DIR), and writes DIR/stream.json. Units are "
        "learnt from the first --calibration-s seconds (spikes before that are published and saved as unsorted: unit "
        "-1, cluster 0), or loaded with --sorter; the sorter is saved as DIR/sorter.json. By default the units are "
        "learnt again in the background as the stream goes on, and follow the probe's motion, whose estimates are "
        "published (MOT1) and saved (DIR/motion.npy). Stops at the end of the "
        "source, after --duration, or on Ctrl-C / SIGTERM, always "
        "finalising every file. Whatever ends it (also a full disk or a source error), what was received is kept and "
        "DIR/stream.json says why it ended (ended_by). Exit status: 0 at the end of the data, after --duration or on "
        "a signal; 3 when an error ended it early (outputs kept); 2 on bad input. After a crash (SIGKILL, power "
        "loss), spikeline recover DIR finishes the folder.\n\n"
        "SOURCE: udp://HOST:PORT (implant link packets, sealed under --key, or plain with --insecure on loopback; "
        "HOST defaults to 127.0.0.1), - (raw int16 frames on stdin), "
        "or a recording: SpikeGLX .bin/.meta, raw int16, Open Ephys binary (structure.oebin or its folder)\n\n"
        "options");
    visible.add_options()                                                                            //
        ("help,h", "show this help")                                                                 //
        ("source", po::value(&options.source.source)->required(), "where samples come from (above)") //
        ("out,o", po::value(&out)->required(), "output folder")                                      //
        ("publish", po::value(&options.publish),
         "ZeroMQ endpoint for spike events, e.g. tcp://127.0.0.1:5556 (beyond loopback only with CURVE on)") //
        ("curve-secret", po::value(&curve_secret),
         "publish as a ZeroMQ CURVE server with this key pair (spikeline keygen --curve --out FILE; mode 0600): "
         "messages encrypted, only --curve-clients subscribers admitted") //
        ("curve-clients", po::value(&curve_clients),
         "folder of the public key files (*.pub) of the subscribers allowed to connect; others receive nothing") //
        ("key", po::value(&key_file),
         "udp: the link key (spikeline keygen --out FILE; mode 0600) the sender seals frames with; forged, "
         "repeated and stale frames are dropped and counted (stream.json source_counters.authentication)") //
        ("insecure", po::bool_switch(&options.source.insecure),
         "udp: accept plain, unauthenticated link packets (only on a loopback address; anyone on this machine "
         "could inject samples)") //
        ("calibration-s", po::value(&settings.calibration_s)->default_value(settings.calibration_s),
         "seconds of the stream the units are learnt from (0: no sorting, every spike unsorted)") //
        ("duration", po::value(&options.duration_s)->default_value(0.0),
         "stop after this many seconds of data (0: until the source ends or a signal)") //
        ("realtime", po::bool_switch(&realtime),
         "file sources: deliver samples at the recording's pace (without it: as fast as they are processed, each "
         "calibration awaited at the next block, so that the labels do not depend on the machine's load)") //
        ("block-ms", po::value(&options.source.block_ms)->default_value(1.0),
         "file and stdin sources: samples per block handed to the backend (the latency granularity)") //
        ("inject-loss", po::value(&options.source.inject_loss)->default_value(0.0),
         "file sources, for tests: lose each block with this probability (delivered as a link-loss gap)")  //
        ("inject-seed", po::value(&options.source.inject_seed)->default_value(1), "seed of --inject-loss") //
        ("reorder-window-ms", po::value(&options.source.reorder_window_ms)->default_value(3.0),
         "udp: the longest wait for a missing packet (data running this far ahead makes it a gap); the wait in use "
         "starts at one packet and adapts to the reordering the link shows") //
        ("fixed-reorder-window", po::bool_switch(&options.source.fixed_reorder_window),
         "udp: always wait --reorder-window-ms for a missing packet (no adaptation)") //
        ("clock-jump-ms", po::value(&options.source.clock_jump_ms)->default_value(options.source.clock_jump_ms),
         "udp: a packet whose sample clock lies further than this beyond the reorder window (ahead or behind) is a "
         "clock jump: 4 agreeing ones while the old clock is silent are a resync (recorded in stream.json, the jump "
         "not zero-filled), a lone one is dropped (clock_outliers); shorter silences are gaps") //
        ("stream-id", po::value(&stream_id),
         "udp: accept only packets of this stream id (default: lock onto the first id whose packets agree 4 times in "
         "a row); packets of other ids are counted and reported") //
        ("overrun", po::value(&overrun)->default_value(overrun),
         "when the pipeline falls behind: drop (count, handle as a gap, record in gaps.tsv), block (wait), auto (drop "
         "for "
         "udp, block otherwise)") //
        ("rt-priority", po::value(&options.realtime_priority)->default_value(0),
         "run the reader and pipeline threads as SCHED_FIFO with this priority (1..99; needs root or CAP_SYS_NICE): "
         "keeps latency low on a busy machine") //
        ("queue-blocks", po::value(&options.queue_blocks)->default_value(options.queue_blocks),
         "capacity of the source queue, in blocks") //
        ("decoder", po::value(&decoder_model),
         "decoder model (spikeline decode train) run on the live spikes: one velocity estimate per bin, published "
         "as VEL1 messages and saved to DIR/decoded_velocity.npy") //
        ("sorter", po::value(&sorter_file),
         "sorter.json of an earlier spikeline sort or stream: label every spike with its units from the start (no "
         "calibration; needed by a --decoder trained on sorted clusters)") //
        ("units-from", po::value(&units_from),
         "build the sorter from the units of a Kilosort 2.5/3/4 or Phy folder (or a spikeline sort folder), measured "
         "on the first --calibration-s seconds, so that labels keep the folder's cluster ids (docs/FORMATS.md): its "
         "good units (cluster_group.tsv, else cluster_KSLabel.tsv); no learning") //
        ("units-from-all", po::bool_switch(&units_from_all),
         "with --units-from: every cluster not labelled noise, not only the good ones") //
        ("no-motion", po::bool_switch(&no_motion),
         "do not track the probe's motion (units stay on the contacts they were learnt on; no MOT1 messages, no "
         "motion.npy): for rigidly fixed preparations") //
        ("no-learning", po::bool_switch(&no_learning),
         "learn the units once, from the calibration window (default: learn again in the background at 2, 4, 8... "
         "times it, from the spikes the units left unsorted since the last time, so that rare and late units are "
         "found)") //
        ("register-from-um", po::value(&settings.register_from_um)->default_value(settings.register_from_um),
         "with motion tracking, calibration clusters a spike seen this far (um) or more from where the probe started "
         "as it would have been seen there (negative: never)") //
        ("relearn-all", po::bool_switch(&settings.relearn_all),
         "learning re-clusters a sample of every spike so far, refining the units it had (ids kept where the labels "
         "agree) instead of only adding units") //
        ("http", po::value(&options.http)->value_name("HOST:PORT"),
         "serve a live view (raster, rate map, link health, latency, unit rates, decoded cursor) at "
         "http://HOST:PORT/, e.g. 127.0.0.1:8080 (loopback only unless --http-any; port 0: any free port)") //
        ("http-any", po::bool_switch(&options.http_any),
         "allow --http on an address other machines reach (the view has no authentication)") //
        ("no-raw-copy", po::bool_switch(&no_raw_copy),
         "do not save the stream as DIR/recording.bin (long benchmarks on a small disk; Phy then shows no raw "
         "waveforms)");
    visible.add_options() //
        ("nwb", po::value(&nwb_file),
         "when the stream ends (not early), also write DIR as this NWB 2.x file (see spikeline export-nwb)") //
        ("nwb-raw", po::bool_switch(&nwb.raw), "with --nwb: the saved stream too, as a compressed ElectricalSeries");
    add_overwrite_option(visible, overwrite);
    add_input_options(visible, in);
    run.threads = 1; // one worker keeps a core free for the reader and sink threads
    add_run_options(visible, run);
    add_detect_options(visible, detect);
    po::options_description nwb_options("NWB session (with --nwb)");
    add_nwb_session_options(nwb_options, nwb);
    visible.add(nwb_options);

    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, vm))
        return 0;
    if (vm.count("channels"))
        options.source.n_channels = in.channels;
    if (vm.count("sample-rate"))
        options.source.sample_rate = in.sample_rate;
    if (vm.count("uv-per-bit"))
        options.source.microvolts_per_bit = in.uv_per_bit;
    if (vm.count("stream-id")) {
        require(stream_id >= 0 && stream_id <= 0xFFFFFFFFll, "--stream-id must be in 0..4294967295");
        options.source.stream_id = static_cast<std::uint32_t>(stream_id);
    }
    options.source.realtime = realtime;
    options.out_dir = out;
    options.probe_file = in.probe_file;
    options.source.open_ephys_stream = in.open_ephys_stream;
    options.source.allow_truncated = in.allow_truncated;
    options.source.key_file = key_file;
    options.curve_secret = curve_secret;
    options.curve_clients = curve_clients;
    std::vector<std::filesystem::path> inputs = {options.probe_file, sorter_file,  decoder_model,
                                                 key_file,           curve_secret, units_from};
    require(!units_from_all || !units_from.empty(), "--units-from-all needs --units-from DIR");
    if (options.source.source != "-" && !stream::is_udp_url(options.source.source)) {
        // A file source is opened here first, to learn the files it is read from before anything is written (and to
        // show a truncation warning once); the stream opens it again.
        in.input = options.source.source;
        const io::RecordingInfo info = open_input(in, vm, "spikeline stream --source RECORDING --out DIR")->info();
        const std::vector<std::filesystem::path> files = input_files(in, info);
        inputs.insert(inputs.end(), files.begin(), files.end());
    }
    check_output_folder({"stream", out, inputs, overwrite});
    options.sort = settings;
    options.sort.motion = !no_motion;
    options.sort.keep_learning = !no_learning;
    options.decoder_model = decoder_model;
    options.sorter_file = sorter_file;
    options.units_from = units_from;
    options.units_from_all = units_from_all;
    options.save_raw = !no_raw_copy;
    options.detect = finish_run_options(run, vm, detect);
    require(overrun == "auto" || overrun == "drop" || overrun == "block",
            "--overrun must be drop, block or auto, not '" + overrun + "'");
    if (overrun == "drop")
        options.overrun = stream::OverrunPolicy::drop;
    else if (overrun == "block")
        options.overrun = stream::OverrunPolicy::block;
    options.status = !run.quiet && (run.progress || stderr_is_terminal());

    require(!nwb.raw || !nwb_file.empty(), "--nwb-raw needs --nwb FILE.nwb");
    require(!nwb.raw || !no_raw_copy, "--nwb-raw needs the saved stream: drop --no-raw-copy");
    require(nwb_file.empty() || overwrite || !std::filesystem::exists(nwb_file),
            nwb_file + " exists: choose another name or pass --overwrite");
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    options.stop_signal = &g_stop_signal;
    const nlohmann::json summary = stream::run_stream(options, g_stop_requested);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);

    if (!run.quiet) {
        const nlohmann::json& latency = summary["latency"];
        std::printf("spikeline stream\n");
        std::printf("  source       %s\n", summary["source"].get<std::string>().c_str());
        std::printf("  data         %d channels, %.0f Hz, %.2f s in %.2f s wall%s\n", summary["n_channels"].get<int>(),
                    summary["sample_rate"].get<double>(), summary["seconds"].get<double>(),
                    summary["wall_seconds"].get<double>(),
                    summary["interrupted"].get<bool>() ? " (stopped by signal)" : "");
        std::printf("  spikes       %llu (%llu published)\n",
                    static_cast<unsigned long long>(summary["spikes"].get<std::uint64_t>()),
                    static_cast<unsigned long long>(summary["spikes_published"].get<std::uint64_t>()));
        std::printf("  latency      p50 %.3f ms  p99 %.3f ms  max %.3f ms  (%llu spikes; arrival of sample peak+%llu "
                    "-> publication)\n",
                    latency["p50_us"].get<double>() / 1000, latency["p99_us"].get<double>() / 1000,
                    latency["max_us"].get<double>() / 1000,
                    static_cast<unsigned long long>(latency["count"].get<std::uint64_t>()),
                    static_cast<unsigned long long>(summary["need_frames"].get<std::uint64_t>()));
        std::printf("  gaps         %llu link-loss frames, %llu overrun frames (%llu blocks dropped, policy %s)\n",
                    static_cast<unsigned long long>(summary["link_gap_frames"].get<std::uint64_t>()),
                    static_cast<unsigned long long>(summary["overrun_frames"].get<std::uint64_t>()),
                    static_cast<unsigned long long>(summary["overrun_blocks"].get<std::uint64_t>()),
                    summary["overrun_policy"].get<std::string>().c_str());
        if (summary["blanked_spikes"].get<std::uint64_t>() > 0)
            std::printf("  blanked      %llu spikes in gaps or within %llu frames after one (gaps.tsv)\n",
                        static_cast<unsigned long long>(summary["blanked_spikes"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(summary["gap_blank_frames"].get<std::uint64_t>()));
        const nlohmann::json& counters = summary["source_counters"];
        if (counters.contains("datagrams"))
            std::printf("  link         %llu datagrams, %llu malformed, %llu duplicates, %llu reordered, %llu late\n",
                        static_cast<unsigned long long>(counters["datagrams"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(counters["malformed"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(counters["duplicates"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(counters["reordered"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(counters["late"].get<std::uint64_t>()));
        if (counters.contains("authentication")) {
            const nlohmann::json& sealed = counters["authentication"];
            std::printf("  secure link  %llu authentic frames, %llu rejected (%llu forged, %llu repeated, %llu stale, "
                        "%llu not sealed)\n",
                        static_cast<unsigned long long>(sealed["authentic"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(sealed["rejected"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(sealed["forged"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(sealed["repeated"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(sealed["stale"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(sealed["not_sealed"].get<std::uint64_t>()));
        }
        if (counters.contains("resyncs") &&
            (counters["resyncs"].get<std::uint64_t>() > 0 || counters["clock_outliers"].get<std::uint64_t>() > 0))
            std::printf("  clock        %llu resync(s) (source_counters.discontinuities in stream.json), %llu outlier "
                        "packet(s) dropped\n",
                        static_cast<unsigned long long>(counters["resyncs"].get<std::uint64_t>()),
                        static_cast<unsigned long long>(counters["clock_outliers"].get<std::uint64_t>()));
        if (counters.contains("wrong_stream") && counters["wrong_stream"].get<std::uint64_t>() > 0) {
            std::string ids;
            for (const auto& [id, packets] : counters["other_stream_ids"].items())
                ids += (ids.empty() ? "" : ", ") + std::string("id ") + id + ": " +
                       std::to_string(packets.get<std::uint64_t>());
            const nlohmann::json& locked = counters["stream_id"];
            std::printf("  WARNING      %llu packet(s) of other stream ids ignored (%s); %s\n",
                        static_cast<unsigned long long>(counters["wrong_stream"].get<std::uint64_t>()), ids.c_str(),
                        locked.is_null() ? "no stream locked"
                                         : ("locked on stream id " + std::to_string(locked.get<std::uint32_t>()) +
                                            " (choose one with --stream-id)")
                                               .c_str());
        }
        if (!summary["realtime_priority_error"].get<std::string>().empty())
            std::printf("  WARNING      %s\n", summary["realtime_priority_error"].get<std::string>().c_str());
        std::printf("  calibration  %s\n", summary["calibration"].dump().c_str());
        // A live or stdin source faster than real time can outrun the background calibration (a file waits for it).
        const nlohmann::json& calibration = summary["calibration"];
        if (calibration.contains("applied_at_s")) {
            const double window_s = calibration["calibration_s"].get<double>();
            const nlohmann::json& applied = calibration["applied_at_s"];
            if (applied.is_null())
                std::printf("  WARNING      the units were ready only after the data ended: every spike is unsorted "
                            "(the data ended with the calibration window, or a source faster than real time outran "
                            "the background calibration)\n");
            else if (applied.get<double>() > window_s + 5)
                std::printf("  note         the units took effect at %.1f s of data (window %.1f s): spikes before are "
                            "unsorted (a source faster than real time outran the background calibration)\n",
                            applied.get<double>(), window_s);
        }
        const nlohmann::json& learning = summary["learning"];
        if (learning["enabled"].get<bool>())
            std::printf("  learning     %d later calibration(s), %d skipped, %zu units at the end\n",
                        learning["calibrations"].get<int>(), learning["skipped"].get<int>(),
                        learning["units"].get<std::size_t>());
        const nlohmann::json& motion = summary["motion"];
        if (motion.contains("min_um"))
            std::printf("  motion       %zu estimates, displacement %.1f to %.1f um (median %.1f), %d units moved at "
                        "the end, %llu table writes (motion.npy, unit_updates.npy)\n",
                        motion["estimates"].get<std::size_t>(), motion["min_um"].get<double>(),
                        motion["max_um"].get<double>(), motion["median_um"].get<double>(),
                        motion["units_moved"].get<int>(),
                        static_cast<unsigned long long>(motion["table_writes"].get<std::uint64_t>()));
        else if (motion.contains("note"))
            std::printf("  motion       %s\n", motion["note"].get<std::string>().c_str());
        if (summary.contains("decoder")) {
            const nlohmann::json& decoded = summary["decoder"];
            std::printf("  decoder      %s on %zu %s: %llu bins, p99 %.3f ms (bin complete -> publication), %llu late "
                        "spikes\n",
                        decoded["kind"].get<std::string>().c_str(), decoded["n_inputs"].get<std::size_t>(),
                        decoded["inputs"].get<std::string>().c_str(),
                        static_cast<unsigned long long>(decoded["bins_decoded"].get<std::uint64_t>()),
                        decoded["latency"]["p99_us"].get<double>() / 1000,
                        static_cast<unsigned long long>(decoded["late_spikes"].get<std::uint64_t>()));
        }
        std::printf("  output       %s (%sPhy folder, sorter.json, gaps.tsv, stream.json%s%s, manifest.json)\n",
                    out.c_str(), no_raw_copy ? "" : "recording.bin, ",
                    motion["tracking"].get<bool>() ? ", motion.npy" : "",
                    decoder_model.empty() ? "" : ", decoded_velocity.npy");
    }
    if (!summary["ended_early"].get<bool>()) {
        if (!nwb_file.empty()) {
            const exporting::NwbExportSummary written = exporting::export_nwb(out, nwb_file, nwb);
            if (!run.quiet)
                print_nwb_summary(nwb_file, written);
        }
        return 0;
    }
    if (!nwb_file.empty())
        std::fprintf(stderr,
                     "spikeline stream: %s not written (the stream ended early): spikeline recover %s, then "
                     "spikeline sort or export-nwb\n",
                     nwb_file.c_str(), out.c_str());
    // Said even with -q: the stream did not end as asked, and the user must know what was kept.
    std::string not_finished;
    for (const nlohmann::json& item : summary["not_finished"])
        not_finished += "\n  not finished: " + item.get<std::string>();
    std::fprintf(stderr,
                 "spikeline stream: error: ended early (%s): %s\n  kept in %s: %llu frames (%.2f s) of the %llu "
                 "received%s, %llu spikes; lost: %llu frames, %llu spikes%s\n",
                 summary["ended_by"].get<std::string>().c_str(), summary["error"].get<std::string>().c_str(),
                 out.c_str(), static_cast<unsigned long long>(summary["frames_saved"].get<std::uint64_t>()),
                 summary["frames_saved"].get<double>() / summary["sample_rate"].get<double>(),
                 static_cast<unsigned long long>(summary["frames"].get<std::uint64_t>()),
                 no_raw_copy ? " (no raw copy asked for)" : " in recording.bin",
                 static_cast<unsigned long long>(summary["spikes_saved"].get<std::uint64_t>()),
                 static_cast<unsigned long long>(summary["frames_lost"].get<std::uint64_t>()),
                 static_cast<unsigned long long>(summary["spikes_lost"].get<std::uint64_t>()), not_finished.c_str());
    return kEndedEarly;
}

} // namespace spikeline::cli
