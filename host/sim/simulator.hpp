#pragma once
#include "io/recording.hpp"
#include "probe/probe.hpp"
#include "sim/drift.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

namespace spikeline::sim {

struct SimulationConfig {
    int n_channels = 1024;
    double sample_rate = 30000.0;
    double duration_s = 10.0;
    int n_units = 0; ///< 0: 3 units per 10 channels
    std::uint64_t seed = 1;
    double microvolts_per_bit = 0.195; ///< Intan-like front end
    double noise_uv = 10.0;            ///< RMS of the 300-6000 Hz band of the noise, per channel
    DriftModel drift;                  ///< slow motion of the units along the probe (default: none)
    bool noise_only = false;           ///< no units (noise checks); the noise is the same as with units
    /// 2-D cursor task (random minimum-jerk reaches) with a share of units cosine-tuned to the cursor velocity.
    /// Off, the output is byte-identical to a simulation without this option.
    bool behavior = false;
    double tuned_fraction = 0.6; ///< share of units tuned to velocity when behavior is on
    /// Share of units that fire bursts of 2-4 spikes 3-8 ms apart, each 0.8 x the one before (sim/units.hpp); 0 (the
    /// default) leaves the output byte-identical to a simulation without this option.
    double burst_fraction = 0.0;
    /// How far each unit's waveform turns, away from its soma, into a second shape of its own (sim/units.hpp); 0 (the
    /// default) leaves the output byte-identical to a simulation without this option.
    double shape_variation = 0.0;
    /// Units that are not in the ground truth: neurons farther from the probe (40-100 um), SNR 0.5-2.5 on their
    /// best contact, the background activity of real recordings (sim/units.hpp); 0 (the default) leaves the output
    /// byte-identical to a simulation without this option.
    int n_background_units = 0;
};

/// Cursor kinematics are sampled every kKinematicsStepS seconds (time 0 = sample 0 of the recording).
inline constexpr double kKinematicsStepS = 0.01;
/// With a drift model, the ground-truth motion is given every kMotionStepS seconds (time 0 = sample 0) ...
inline constexpr double kMotionStepS = 0.01;
/// ... at depths every kMotionDepthStepUm from the lowest contact (see motion_depths_um()).
inline constexpr double kMotionDepthStepUm = 50.0;

/// The depths (probe y, um) of ground_truth/motion_um.npy: the lowest contact's y plus multiples of
/// kMotionDepthStepUm up to the first at or above the highest contact's y; at least two.
std::vector<double> motion_depths_um(const probe::Probe& probe);

/// One sample of the simulated cursor: position in cm from the workspace centre, velocity in cm/s.
struct KinematicsSample {
    double time_s = 0;
    double x_cm = 0, y_cm = 0;
    double vx_cm_s = 0, vy_cm_s = 0;
};

/// Velocity tuning of a unit: rate = max(0, baseline + depth * |v| * cos(theta - preferred)).
struct UnitTuning {
    bool tuned = false;
    double baseline_hz = 0;
    double depth_hz_per_cm_s = 0;
    double preferred_direction_rad = 0;
};

struct GroundTruthUnit {
    int id = 0;
    int peak_channel = 0;
    double snr = 0; ///< |trough on peak channel after the 300-6000 Hz band-pass| / band-passed noise RMS
    double rate_hz = 0;
    std::uint64_t n_spikes = 0;
    UnitTuning tuning;   ///< all zero unless the simulation has behavior
    bool bursty = false; ///< fires bursts (SimulationConfig::burst_fraction)
};

struct GroundTruthSpike {
    std::uint64_t sample = 0; ///< sample of the trough on the unit's peak channel
    std::int32_t unit = 0;
};

/// A deterministic (per seed) simulated recording generated in chunks with constant memory.
class Simulator : public io::RecordingSource {
public:
    Simulator(const SimulationConfig& config, const probe::Probe& probe);
    ~Simulator() override;

    const io::RecordingInfo& info() const override;
    std::size_t read(std::int16_t* dst, std::size_t max_frames) override;

    /// Ground-truth spikes whose trough lies in frames already returned by read() and not yet taken,
    /// in time order (ties by unit id). Spikes are taken out; call after every read() to keep memory bounded.
    std::vector<GroundTruthSpike> take_spikes();
    /// With behavior: the cursor kinematics every kKinematicsStepS up to the frames already returned by read(),
    /// not yet taken (empty without behavior). Call after every read() to keep memory bounded.
    std::vector<KinematicsSample> take_kinematics();
    /// The units; n_spikes counts the spikes generated so far.
    const std::vector<GroundTruthUnit>& units() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Writes recording.bin/.meta, probe.json and ground_truth/{spike_times.npy, spike_units.npy, units.tsv, info.json}
/// into out_dir (with behavior also ground_truth/{kinematics.npy, tuning.tsv}; with a drift model also
/// ground_truth/{motion_times_s.npy, motion_depths_um.npy, motion_um.npy}). progress(fraction) is called now and
/// then.
void simulate_to_folder(const SimulationConfig& config, const probe::Probe& probe, const std::filesystem::path& out_dir,
                        const std::function<void(double)>& progress = {});

} // namespace spikeline::sim
