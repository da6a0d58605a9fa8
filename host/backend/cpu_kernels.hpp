#pragma once
// Vectorisable rewrites of L1 stages for the CPU backend. They produce exactly the bits of the plain L1 functions
// (hw::bandpass_frame, hw::accumulate_group_sums / subtract_reference, hw::track_noise_and_flag), which
// tests/test_backend.cpp checks on every output.
//
// The band-pass uses doubles: with 18-bit coefficients (scaled by 2^-16, exact), 26-bit states and 28-bit
// numerators every product and partial sum has at most 46 significant bits, so double arithmetic is exact in any
// order and floor(sum + 0.5) equals L1's round_shift. Loops run over runs of channels of one reference group, which
// removes L1's per-channel group lookup.
#include "backend/detect_settings.hpp"
#include "spikeline/hw/threshold_detector.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace spikeline::cpu {

// Returns by value: std::clamp returns a reference, which keeps GCC from vectorising the loops below.
template <class T> inline T clamp_value(T value, T low, T high) {
    const T raised = value < low ? low : value;
    return raised > high ? high : raised;
}

/// Consecutive channels [begin, end) of one reference group (-1: not re-referenced).
struct ChannelRun {
    int begin, end, group;
};

/// The runs of equal group_of within [begin, end).
inline std::vector<ChannelRun> reference_runs(const HwParams& params, int begin, int end) {
    std::vector<ChannelRun> runs;
    for (int ch = begin; ch < end; ++ch) {
        if (runs.empty() || runs.back().group != params.group_of[ch])
            runs.push_back({ch, ch, params.group_of[ch]});
        runs.back().end = ch + 1;
    }
    return runs;
}

/// The two-biquad cascade over channels [begin, end) in exact double arithmetic; returns the sum of the outputs.
/// Out of line with restrict pointers: GCC does not vectorise the same loop once inlined into a caller holding the
/// arrays. The input is int16 samples widened to int32: GCC vectorises int32 -> double but not int16 -> double.
std::int32_t filter_doubles(const double (&coef)[2][4], const std::int32_t* __restrict in, std::int32_t* __restrict out,
                            double* __restrict x1, double* __restrict x2, double* __restrict m1, double* __restrict m2,
                            double* __restrict y1, double* __restrict y2, int begin, int end);

/// Filter history of all channels as exact doubles (the same values as hw::BandpassState).
class DoubleBandpass {
public:
    explicit DoubleBandpass(const HwParams& params, int n_channels) {
        static_assert(HwConfig::n_sections == 2, "the CPU band-pass is written for two sections");
        // One allocation, arrays staggered by an odd number of cache lines: arrays exactly 4 KiB apart make
        // loads falsely wait for stores to other arrays (4K aliasing), which halves the loop's speed.
        stride_ = static_cast<std::size_t>(n_channels) + 8 * 17;
        history_.assign(6 * stride_, 0.0);
        const double scale = std::ldexp(1.0, -HwConfig::coef_frac_bits);
        for (int k = 0; k < 2; ++k) {
            const hw::BiquadQ& c = params.sections[k];
            coef_[k][0] = c.gain * scale;
            coef_[k][1] = HwConfig::numerator_middle[k];
            coef_[k][2] = c.a1 * scale;
            coef_[k][3] = c.a2 * scale;
        }
    }

    /// Filters channels [begin, end) of one frame (int16 samples widened to int32) into out; returns their sum.
    std::int32_t filter(const std::int32_t* in, std::int32_t* out, int begin, int end) {
        double* h = history_.data();
        return filter_doubles(coef_, in, out, h, h + stride_, h + 2 * stride_, h + 3 * stride_, h + 4 * stride_,
                              h + 5 * stride_, begin, end);
    }

private:
    // Six arrays of stride_: section 0 inputs x1, x2; section 0 outputs (= section 1 inputs); section 1 outputs.
    std::vector<double> history_;
    std::size_t stride_ = 0;
    double coef_[2][4];
};

/// hw::subtract_reference followed by hw::track_noise_and_flag for one run, in one pass (out of line for the same
/// reason as filter_doubles).
bool reference_and_flag(hw::DetectorState<HwConfig>& state, const HwParams& params, const ChannelRun& run,
                        std::int32_t mean, std::uint64_t frame, const std::int32_t* filtered, std::int32_t* referenced);

/// The loop of reference_and_flag on plain arrays.
bool reference_and_flag_loop(const std::int32_t* __restrict filtered, std::int32_t* __restrict referenced,
                             std::int32_t* __restrict noise, std::int32_t* __restrict hold,
                             const std::uint8_t* __restrict searching, std::uint8_t* __restrict attention, int begin,
                             int end, std::int32_t reference, std::int32_t step, std::int32_t gain,
                             std::int32_t want_negative, std::int32_t want_positive);

} // namespace spikeline::cpu
