#pragma once
#include <array>
#include <vector>

namespace spikeline::dsp {

/// One second-order section in double precision: y = b0 x + b1 x1 + b2 x2 - a1 y1 - a2 y2.
struct Biquad {
    double b0, b1, b2, a1, a2;
};

/// Butterworth band-pass as a cascade: a 2nd-order high-pass at low_hz, then a 2nd-order low-pass at high_hz
/// (bilinear transform with pre-warping). Throws InputError unless 0 < low_hz < high_hz < sample_rate / 2.
std::array<Biquad, 2> design_bandpass(double sample_rate, double low_hz, double high_hz);

/// |H(f)| of a cascade.
double magnitude_response(const std::array<Biquad, 2>& sections, double sample_rate, double frequency_hz);

/// Filters x in double precision with zero initial state (test reference and simulator calibration).
std::vector<double> filter(const std::array<Biquad, 2>& sections, const std::vector<double>& x);

} // namespace spikeline::dsp
