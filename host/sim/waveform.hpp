#pragma once
// Extracellular action-potential shapes: each unit has one canonical waveform, a table over [-pre, post] ms with its
// trough at 0 and a value of -1 there, which the footprint delays, widens and scales per contact.
#include "sim/random.hpp"

#include <vector>

namespace spikeline::sim {

// Times in ms.
constexpr double kWaveformPreMs = 1.0;   // canonical template support before the trough
constexpr double kWaveformPostMs = 3.0;  // ... and after it (the after-hyperpolarisation is slow)
constexpr double kTableStepsPerMs = 480; // resolution of the canonical waveform table (~2 us)

// A random waveform table (kTableStepsPerMs steps per ms, kWaveformPreMs before the trough).
std::vector<float> random_waveform_table(Rng& rng);

// The table at a time in samples from its trough (0 outside the template), linearly interpolated; samples_to_table
// is table steps per sample and table_zero the index of the trough.
double sample_waveform(const std::vector<float>& waveform, double samples, double samples_to_table, double table_zero);

} // namespace spikeline::sim
