#include "sim/simulator.hpp"

#include "io/npy.hpp"
#include "io/spikeglx.hpp"
#include "sim/behavior.hpp"
#include "sim/units.hpp"
#include "util/atomic_file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>

namespace spikeline::sim {

std::vector<double> motion_depths_um(const probe::Probe& probe) {
    double low = 0.0, high = 0.0;
    for (std::size_t c = 0; c < probe.contacts.size(); ++c) {
        low = c == 0 ? probe.contacts[c].y_um : std::min(low, probe.contacts[c].y_um);
        high = c == 0 ? probe.contacts[c].y_um : std::max(high, probe.contacts[c].y_um);
    }
    const std::size_t steps = static_cast<std::size_t>(std::ceil((high - low) / kMotionDepthStepUm));
    std::vector<double> depths;
    for (std::size_t k = 0; k <= std::max<std::size_t>(steps, 1); ++k)
        depths.push_back(low + static_cast<double>(k) * kMotionDepthStepUm);
    return depths;
}

void simulate_to_folder(const SimulationConfig& config, const probe::Probe& probe, const std::filesystem::path& out_dir,
                        const std::function<void(double)>& progress) {
    Simulator simulator(config, probe); // checks the configuration before anything is created
    const std::filesystem::path truth_dir = out_dir / "ground_truth";
    ensure_directory(out_dir);
    ensure_directory(truth_dir);
    if (progress)
        progress(0.0);

    const io::RecordingInfo& info = simulator.info();
    io::SpikeGlxWriter writer(out_dir / "recording.bin", config.n_channels, config.sample_rate,
                              config.microvolts_per_bit, &probe);
    io::NpyAppendWriter<std::uint64_t> times(truth_dir / "spike_times.npy");
    io::NpyAppendWriter<std::int32_t> unit_ids(truth_dir / "spike_units.npy");
    // The motion rows are a function of time only, so they are written as the recording goes, one row per step.
    const DriftField drift(config.drift, probe, config.duration_s, config.sample_rate);
    std::vector<double> motion_depths;
    std::vector<double> motion_row;
    std::optional<io::NpyAppendWriter<double>> motion_times;
    std::optional<io::NpyAppendWriter<double>> motion;
    std::uint64_t next_motion_step = 0;
    if (drift.active()) {
        motion_depths = motion_depths_um(probe);
        motion_row.resize(motion_depths.size());
        motion_times.emplace(truth_dir / "motion_times_s.npy");
        motion.emplace(truth_dir / "motion_um.npy", std::vector<std::size_t>{motion_depths.size()});
    }

    // ~32 MB of frames per chunk whatever the channel count.
    const std::size_t chunk_frames = std::max<std::size_t>(
        1, (std::size_t{32} << 20) / (sizeof(std::int16_t) * static_cast<std::size_t>(config.n_channels)));
    std::vector<std::int16_t> chunk(chunk_frames * static_cast<std::size_t>(config.n_channels));
    std::uint64_t written = 0;
    std::vector<std::uint64_t> spike_times;
    std::vector<std::int32_t> spike_units;
    // 40 bytes per 10 ms (14 MB per hour): kept until the end because the .npy header needs the row count.
    std::vector<double> kinematics;
    while (true) {
        const std::size_t got = simulator.read(chunk.data(), chunk_frames);
        if (got == 0)
            break;
        writer.write(chunk.data(), got);
        written += got;
        spike_times.clear();
        spike_units.clear();
        for (const GroundTruthSpike& spike : simulator.take_spikes()) {
            spike_times.push_back(spike.sample);
            spike_units.push_back(spike.unit);
        }
        for (const KinematicsSample& k : simulator.take_kinematics())
            kinematics.insert(kinematics.end(), {k.time_s, k.x_cm, k.y_cm, k.vx_cm_s, k.vy_cm_s});
        times.append(spike_times.data(), spike_times.size());
        unit_ids.append(spike_units.data(), spike_units.size());
        while (motion && static_cast<double>(next_motion_step) * kMotionStepS * config.sample_rate <
                             static_cast<double>(written)) {
            const double time_s = static_cast<double>(next_motion_step) * kMotionStepS;
            for (std::size_t d = 0; d < motion_depths.size(); ++d)
                motion_row[d] = drift.at_time(time_s, motion_depths[d]);
            motion_times->append(time_s);
            motion->append(motion_row.data(), motion_row.size());
            ++next_motion_step;
        }
        if (progress)
            progress(static_cast<double>(written) / static_cast<double>(info.n_frames));
    }
    writer.finish();
    times.finish();
    unit_ids.finish();
    if (motion) {
        motion_times->finish();
        motion->finish();
        io::write_npy(truth_dir / "motion_depths_um.npy", motion_depths);
    }
    probe::write_probeinterface(probe, out_dir / "probe.json");

    std::ostringstream table;
    const bool bursts = config.burst_fraction > 0; // the column only then: default outputs stay as they were
    table << "unit_id\tpeak_channel\tsnr\trate_hz\tn_spikes" << (bursts ? "\tbursty\n" : "\n");
    for (const GroundTruthUnit& unit : simulator.units()) {
        char line[160];
        std::snprintf(line, sizeof line, "%d\t%d\t%.4f\t%.5f\t%llu", unit.id, unit.peak_channel, unit.snr,
                      unit.rate_hz, static_cast<unsigned long long>(unit.n_spikes));
        table << line << (bursts ? (unit.bursty ? "\t1\n" : "\t0\n") : "\n");
    }
    write_text_file(truth_dir / "units.tsv", table.str());

    if (config.behavior) {
        io::write_npy(truth_dir / "kinematics.npy", kinematics.data(), {kinematics.size() / 5, 5});
        std::ostringstream tuning;
        tuning << "unit_id\ttuned\tbaseline_hz\tdepth_hz_per_cm_s\tpreferred_direction_rad\n";
        for (const GroundTruthUnit& unit : simulator.units()) {
            char line[160];
            std::snprintf(line, sizeof line, "%d\t%d\t%.5f\t%.6f\t%.6f\n", unit.id, unit.tuning.tuned ? 1 : 0,
                          unit.tuning.baseline_hz, unit.tuning.depth_hz_per_cm_s, unit.tuning.preferred_direction_rad);
            tuning << line;
        }
        write_text_file(truth_dir / "tuning.tsv", tuning.str());
    }

    nlohmann::json meta = {
        {"sample_rate", config.sample_rate},
        {"n_channels", config.n_channels},
        {"duration_s", config.duration_s},
        {"n_frames", info.n_frames},
        {"seed", config.seed},
        {"n_units", simulator.units().size()},
        {"noise_uv", config.noise_uv},
        {"microvolts_per_bit", config.microvolts_per_bit},
        {"drift_model", to_string(drift.model().kind)},
        {"drift_um_per_s", drift.model().kind == DriftKind::triangle ? drift.model().speed_um_per_s : 0.0},
    };
    // The parameters of the model that it uses, with its defaults resolved.
    const DriftModel& model = drift.model();
    if (drift.active())
        meta["drift_amplitude_um"] = model.amplitude_um;
    if (model.kind == DriftKind::triangle)
        meta["drift_period_s"] = 4.0 * model.amplitude_um / std::abs(model.speed_um_per_s);
    if (model.kind == DriftKind::sine || model.kind == DriftKind::nonrigid || model.kind == DriftKind::ramp ||
        model.kind == DriftKind::wander)
        meta["drift_period_s"] = model.period_s;
    if (model.kind == DriftKind::step)
        meta["drift_step_s"] = *model.step_s;
    if (config.burst_fraction > 0) {
        const auto& units = simulator.units();
        meta["bursts"] = {
            {"burst_fraction", config.burst_fraction},
            {"n_bursty_units", std::count_if(units.begin(), units.end(), [](const auto& u) { return u.bursty; })},
            {"start_probability", kBurstStartProbability},
            {"spikes", {kBurstMinSpikes, kBurstMaxSpikes}},
            {"interval_ms", {kBurstMinIntervalMs, kBurstMaxIntervalMs}},
            {"attenuation", kBurstAttenuation},
        };
    }
    if (config.n_background_units > 0)
        meta["background_units"] = {
            {"n_units", config.n_background_units},
            {"distance_um", {kBackgroundMinDistanceUm, kBackgroundMaxDistanceUm}},
            {"snr", {kBackgroundMinSnr, kBackgroundMaxSnr}},
        };
    if (config.shape_variation > 0)
        meta["shape_variation"] = {
            {"weight", config.shape_variation},
            {"distal_reach_um", kDistalReachUm},
            {"positive_distal_share", kPositiveDistalShare},
        };
    if (config.behavior) {
        const auto& units = simulator.units();
        meta["behavior"] = {
            {"task", "random-target minimum-jerk reaches"},
            {"kinematics_step_s", kKinematicsStepS},
            {"workspace_half_width_cm", kWorkspaceHalfWidthCm},
            {"max_speed_cm_s", kMaxCursorSpeedCmS},
            {"tuned_fraction", config.tuned_fraction},
            {"n_tuned_units", std::count_if(units.begin(), units.end(), [](const auto& u) { return u.tuning.tuned; })},
        };
    }
    write_text_file(truth_dir / "info.json", meta.dump(2) + "\n");
    if (progress)
        progress(1.0);
}

} // namespace spikeline::sim
