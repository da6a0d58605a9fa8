#include "dsp/filter_design.hpp"

#include "util/errors.hpp"

#include <cmath>
#include <complex>
#include <cstdio>
#include <numbers>
#include <string>

namespace spikeline::dsp {
namespace {

// 2nd-order Butterworth (Q = 1/sqrt(2)) by the bilinear transform, pre-warped so the -3 dB point is exact.
Biquad butterworth2(double sample_rate, double cutoff_hz, bool highpass) {
    const double k = std::tan(std::numbers::pi * cutoff_hz / sample_rate);
    const double norm = 1.0 / (1.0 + std::numbers::sqrt2 * k + k * k);
    const double a1 = 2.0 * (k * k - 1.0) * norm;
    const double a2 = (1.0 - std::numbers::sqrt2 * k + k * k) * norm;
    if (highpass)
        return {norm, -2.0 * norm, norm, a1, a2};
    return {k * k * norm, 2.0 * k * k * norm, k * k * norm, a1, a2};
}

} // namespace

std::array<Biquad, 2> design_bandpass(double sample_rate, double low_hz, double high_hz) {
    require(sample_rate > 0, "sample rate must be positive (got " + std::to_string(sample_rate) + ")");
    auto hz = [](double value) {
        char text[32];
        std::snprintf(text, sizeof text, "%g Hz", value);
        return std::string(text);
    };
    require(low_hz > 0 && low_hz < high_hz,
            "the band-pass needs 0 < --band-low < --band-high (got " + hz(low_hz) + " and " + hz(high_hz) + ")");
    require(high_hz < sample_rate / 2,
            "the band-pass high edge " + hz(high_hz) + " is not below the Nyquist frequency " + hz(sample_rate / 2) +
                " of this " + hz(sample_rate) + " recording: spikes need a sample rate of about 20 kHz or more (an " +
                "LFP file such as a SpikeGLX .lf.bin holds none; use the .ap.bin), or set --band-high lower");
    return {butterworth2(sample_rate, low_hz, true), butterworth2(sample_rate, high_hz, false)};
}

double magnitude_response(const std::array<Biquad, 2>& sections, double sample_rate, double frequency_hz) {
    const std::complex<double> z1 = std::polar(1.0, -2.0 * std::numbers::pi * frequency_hz / sample_rate);
    const std::complex<double> z2 = z1 * z1;
    std::complex<double> h = 1.0;
    for (const Biquad& s : sections)
        h *= (s.b0 + s.b1 * z1 + s.b2 * z2) / (1.0 + s.a1 * z1 + s.a2 * z2);
    return std::abs(h);
}

std::vector<double> filter(const std::array<Biquad, 2>& sections, const std::vector<double>& x) {
    std::vector<double> y = x;
    for (const Biquad& s : sections) {
        double x1 = 0, x2 = 0, y1 = 0, y2 = 0;
        for (double& v : y) {
            const double out = s.b0 * v + s.b1 * x1 + s.b2 * x2 - s.a1 * y1 - s.a2 * y2;
            x2 = x1;
            x1 = v;
            y2 = y1;
            y1 = out;
            v = out;
        }
    }
    return y;
}

} // namespace spikeline::dsp
