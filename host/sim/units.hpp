#pragma once
// The simulated units: where they sit, what their spikes look like on each contact (footprint), how large they are
// (SNR) and how often they fire.
#include "probe/probe.hpp"
#include "sim/noise.hpp"
#include "sim/random.hpp"
#include "sim/simulator.hpp"

#include <vector>

namespace spikeline::sim {

// Times in ms, distances in um.
constexpr double kMaxStretch = 1.5; // waveform widening far from the soma is capped here
constexpr double kMaxDelayMs = 0.3; // propagation delay cap
constexpr double kAmplitudeJitterSigma = 0.1;
// Bursts (complex spikes): a bursty unit's spike starts one with this probability; 2-4 spikes 3-8 ms apart, each
// kBurstAttenuation times as large as the one before (hippocampal and cortical pyramidal cells).
constexpr double kBurstStartProbability = 0.15;
constexpr int kBurstMinSpikes = 2, kBurstMaxSpikes = 4;
constexpr double kBurstMinIntervalMs = 3.0, kBurstMaxIntervalMs = 8.0;
constexpr double kBurstAttenuation = 0.8;
// Shape variation (SimulationConfig::shape_variation = v): a unit's waveform on a contact is (1 - w) x its own shape +
// w x a second, distal shape, with w = v x min(1, distance beyond the soma / kDistalReachUm). The distal shape is drawn
// from the same families and is turned positive for kPositiveDistalShare of the units (return currents: away from
// the soma, real mean waveforms broaden, lose or gain lobes, and for some cells reverse).
constexpr double kDistalReachUm = 40.0;
constexpr double kPositiveDistalShare = 0.3;
// Background units (SimulationConfig::n_background_units): farther from the probe and wider than the others, SNR
// drawn log-uniform in this range on their best contact.
constexpr double kBackgroundMinDistanceUm = 40.0, kBackgroundMaxDistanceUm = 100.0;
constexpr double kBackgroundMinD0Um = 30.0, kBackgroundMaxD0Um = 60.0;
constexpr double kBackgroundMinSnr = 0.5, kBackgroundMaxSnr = 2.5;

struct FootprintEntry {
    int channel = 0;
    float gain = 0;        // relative amplitude (0..1) at this contact
    float delay = 0;       // samples after the soma's trough
    float inv_stretch = 1; // 1 / widening factor
    float distal = 0;      // weight of the unit's distal shape here (shape variation)
};

struct UnitModel {
    double x_um = 0, y_um = 0, z_um = 0;
    double d0_um = 0, radius_um = 0; // footprint decay constant and cut-off, in scaled distance (below)
    // The footprint is anisotropic: distances to contacts above the unit (larger y) are divided by up_scale, below
    // it by down_scale, and across columns (x) by lateral_scale before the decay applies.
    double up_scale = 1, down_scale = 1, lateral_scale = 1;
    double amplitude_uv = 0; // raw trough for gain 1
    double refractory_samples = 0;
    double poisson_rate_per_sample = 0; // for tuned units, the hazard at the highest possible rate (thinning)
    UnitTuning tuning;
    int peak_channel = 0;
    std::vector<float> waveform;
    std::vector<float> distal_waveform; // empty without shape variation
    double shape_variation = 0;
    std::vector<int> candidates;           // channels that can ever be within the footprint
    std::vector<FootprintEntry> footprint; // at the undrifted position
    Rng rng;                               // the unit's spike train
    bool bursty = false;                   // fires bursts of attenuating spikes (SimulationConfig::burst_fraction)
    Rng burst_rng;                         // when its bursts start, their lengths and intervals
};

// The unit's footprint entry on a channel with the unit displaced by y_offset along the probe (gain 0 outside).
FootprintEntry footprint_at(const UnitModel& unit, const probe::Probe& probe, int channel, double y_offset,
                            double sample_rate);

// The unit's waveform on the entry's contact at `samples` (in samples of the contact's own widened time) from its
// trough, before the gain.
double contact_waveform(const UnitModel& unit, const FootprintEntry& entry, double samples, double samples_to_table,
                        double table_zero);

// Poisson hazard per sample that, after the refractory period, gives a mean rate of rate_hz.
inline double hazard_per_sample(const UnitModel& unit, double rate_hz, double sample_rate) {
    return rate_hz > 0 ? 1.0 / (sample_rate / rate_hz - unit.refractory_samples) : 0.0;
}

// Draws every unit (placement, waveform, footprint, SNR, rate, tuning) and its ground-truth row, then the background
// units (after them in units, without a row). drift_reach_um is
// the largest displacement along the probe the drift can give a unit, so that its candidate channels cover it.
void create_units(const SimulationConfig& config, const probe::Probe& probe, const NoiseModel& noise,
                  double drift_reach_um, std::vector<UnitModel>& units, std::vector<GroundTruthUnit>& truth);

} // namespace spikeline::sim
