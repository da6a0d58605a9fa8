#include "cli/commands.hpp"
#include "util/errors.hpp"

#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace {

const char* const kUsage = R"(spikeline - real-time spike detection and sorting for high-channel-count probes

usage: spikeline <command> [options]      (spikeline <command> --help for its options)

commands:
  simulate   write a simulated recording with ground truth (SpikeGLX .bin/.meta, probe.json, ground_truth/)
  detect     detect spikes in a recording; writes spike_times/channels/amplitudes.npy
  sort       detect and sort spikes into units; writes a Phy folder
  compare    score detected or sorted spikes against ground truth
  bench      measure throughput (x real time) per stage on simulated data held in memory
  devices    list the FPGA cards XRT can use (--backend xrt)
  decode     train (decode train) and score (decode eval) Kalman/Wiener decoders of cursor velocity
  stream     live acquisition: udp link, stdin or a file -> sorted spikes on ZeroMQ, Phy folder, SpikeGLX copy
  replay     play a recording as implant link packets over UDP (real-time pace, fault injection)
  recover    after a crash, finish the files a stream (or detect, sort) left: whole frames, one spike count
  export-nwb write a sort folder as an NWB 2.x file (units, electrodes, probe; --raw: the recording too)
  info       what spikeline makes of a recording: channels, gain, probe geometry and their sources (--json, --svg)
  report     one self-contained HTML page of a sort: probe and drift maps, waveforms, ISI, metrics (--ground-truth)
  keygen     make a link key (stream/replay --key) or a ZeroMQ CURVE key pair (--curve), mode 0600
  verify     check an output folder against its manifest.json (SHA-256): names changed or missing files
  version    print the version, the git commit it was built from and the compiler (also: --version)
)";

#ifndef SPIKELINE_VERSION
#error "SPIKELINE_VERSION must be defined by the build (project(... VERSION ...))"
#endif

void print_version() {
    const char* const commit = SPIKELINE_GIT_COMMIT;
    std::printf("spikeline %s\ncommit %s\ncompiler %s\n", SPIKELINE_VERSION, commit[0] ? commit : "unknown",
#if defined(__clang__)
                "clang " __clang_version__
#elif defined(__GNUC__)
                "gcc " __VERSION__
#else
                "unknown"
#endif
    );
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
        std::fputs(kUsage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const std::string command = argv[1];
    if (command == "--version" || command == "version") {
        print_version();
        return 0;
    }
    try {
        if (command == "simulate")
            return spikeline::cli::cmd_simulate(argc - 1, argv + 1);
        if (command == "detect")
            return spikeline::cli::cmd_detect(argc - 1, argv + 1);
        if (command == "sort")
            return spikeline::cli::cmd_sort(argc - 1, argv + 1);
        if (command == "compare")
            return spikeline::cli::cmd_compare(argc - 1, argv + 1);
        if (command == "bench")
            return spikeline::cli::cmd_bench(argc - 1, argv + 1);
        if (command == "devices")
            return spikeline::cli::cmd_devices(argc - 1, argv + 1);
        if (command == "decode")
            return spikeline::cli::cmd_decode(argc - 1, argv + 1);
        if (command == "stream")
            return spikeline::cli::cmd_stream(argc - 1, argv + 1);
        if (command == "replay")
            return spikeline::cli::cmd_replay(argc - 1, argv + 1);
        if (command == "recover")
            return spikeline::cli::cmd_recover(argc - 1, argv + 1);
        if (command == "info")
            return spikeline::cli::cmd_info(argc - 1, argv + 1);
        if (command == "report")
            return spikeline::cli::cmd_report(argc - 1, argv + 1);
        if (command == "export-nwb")
            return spikeline::cli::cmd_export_nwb(argc - 1, argv + 1);
        if (command == "keygen")
            return spikeline::cli::cmd_keygen(argc - 1, argv + 1);
        if (command == "verify")
            return spikeline::cli::cmd_verify(argc - 1, argv + 1);
        std::fprintf(stderr, "spikeline: unknown command '%s'\n\n%s", command.c_str(), kUsage);
        return 2;
    } catch (const spikeline::InputError& e) {
        std::fprintf(stderr, "spikeline %s: error: %s\n", command.c_str(), e.what());
        return 2;
    } catch (const boost::program_options::error& e) {
        std::fprintf(stderr, "spikeline %s: %s (see spikeline %s --help)\n", command.c_str(), e.what(),
                     command.c_str());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "spikeline %s: internal error: %s\n", command.c_str(), e.what());
        return 1;
    }
}
