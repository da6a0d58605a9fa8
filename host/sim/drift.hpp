#pragma once
// Slow motion of the tissue relative to the probe along the probe's y axis.

namespace spikeline::sim {

constexpr double kTriangleDriftAmplitudeUm = 25.0;

// Rigid triangle wave of amplitude kTriangleDriftAmplitudeUm travelled at |speed| um/s, first towards the sign of
// speed, at a time in samples.
double triangle_drift_um(double speed_um_per_s, double time_samples, double sample_rate);

} // namespace spikeline::sim
