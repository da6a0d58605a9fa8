#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "stream/replay.hpp"
#include "stream/udp.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "util/output_folder.hpp"

#include <atomic>
#include <boost/program_options.hpp>
#include <csignal>
#include <cstdio>

namespace spikeline::cli {

namespace po = boost::program_options;

namespace {

std::atomic<bool> g_replay_stop{false};

extern "C" void request_replay_stop(int) {
    g_replay_stop.store(true);
}

} // namespace

int cmd_replay(int argc, char** argv) {
    InputOptionValues in;
    stream::ReplayOptions options;
    std::string json_path, key_file;
    bool quiet = false;

    po::options_description visible(
        "spikeline replay INPUT --to udp://HOST:PORT [options]\n\n"
        "Plays a recording as implant link packets (docs/FORMATS.md section 9) at real-time pace, as a headstage "
        "would, optionally injecting faults. Packets are sealed under --key (authenticated, encrypted), or plain "
        "with --insecure to a loopback address.\n\n"
        "INPUT: a SpikeGLX .bin (with its .meta), a raw int16 file (with --channels and --sample-rate), or an Open "
        "Ephys binary recording (structure.oebin or its folder)\n\noptions");
    visible.add_options()                                                                                    //
        ("help,h", "show this help")                                                                         //
        ("to", po::value(&options.to)->required(), "destination, udp://HOST:PORT")                           //
        ("packet-ms", po::value(&options.packet_ms)->default_value(1.0), "samples per packet, in ms")        //
        ("speed", po::value(&options.speed)->default_value(1.0), "pace: 1 real time, 0 as fast as possible") //
        ("loss", po::value(&options.loss)->default_value(0.0), "probability that a packet is lost")          //
        ("reorder", po::value(&options.reorder)->default_value(0.0),
         "probability that a packet is delayed past the next one")                                                  //
        ("duplicate", po::value(&options.duplicate)->default_value(0.0), "probability that a packet is sent twice") //
        ("corrupt", po::value(&options.corrupt)->default_value(0.0),
         "probability that a byte of a packet is flipped (the receiver's CRC check rejects it)")    //
        ("seed", po::value(&options.seed)->default_value(1), "seed of the fault injection")         //
        ("stream-id", po::value(&options.stream_id)->default_value(1), "stream id in every packet") //
        ("first-sample", po::value(&options.first_sample)->default_value(0),
         "link sample index of the recording's first frame")                                         //
        ("duration", po::value(&options.duration_s)->default_value(0.0), "seconds to play (0: all)") //
        ("loop", po::value(&options.loops)->default_value(1),
         "play the recording this many times back to back, sample indices continuing (0: until Ctrl-C)") //
        ("rt-priority", po::value(&options.realtime_priority)->default_value(0),
         "send from a SCHED_FIFO thread with this priority (1..99; needs root or CAP_SYS_NICE), so that the pace holds "
         "on a busy machine") //
        ("key", po::value(&key_file),
         "seal every packet under this link key (spikeline keygen --out FILE; the receiver: stream --key FILE)") //
        ("insecure", po::bool_switch(&options.insecure),
         "send plain, unauthenticated packets (only to a loopback address)")                                     //
        ("json", po::value(&json_path), "write the counts (and the first samples of lost packets) to this file") //
        ("quiet,q", po::bool_switch(&quiet), "no summary");
    add_input_options(visible, in);
    po::options_description all;
    all.add(visible).add_options()("input", po::value(&options.input.source));
    po::positional_options_description positional;
    positional.add("input", 1);
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, all, positional, vm))
        return 0;
    require(!options.input.source.empty(), "no recording given: spikeline replay INPUT --to udp://HOST:PORT");
    if (vm.count("channels"))
        options.input.n_channels = in.channels;
    if (vm.count("sample-rate"))
        options.input.sample_rate = in.sample_rate;
    if (vm.count("uv-per-bit"))
        options.input.microvolts_per_bit = in.uv_per_bit;
    options.key_file = key_file;
    options.input.open_ephys_stream = in.open_ephys_stream;
    options.input.allow_truncated = in.allow_truncated;
    if (options.input.source != "-" && !stream::is_udp_url(options.input.source)) {
        // Opened here first to show a truncation warning and to keep --json off the recording's files.
        in.input = options.input.source;
        const io::RecordingInfo info = open_input(in, vm, "spikeline replay INPUT --to udp://HOST:PORT")->info();
        check_output_file(json_path, "--json", input_files(in, info));
    }

    struct sigaction action {};
    action.sa_handler = request_replay_stop;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    const nlohmann::json result = stream::run_replay(options, g_replay_stop);
    if (!json_path.empty())
        write_text_file(json_path, result.dump(2) + "\n");
    if (!quiet)
        std::printf(
            "spikeline replay: %llu packets (%llu samples x %d channels), %llu sent, %llu lost, %llu reordered, "
            "%llu duplicated, %llu corrupted, %llu behind schedule, %.2f s\n",
            static_cast<unsigned long long>(result["packets"].get<std::uint64_t>()),
            static_cast<unsigned long long>(result["samples_per_packet"].get<std::uint64_t>()),
            result["n_channels"].get<int>(), static_cast<unsigned long long>(result["sent"].get<std::uint64_t>()),
            static_cast<unsigned long long>(result["lost"].get<std::uint64_t>()),
            static_cast<unsigned long long>(result["reordered"].get<std::uint64_t>()),
            static_cast<unsigned long long>(result["duplicated"].get<std::uint64_t>()),
            static_cast<unsigned long long>(result["corrupted"].get<std::uint64_t>()),
            static_cast<unsigned long long>(result["late_packets"].get<std::uint64_t>()),
            result["wall_seconds"].get<double>());
    return 0;
}

} // namespace spikeline::cli
