#pragma once
/// @file common_reference.hpp
/// Common reference: subtracts from every channel the mean of its group (a shank by default) in the same frame.
///
/// The mean is clipped: each channel's share is clamped to +- clip, clip = its noise level times reference_clip_gain
/// (threshold_from_noise of the noise tracker's median |x|), so that a large spike on a few of a group's channels does
/// not move the mean (on 32-64 contact shanks the plain mean imprinted a spike's after-hyperpolarisation on every
/// other channel, and the detector found it there). When more than three quarters of a group's channels are beyond
/// their clip in a frame (a common-mode artefact, or no clip yet) the plain mean is used, so common-mode signals of any
/// size are still removed; reference_clip_gain 0 gives the plain mean always. (At half, a large spike on a 32-contact
/// shank, beyond on more than 16 contacts, still took the plain mean: precision 0.84 against 0.98.)
///
/// Clip levels change once per period of reference_period frames: at the start of period k the noise estimates
/// (before that frame's update) become the levels of period k + 1, in the other of two banks. Stages that sum a
/// group may then run up to a period ahead of the noise tracker (the RTL's band-pass stage, the CPU backend's blocks,
/// OpenCL's launches). The sums may be accumulated in pieces (channel ranges) and added, so that threads or lanes can
/// share the work.
#include "spikeline/hw/ap_int_shim.hpp"
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/fixed_point.hpp"
#include "spikeline/hw/threshold_detector.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

/// Clip levels (Q.sample_frac_bits) per channel: frames of period k use clip[k % 2]. Zero at the start of a stream:
/// the first period takes the plain mean, and so does the second when the noise starts at 0 (noise_initial).
template <class CONFIG_T> struct ReferenceState {
    std::int32_t clip[2][CONFIG_T::max_channels] = {};
};

/// One frame's per-group running sums.
template <class CONFIG_T> struct GroupSums {
    std::int32_t plain[CONFIG_T::max_groups];   ///< sum of the samples
    std::int32_t clipped[CONFIG_T::max_groups]; ///< sum of the samples clamped to +- their clip
    std::int32_t beyond[CONFIG_T::max_groups];  ///< channels with |sample| >= their clip
};

template <class CONFIG_T> void clear_group_sums(GroupSums<CONFIG_T>& sums) {
CLEAR_GROUP_SUMS:
    for (int g = 0; g < CONFIG_T::max_groups; ++g) {
#pragma HLS UNROLL
        sums.plain[g] = 0;
        sums.clipped[g] = 0;
        sums.beyond[g] = 0;
    }
}

/// The bank of clip levels that frame `frame` uses.
template <class CONFIG_T> inline int reference_bank(std::uint64_t frame) {
    return static_cast<int>((frame / CONFIG_T::reference_period) % 2);
}

/// At the first frame of a period, before that frame's noise update, turns the noise estimates of channels
/// [begin, end) into the clip levels of the next period; at any other frame does nothing.
template <class CONFIG_T>
void take_reference_clips(ReferenceState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, std::uint64_t frame,
                          const std::int32_t* noise, int begin, int end) {
    if (frame % CONFIG_T::reference_period != 0)
        return;
    const int bank = 1 - reference_bank<CONFIG_T>(frame);
REFERENCE_CLIPS:
    for (int ch = begin; ch < end; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
#pragma HLS PIPELINE II = 1
        state.clip[bank][ch] = threshold_from_noise<CONFIG_T>(noise[ch], params.reference_clip_gain);
    }
}

/// A sample clamped to +- clip.
inline std::int32_t clip_sample(std::int32_t value, std::int32_t clip) {
    return value < -clip ? -clip : (value > clip ? clip : value);
}

/// Adds the samples of channels [begin, end) of frame `frame` to their groups' sums.
template <class CONFIG_T>
void accumulate_group_sums(const DetectParams<CONFIG_T>& params, const ReferenceState<CONFIG_T>& reference,
                           std::uint64_t frame, const std::int32_t* filtered, GroupSums<CONFIG_T>& sums, int begin,
                           int end) {
    const int bank = reference_bank<CONFIG_T>(frame);
GROUP_SUMS: // sums: register files (the caller partitions them), so the read-modify-writes take one clock
    for (int ch = begin; ch < end; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
#pragma HLS PIPELINE II = 1
        const int group = params.group_of[ch];
        if (group >= 0) {
            const std::int32_t value = filtered[ch];
            const std::int32_t clip = reference.clip[bank][ch];
            sums.plain[group] += value;
            sums.clipped[group] += clip_sample(value, clip);
            sums.beyond[group] += value <= -clip || value >= clip ? 1 : 0;
        }
    }
}

/// The mean a group's sums give: round(sum * round(2^16 / members) / 2^16) of the clipped sum, or of the plain sum
/// when beyond * round(2^16 / members) > 3 * 2^14 (more than about three quarters of the members beyond their clip).
inline std::int32_t group_mean(std::int32_t plain, std::int32_t clipped, std::int32_t beyond,
                               std::int32_t inverse_size) {
    // beyond <= 1024 and round(2^16 / members) <= 2^16: the product fits 27 bits
    const std::int32_t sum = beyond * inverse_size > 3 * (1 << 14) ? plain : clipped;
    // round(2^16 / members) <= 2^16 fits 18 signed bits: a 32 x 18 product (two DSPs, not four)
    const ap_int<50> product = ap_int<32>(sum) * ap_int<18>(inverse_size);
    return static_cast<std::int32_t>(round_shift(product, 16));
}

/// Turns group sums into means (group_mean of each group).
template <class CONFIG_T>
void group_means(const DetectParams<CONFIG_T>& params, const GroupSums<CONFIG_T>& sums, std::int32_t* means) {
GROUP_MEANS:
    for (int g = 0; g < CONFIG_T::max_groups; ++g) {
#pragma HLS PIPELINE II = 1
        means[g] = group_mean(sums.plain[g], sums.clipped[g], sums.beyond[g], params.group_inverse_size[g]);
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
