#pragma once
/// @file bandpass.hpp
/// Band-pass filter: a cascade of direct-form-I biquads per channel. Samples enter as int16, are scaled to
/// Q.state_frac_bits so that rounding noise stays far below 1 LSB even behind the high-pass section's poles near
/// z = 1, and leave rounded to Q.sample_frac_bits: the fraction keeps the noise tracker's median unbiased on
/// low-gain probes whose noise is only a few LSB.
///
/// Cheap exact products: with the default widths (coefficients Q2.14 in 16 bits, states 26 bits) a state s splits into
/// halves that fit 16 bits, s = high * 2^14 + low with low = s's bits 13..0 read as signed ([-2^13, 2^13)) and high =
/// (s + 2^13) >> 14. A numerator's halves are the sums of its states' halves (|low| <= 2^15, |high| <= 2^13), and the
/// accumulator is exactly high_sum * 2^14 + low_sum, where each sum takes only 16 x 16 -> 32-bit products and |low_sum|
/// < 2^31. Hence round_shift(acc, 14) = high_sum + ((low_sum + 2^13) >> 14) with no 64-bit arithmetic: the CPU backend
/// computes it with vpdpwssd (32 products per instruction), OpenCL in 32-bit lanes; the RTL keeps the direct form (16 x
/// 26-bit products, one DSP48E2 each). All produce the bits of biquad_step below.
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/fixed_point.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

/// Filter history of every channel (structure of arrays so that loops over channels vectorise).
template <class CONFIG_T> struct BandpassState {
    /// history[k][0..1]: the two previous inputs of section k (section k's input is section k-1's output);
    /// history[n_sections][0..1]: the two previous outputs of the last section. All in Q.state_frac_bits.
    std::int32_t history[CONFIG_T::n_sections + 1][2][CONFIG_T::max_channels] = {};
};

/// One biquad step in exact integer arithmetic; returns the saturated output in Q.state_frac_bits.
template <class CONFIG_T>
inline std::int32_t biquad_step(const BiquadQ& c, int middle, std::int32_t x0, std::int32_t x1, std::int32_t x2,
                                std::int32_t y1, std::int32_t y2) {
    // |numerator| <= 4 * 2^25 fits 32 bits; the accumulator stays below 2^44 (see the file comment for its split).
    const std::int32_t numerator = x0 + middle * x1 + x2;
    const std::int64_t acc = std::int64_t{c.gain} * numerator - std::int64_t{c.a1} * y1 - std::int64_t{c.a2} * y2;
    return saturate_bits(round_shift(acc, CONFIG_T::coef_frac_bits), CONFIG_T::state_bits);
}

/// Filters one frame for channels [begin, end): in and out are indexed by channel.
template <class CONFIG_T>
void bandpass_frame(BandpassState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, const std::int16_t* in,
                    std::int32_t* out, int begin, int end) {
    constexpr int S = CONFIG_T::n_sections;
    constexpr int F = CONFIG_T::state_frac_bits;
BANDPASS_CHANNELS: // each channel's history lives in 6 memories (the kernel partitions history on dims 1 and 2)
    for (int ch = begin; ch < end; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = state.history inter false // iteration ch touches channel ch only
        std::int32_t x = static_cast<std::int32_t>(in[ch]) * (1 << F);
    BANDPASS_SECTIONS:
        for (int k = 0; k < S; ++k) {
            auto& hx = state.history[k];
            auto& hy = state.history[k + 1];
            const std::int32_t y = biquad_step<CONFIG_T>(params.sections[k], CONFIG_T::numerator_middle(k), x,
                                                         hx[0][ch], hx[1][ch], hy[0][ch], hy[1][ch]);
            hx[1][ch] = hx[0][ch];
            hx[0][ch] = x;
            x = y;
        }
        auto& last = state.history[S];
        last[1][ch] = last[0][ch];
        last[0][ch] = x;
        out[ch] = saturate_bits(round_shift(x, F - CONFIG_T::sample_frac_bits), CONFIG_T::sample_bits);
    }
}

} // namespace hw
} // namespace spikeline
