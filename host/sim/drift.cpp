#include "sim/drift.hpp"

#include <cmath>

namespace spikeline::sim {

double triangle_drift_um(double speed_um_per_s, double time_samples, double sample_rate) {
    const double travelled = std::abs(speed_um_per_s) * time_samples / sample_rate;
    const double period = 4.0 * kTriangleDriftAmplitudeUm;
    const double m = std::fmod(travelled, period);
    const double offset = m < kTriangleDriftAmplitudeUm       ? m
                          : m < 3 * kTriangleDriftAmplitudeUm ? 2 * kTriangleDriftAmplitudeUm - m
                                                              : m - period;
    return speed_um_per_s > 0 ? offset : -offset;
}

} // namespace spikeline::sim
