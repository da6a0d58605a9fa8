#pragma once
/// @file detect_config.hpp
/// Compile-time sizes (the config struct, hls4ml style: variants derive from DetectConfig and override) and the
/// run-time parameters of the detection front end (what the host uploads, the AXI-Lite register map of the RTL).
#include <cstdint>

namespace spikeline {
namespace hw {

/// Default compile-time configuration of the detection front end.
struct DetectConfig {
    static constexpr int max_channels = 1024; ///< channels per frame
    static constexpr int max_groups = 64;     ///< common-reference groups (shanks)
    static constexpr int n_sections = 2;      ///< biquads: high-pass then low-pass
    /// Middle numerator tap of each section: Butterworth high- and low-pass numerators are gain * (1, -2, 1) and
    /// gain * (1, 2, 1), which takes one multiplier instead of three.
    static constexpr int numerator_middle(int section) { return section == 0 ? -2 : 2; }
    /// Biquad coefficients: signed Q2.14 in 16 bits, so that every product of the band-pass splits into 16 x 16-bit
    /// products (bandpass.hpp); the range is symmetric, [-(2^15 - 1), 2^15 - 1], so that a negated one fits too.
    static constexpr int coef_frac_bits = 14;
    static constexpr int coef_bits = 16;
    static constexpr int state_frac_bits = 8; ///< filter states: signed Q17.8 in 26 bits
    static constexpr int state_bits = 26;
    static constexpr int sample_frac_bits = 4; ///< filtered samples: signed Q16.4 in 21 bits (int32 words)
    static constexpr int sample_bits = 21;
    static constexpr int noise_frac_bits = 8; ///< noise tracker: median |x| in Q8, at most 2^23 - 1
    static constexpr int noise_bits = 23;
    static constexpr int gain_frac_bits = 8;      ///< threshold multiplier k / 0.6745 in Q8, < 16
    static constexpr int max_neighbours = 16;     ///< de-duplication neighbours per channel
    static constexpr int max_partners = 4;        ///< contacts summed with a channel by the spatial rule
    static constexpr int max_align_window = 64;   ///< samples searched for the extremum after a crossing
    static constexpr int max_dedup_window = 64;   ///< +- samples compared by de-duplication
    static constexpr int max_shadow_window = 128; ///< samples after a large spike in which smaller ones are lobes
    /// Bounded work per frame (spatial_dedup.hpp): the RTL's de-duplication scans the list once per decision, so
    /// a frame end costs at most about (2 + 2 max_frame_decisions) max_pending clocks (4.6 k, inside the 8.3 k
    /// clocks of a 1024-channel frame at 30 kHz and 250 MHz).
    static constexpr int max_pending = 512;         ///< candidates waiting for de-duplication
    static constexpr int max_frame_candidates = 64; ///< candidates one frame may queue
    static constexpr int max_frame_decisions = 4;   ///< candidates one frame end may decide
    /// Frame ends a candidate may wait for its decision after it could first be decided (then it is dropped): the
    /// latency from a peak to its event stays within dedup_window + align_window + max_decision_delay frames
    /// (1.13 ms at 30 kHz with the default windows). max_frame_decisions x max_decision_delay = max_frame_candidates:
    /// a frame's full share is decided in time. With 8, a large spike crossing on many contacts (more of them once the
    /// common reference stopped subtracting part of it) lost one candidate in 95 549 on the stable recording.
    static constexpr int max_decision_delay = 16;
    static constexpr int max_artifact_window = 16; ///< frames over which a group's candidates are counted
    /// Frames between the common reference's clip levels (common_reference.hpp): a level is taken from the noise
    /// tracker at the start of one period and used through the next, so no backend's stage that sums a group needs
    /// the noise of frames it has not detected yet (the CPU backend's blocks and the OpenCL launches stay within it).
    static constexpr int reference_period = 4096;
};

/// Which excursions are spikes.
enum class Polarity : std::uint8_t { negative = 0, positive = 1, both = 2 };

/// One biquad: y = (gain (x + middle x1 + x2) - a1 y1 - a2 y2) / 2^coef_frac_bits, coefficients in Q2.14.
struct BiquadQ {
    std::int32_t gain, a1, a2;
};

/// Run-time parameters. Channel c belongs to reference group group_of[c] (-1: not re-referenced).
template <class CONFIG_T> struct DetectParams {
    int n_channels = 0;
    BiquadQ sections[CONFIG_T::n_sections] = {};
    std::int16_t group_of[CONFIG_T::max_channels] = {};
    std::int32_t group_inverse_size[CONFIG_T::max_groups] = {}; ///< round(2^16 / members)
    /// Q8 of median |x|: a channel's share of its group's mean is clipped to +- this times its noise estimate
    /// (common_reference.hpp); 0: the plain mean.
    std::int32_t reference_clip_gain = 0;
    std::int32_t noise_step_fast = 64;  ///< Q8 LSB per sample during warm-up
    std::int32_t noise_step_slow = 1;   ///< Q8 LSB per sample afterwards
    std::int32_t noise_initial = 0;     ///< Q8 starting estimate of median |x|
    std::uint32_t warmup_frames = 1024; ///< no detection (and the fast step) before this frame
    std::int32_t threshold_gain = 0;    ///< Q8 of k / 0.6745 (threshold = k sigma, sigma = median|x| / 0.6745)
    Polarity polarity = Polarity::negative;
    std::int32_t align_window = 9;   ///< samples from the crossing searched for the extremum (>= 1)
    std::int32_t dead_time = 18;     ///< samples after a peak before the channel may cross again
    std::int32_t dedup_window = 9;   ///< +- samples within which neighbouring candidates compete
    std::int32_t shadow_window = 60; ///< samples after a candidate in which much smaller neighbours are its lobes
    std::int32_t shadow_ratio = 128; ///< Q8: "much smaller" means |value| * 256 < |larger value| * shadow_ratio
    /// Artefact rejection (artifact_rejection.hpp): frames over which each group's candidates are counted (0: off,
    /// at most max_artifact_window), the count a group may reach before it is in an artefact, and the frames after
    /// the last frame over the limit in which its candidates are dropped.
    std::int32_t artifact_window = 0;
    std::int32_t artifact_limit[CONFIG_T::max_groups] = {};
    std::int32_t artifact_blank = 0;
    /// Spatial rule (threshold_detector.hpp): a crossing of the gate threshold (spatial_gate_gain, Q8 like
    /// threshold_gain; 0: the rule is off) that is not a crossing of the threshold starts a search when the channel
    /// and its partners together cross spatial_gain[n - 1] (Q8 of median |x|, n partners). Partners: nearest
    /// first, -1 padded, in the channel's reference group.
    std::int32_t spatial_gate_gain = 0;
    std::int32_t spatial_gain[CONFIG_T::max_partners] = {};
    std::int16_t partners[CONFIG_T::max_channels][CONFIG_T::max_partners] = {};
    /// Nearest first, -1 padded; an entry is a channel, plus kFarNeighbour for a far one (see spatial_dedup.hpp).
    std::int16_t neighbours[CONFIG_T::max_channels][CONFIG_T::max_neighbours] = {};
};

/// Flag of a far neighbour in DetectParams::neighbours; the channel is in the bits below it.
constexpr std::int16_t kFarNeighbour = 0x4000;

/// A detected spike: frame index of the aligned extremum, its channel, and its filtered, referenced value in
/// Q.sample_frac_bits input LSB.
struct SpikeEvent {
    std::uint64_t sample;
    std::int32_t channel;
    std::int32_t amplitude;
    /// 1 when the channel swung the other way by at least 3/4 of |amplitude| just before the crossing (the shape of a
    /// later phase: see threshold_detector.hpp); it informs de-duplication only and is not part of the event.
    std::int32_t swing = 0;

    // Written out (not defaulted) so that L1 stays C++14, which Vitis HLS compiles.
    friend bool operator==(const SpikeEvent& a, const SpikeEvent& b) {
        return a.sample == b.sample && a.channel == b.channel && a.amplitude == b.amplitude;
    }
};

} // namespace hw
} // namespace spikeline
