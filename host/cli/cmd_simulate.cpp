#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "util/errors.hpp"
#include "util/progress.hpp"

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

namespace spikeline::cli {

namespace po = boost::program_options;

int cmd_simulate(int argc, char** argv) {
    sim::SimulationConfig config;
    std::string out, probe_file;
    bool quiet = false;
    po::options_description visible("spikeline simulate --out DIR [options]\n\n"
                                    "Writes DIR/recording.bin + recording.meta (SpikeGLX), DIR/probe.json and "
                                    "DIR/ground_truth/\n\noptions");
    visible.add_options()                                                                                     //
        ("help,h", "show this help")                                                                          //
        ("out,o", po::value(&out)->required(), "output folder")                                               //
        ("channels", po::value(&config.n_channels)->default_value(config.n_channels), "channel count")        //
        ("sample-rate", po::value(&config.sample_rate)->default_value(config.sample_rate), "Hz")              //
        ("duration", po::value(&config.duration_s)->default_value(config.duration_s), "seconds")              //
        ("units", po::value(&config.n_units)->default_value(config.n_units), "units (0: 3 per 10 channels)")  //
        ("seed", po::value(&config.seed)->default_value(config.seed), "random seed (same seed, same bytes)")  //
        ("probe", po::value(&probe_file), "probeinterface JSON (default: built-in probe for --channels)")     //
        ("noise-uv", po::value(&config.noise_uv)->default_value(config.noise_uv), "noise RMS in 300-6000 Hz") //
        ("uv-per-bit", po::value(&config.microvolts_per_bit)->default_value(config.microvolts_per_bit),
         "ADC gain") //
        ("drift", po::value(&config.drift_um_per_s)->default_value(config.drift_um_per_s),
         "slow drift speed along the shank (um/s, 0: none)") //
        ("behavior", po::bool_switch(&config.behavior),
         "add a 2-D cursor task: writes ground_truth/kinematics.npy and tuning.tsv; a share of units is "
         "cosine-tuned to the cursor velocity") //
        ("tuned-fraction", po::value(&config.tuned_fraction)->default_value(config.tuned_fraction),
         "share of units tuned to velocity (with --behavior)") //
        ("quiet,q", po::bool_switch(&quiet), "no progress line and no summary");
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, vm))
        return 0;

    probe::Probe probe;
    if (!probe_file.empty()) {
        probe = probe::read_probeinterface(probe_file);
        if (vm["channels"].defaulted())
            config.n_channels = probe.n_channels();
    } else {
        require(config.n_channels > 0, "--channels must be positive");
        probe = probe::default_probe(config.n_channels);
    }
    ProgressLine progress(!quiet && stderr_is_terminal());
    const auto start = std::chrono::steady_clock::now();
    sim::simulate_to_folder(config, probe, out, [&](double fraction) {
        char line[120];
        std::snprintf(line, sizeof line, "simulate: %.0f%%", 100.0 * fraction);
        progress.update(line);
    });
    progress.finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!quiet)
        std::printf("spikeline simulate: %d channels, %.0f Hz, %.1f s, seed %llu -> %s (%.1f s, %.1fx real time)\n",
                    config.n_channels, config.sample_rate, config.duration_s,
                    static_cast<unsigned long long>(config.seed), out.c_str(), seconds, config.duration_s / seconds);
    return 0;
}

} // namespace spikeline::cli
