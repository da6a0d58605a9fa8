#include "sim/waveform.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>

namespace spikeline::sim {
namespace {

double gaussian_bump(double t, double centre, double width) {
    const double z = (t - centre) / width;
    return std::exp(-0.5 * z * z);
}

// Raised-cosine edges so the template starts and ends at exactly zero.
double template_taper(double t_ms) {
    constexpr double rise_ms = 0.3;
    constexpr double fall_ms = 0.7;
    if (t_ms <= -kWaveformPreMs || t_ms >= kWaveformPostMs)
        return 0.0;
    if (t_ms < -kWaveformPreMs + rise_ms)
        return 0.5 - 0.5 * std::cos(std::numbers::pi * (t_ms + kWaveformPreMs) / rise_ms);
    if (t_ms > kWaveformPostMs - fall_ms)
        return 0.5 - 0.5 * std::cos(std::numbers::pi * (kWaveformPostMs - t_ms) / fall_ms);
    return 1.0;
}

} // namespace

// A random extracellular action-potential shape: an asymmetric negative trough (fast fall, slower rise), a slower
// positive after-hyperpolarisation at the trough-to-peak width, and for tri-phasic units a small positive pre-peak.
// Returned as a table over [-pre, post] ms with the true minimum exactly at t = 0 and a value of -1 there.
std::vector<float> random_waveform_table(Rng& rng) {
    const bool narrow = rng.uniform() < 0.3; // fast-spiking interneuron-like
    const double width_ms = narrow ? rng.uniform(0.3, 0.45) : rng.uniform(0.55, 1.0);
    const double fall_ms = rng.uniform(0.045, 0.075);
    const double rise_ms = width_ms * rng.uniform(0.2, 0.3);
    const double ahp_level = narrow ? rng.uniform(0.3, 0.6) : rng.uniform(0.12, 0.35);
    const double ahp_width_ms = std::clamp(width_ms * rng.uniform(0.35, 0.55), 0.08, 0.45);
    const bool triphasic = rng.uniform() < 0.5;
    const double pre_level = triphasic ? rng.uniform(0.05, 0.2) : 0.0;
    const double pre_width_ms = rng.uniform(0.05, 0.1);
    const double pre_centre_ms = -(2.2 * fall_ms + 1.5 * pre_width_ms);

    auto shape = [&](double t) {
        const double trough = t < 0 ? gaussian_bump(t, 0.0, fall_ms) : gaussian_bump(t, 0.0, rise_ms);
        return -trough + ahp_level * gaussian_bump(t, width_ms, ahp_width_ms) +
               pre_level * gaussian_bump(t, pre_centre_ms, pre_width_ms);
    };
    // The bumps overlap a little, so find the true minimum near 0 and shift it to 0.
    double best_t = 0.0, best_value = shape(0.0);
    for (double t = -0.2; t <= 0.2; t += 1e-4) {
        const double v = shape(t);
        if (v < best_value) {
            best_value = v;
            best_t = t;
        }
    }
    const std::size_t zero = static_cast<std::size_t>(kWaveformPreMs * kTableStepsPerMs);
    const std::size_t length = static_cast<std::size_t>((kWaveformPreMs + kWaveformPostMs) * kTableStepsPerMs) + 1;
    std::vector<float> table(length);
    for (std::size_t i = 0; i < length; ++i) {
        const double t = (static_cast<double>(i) - static_cast<double>(zero)) / kTableStepsPerMs;
        table[i] = static_cast<float>(template_taper(t) * shape(t + best_t) / -best_value);
    }
    table.front() = 0.0f;
    table.back() = 0.0f;
    return table;
}

double sample_waveform(const std::vector<float>& waveform, double samples, double samples_to_table, double table_zero) {
    const double x = samples * samples_to_table + table_zero;
    if (x < 0 || x >= static_cast<double>(waveform.size() - 1))
        return 0.0;
    const std::size_t i = static_cast<std::size_t>(x);
    const double fraction = x - static_cast<double>(i);
    return waveform[i] + fraction * (waveform[i + 1] - waveform[i]);
}

} // namespace spikeline::sim
