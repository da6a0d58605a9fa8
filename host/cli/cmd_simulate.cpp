#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "util/errors.hpp"
#include "util/output_folder.hpp"
#include "util/progress.hpp"

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

namespace spikeline::cli {

namespace po = boost::program_options;

namespace {

// The drift model the options describe; options that the model does not use are errors rather than silently
// ignored. The values themselves are checked with the rest of the configuration.
sim::DriftModel drift_options(const po::variables_map& vm, const std::string& name, double speed, double amplitude_um,
                              double period_s, double step_s) {
    const bool speed_given = !vm["drift"].defaulted();
    sim::DriftKind kind = sim::DriftKind::none;
    if (vm.count("drift-model"))
        kind = sim::parse_drift_kind(name);
    else if (speed_given && speed != 0.0)
        kind = sim::DriftKind::triangle;
    const std::string model = std::string("--drift-model ") + sim::to_string(kind);
    require(!speed_given || kind == sim::DriftKind::triangle || (kind == sim::DriftKind::none && speed == 0.0),
            "--drift UM_PER_S is the speed of the triangle drift and does not apply to " + model);
    require(kind != sim::DriftKind::none ||
                (!vm.count("drift-um") && !vm.count("drift-period-s") && !vm.count("drift-step-s")),
            "--drift-um, --drift-period-s and --drift-step-s need a --drift-model (or --drift UM_PER_S)");
    const bool periodic = kind == sim::DriftKind::sine || kind == sim::DriftKind::nonrigid ||
                          kind == sim::DriftKind::ramp || kind == sim::DriftKind::wander;
    require(!vm.count("drift-period-s") || periodic,
            "--drift-period-s applies to the sine, nonrigid, wander and ramp drift models, not to " + model +
                (kind == sim::DriftKind::triangle ? " (its period is 4 amplitude / speed: set --drift UM_PER_S)" : ""));
    require(!vm.count("drift-step-s") || kind == sim::DriftKind::step,
            "--drift-step-s applies to --drift-model step only, not to " + model);

    sim::DriftModel drift = sim::default_drift_model(kind);
    if (speed_given && kind == sim::DriftKind::triangle)
        drift.speed_um_per_s = speed;
    if (vm.count("drift-um"))
        drift.amplitude_um = amplitude_um;
    if (vm.count("drift-period-s"))
        drift.period_s = period_s;
    if (vm.count("drift-step-s"))
        drift.step_s = step_s;
    return drift;
}

} // namespace

int cmd_simulate(int argc, char** argv) {
    sim::SimulationConfig config;
    std::string out, probe_file, drift_model;
    double drift_speed = 0.0, drift_um = 0.0, drift_period_s = 0.0, drift_step_s = 0.0;
    bool quiet = false, overwrite = false;
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
        ("drift", po::value(&drift_speed)->default_value(0.0),
         "triangle drift at this speed along the shank (um/s, 0: none); same as --drift-model triangle") //
        ("drift-model", po::value(&drift_model),
         "none|triangle|sine|ramp|step|nonrigid|wander: motion of the units along the probe (wander: irregular, with "
         "a 1.3 Hz pulsation); writes ground_truth/motion_*.npy") //
        ("drift-um", po::value(&drift_um),
         "drift amplitude A in um (triangle 25, sine 20, ramp 40, step 15, nonrigid 20 at the highest contact, "
         "wander 20 at most)") //
        ("drift-period-s", po::value(&drift_period_s),
         "sine and nonrigid: period (default 60 s); wander: its slowest period (60 s); ramp: time to reach A "
         "(default 600 s)")                                                                               //
        ("drift-step-s", po::value(&drift_step_s), "step: time of the step (default: half the duration)") //
        ("behavior", po::bool_switch(&config.behavior),
         "add a 2-D cursor task: writes ground_truth/kinematics.npy and tuning.tsv; a share of units is "
         "cosine-tuned to the cursor velocity") //
        ("tuned-fraction", po::value(&config.tuned_fraction)->default_value(config.tuned_fraction),
         "share of units tuned to velocity (with --behavior)") //
        ("bursts", po::value(&config.burst_fraction)->default_value(config.burst_fraction),
         "share of units firing bursts of 2-4 attenuating spikes 3-8 ms apart (0: none)") //
        ("shape-variation", po::value(&config.shape_variation)->default_value(config.shape_variation),
         "how far each unit's waveform turns into a second shape of its own away from the soma (0-1; 0: one shape "
         "on every contact, widened and delayed)") //
        ("background-units", po::value(&config.n_background_units)->default_value(config.n_background_units),
         "neurons 40-100 um from the probe, SNR 0.5-2.5, that are not in the ground truth: the background activity "
         "of real recordings (0: none)") //
        ("quiet,q", po::bool_switch(&quiet), "no progress line and no summary");
    add_overwrite_option(visible, overwrite);
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, vm))
        return 0;

    config.drift = drift_options(vm, drift_model, drift_speed, drift_um, drift_period_s, drift_step_s);

    check_output_folder({"simulate", out, {probe_file}, overwrite});
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
