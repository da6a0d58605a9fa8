#pragma once
/// @file common_reference.hpp
/// Common reference: subtracts from every channel the mean of its group (a shank by default) in the same frame.
/// The sums may be accumulated in pieces (channel ranges) and added, so that threads or lanes can share the work.
#include "spikeline/hw/ap_int_shim.hpp"
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/fixed_point.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

/// Adds the samples of channels [begin, end) to their groups' sums (sums has max_groups entries).
template <class CONFIG_T>
void accumulate_group_sums(const DetectParams<CONFIG_T>& params, const std::int32_t* filtered, std::int32_t* sums,
                           int begin, int end) {
GROUP_SUMS: // sums: a register file (the caller partitions it), so the read-modify-write takes one clock
    for (int ch = begin; ch < end; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
#pragma HLS PIPELINE II = 1
        const int group = params.group_of[ch];
        if (group >= 0)
            sums[group] += filtered[ch];
    }
}

/// Turns group sums into means: round(sum * round(2^16 / members) / 2^16).
template <class CONFIG_T>
void group_means(const DetectParams<CONFIG_T>& params, const std::int32_t* sums, std::int32_t* means) {
GROUP_MEANS:
    for (int g = 0; g < CONFIG_T::max_groups; ++g) {
#pragma HLS PIPELINE II = 1
        // round(2^16 / members) <= 2^16 fits 18 signed bits: a 32 x 18 product (two DSPs, not four)
        const ap_int<50> product = ap_int<32>(sums[g]) * ap_int<18>(params.group_inverse_size[g]);
        means[g] = static_cast<std::int32_t>(round_shift(product, 16));
    }
}

/// out[ch] = saturate(filtered[ch] - mean of its group) for channels [begin, end).
template <class CONFIG_T>
void subtract_reference(const DetectParams<CONFIG_T>& params, const std::int32_t* filtered, const std::int32_t* means,
                        std::int32_t* out, int begin, int end) {
REFERENCE_CHANNELS:
    for (int ch = begin; ch < end; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
#pragma HLS PIPELINE II = 1
        const int group = params.group_of[ch];
        const std::int32_t reference = group >= 0 ? means[group] : 0;
        out[ch] = saturate_bits(std::int64_t{filtered[ch]} - reference, CONFIG_T::sample_bits);
    }
}

} // namespace hw
} // namespace spikeline
