#include "sim/waveform.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <utility>

namespace spikeline::sim {
namespace {

constexpr double kDoubleTroughShare = 0.2;   // units whose waveform has a pronounced second trough
constexpr double kPositiveFirstShare = 0.05; // units whose trough follows a large positive peak

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

// A random extracellular action-potential shape, one of three families seen in mean waveforms of real probes:
// - classic (~75 %): an asymmetric negative trough (fast fall, slower rise), a slower positive after-hyperpolarisation
//   at the trough-to-peak width, and for half of them a small positive pre-peak;
// - double trough (~20 %): trough, positive peak, then a pronounced second trough 0.4-1.3 ms after the first at
//   30-80 % of its depth (as on contacts near dendrites or axons);
// - positive first (~5 %): a large positive peak (0.6-1.4 of the trough) just before the trough.
// Returned as a table over [-pre, post] ms with the true minimum exactly at t = 0 and a value of -1 there.
std::vector<float> random_waveform_table(Rng& rng) {
    const double family = rng.uniform();
    const bool double_trough = family < kDoubleTroughShare;
    const bool positive_first = !double_trough && family < kDoubleTroughShare + kPositiveFirstShare;

    const bool narrow = rng.uniform() < 0.3; // fast-spiking interneuron-like
    double width_ms = narrow ? rng.uniform(0.3, 0.45) : rng.uniform(0.55, 1.0);
    const double fall_ms = rng.uniform(0.045, 0.075);
    double rise_ms = width_ms * rng.uniform(0.2, 0.3);
    double ahp_level = narrow ? rng.uniform(0.3, 0.6) : rng.uniform(0.12, 0.35);
    double ahp_width_ms = std::clamp(width_ms * rng.uniform(0.35, 0.55), 0.08, 0.45);
    const bool triphasic = rng.uniform() < 0.5;
    double pre_level = triphasic ? rng.uniform(0.05, 0.2) : 0.0;
    double pre_width_ms = rng.uniform(0.05, 0.1);
    double pre_centre_ms = -(2.2 * fall_ms + 1.5 * pre_width_ms);

    // The second trough: its realised depth relative to the first is set below, after the bumps have been summed.
    double second_level = 0.0, second_centre_ms = 1.0, second_width_ms = 0.1, second_target = 0.0;
    if (double_trough) {
        second_centre_ms = rng.uniform(0.4, 1.3);
        second_target = rng.uniform(0.3, 0.8);
        second_width_ms = std::min(rng.uniform(0.08, 0.2), 0.3 * second_centre_ms);
        // The positive peak sits between the troughs, narrow enough to leave both of them deep.
        width_ms = second_centre_ms * rng.uniform(0.4, 0.6);
        ahp_width_ms = width_ms * rng.uniform(0.22, 0.3);
        ahp_level = rng.uniform(0.2, 0.6);
        rise_ms = std::min(rise_ms, 0.4 * width_ms);
        second_level = second_target;
    }
    if (positive_first) {
        pre_centre_ms = -rng.uniform(0.15, 0.3);
        pre_width_ms = -pre_centre_ms * rng.uniform(0.25, 0.35);
        pre_level = rng.uniform(0.6, 1.4);
        ahp_level *= 0.5;
    }

    auto shape = [&](double t) {
        const double trough = t < 0 ? gaussian_bump(t, 0.0, fall_ms) : gaussian_bump(t, 0.0, rise_ms);
        return -trough + ahp_level * gaussian_bump(t, width_ms, ahp_width_ms) +
               pre_level * gaussian_bump(t, pre_centre_ms, pre_width_ms) -
               second_level * gaussian_bump(t, second_centre_ms, second_width_ms);
    };
    // The lowest value of the shape within [from, to] ms and where it is.
    auto minimum = [&](double from, double to) {
        double best_t = from, best_value = shape(from);
        for (double t = from; t <= to; t += 1e-4) {
            const double v = shape(t);
            if (v < best_value) {
                best_value = v;
                best_t = t;
            }
        }
        return std::pair{best_t, best_value};
    };
    if (double_trough) {
        // The neighbouring bumps make the second trough shallower and the first one a little too: correct the second
        // bump's level until the realised ratio is the drawn one (the depth is nearly linear in the level).
        for (int iteration = 0; iteration < 3; ++iteration) {
            const double first = -minimum(-0.2, 0.2).second;
            const double second =
                -minimum(second_centre_ms - 2.0 * second_width_ms, second_centre_ms + 2.0 * second_width_ms).second;
            second_level += second_target * first - second;
        }
    }
    // The bumps overlap a little, so find the true minimum near 0 and shift it to 0.
    const auto [best_t, best_value] = minimum(-0.2, 0.2);
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
