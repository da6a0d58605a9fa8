#pragma once
/// @file threshold_detector.hpp
/// Per-channel robust noise tracking and threshold detection with alignment and dead time.
///
/// Samples x are in Q4 input LSB. Noise: a stochastic median tracker of |x|. Each sample moves the estimate m (Q8
/// input LSB, clamped to [0, 2^23 - 1]) one step towards min(|x| << 4, 2^23 - 1) (step_fast before warmup_frames,
/// step_slow after), so m converges to median(|x|) = 0.6745 sigma for Gaussian noise with bounded state and no
/// multiplier. The threshold of a sample uses m from before that sample:
///   threshold (Q4) = round(round(m / 2^4) * threshold_gain / 2^8),  threshold_gain = round(2^8 k / 0.6745) < 2^12.
/// m is rounded to Q4, not truncated: truncation set thresholds up to 1/16 LSB low, 2 % at the 3-4 LSB noise of
/// Neuropixels 1.0 gains, where it let a quarter more noise crossings through.
/// Detection: a channel that is neither searching nor holding, at frame f >= warmup_frames, whose value x is beyond
/// the threshold (x < -threshold for negative polarity, x > +threshold for positive, either for both) starts a
/// search of align_window samples (the crossing one included) for the extremum (the first of equal values wins;
/// for both polarities the largest |x|). When the window closes a candidate (peak frame, channel, value) is
/// emitted and the channel holds until peak + dead_time. A sample more than 5/4 of that peak's |value| ends the hold
/// (outgrows_peak): on one contact a waveform's later troughs are smaller than its first, so a larger one is another
/// neuron's spike (two neurons firing within the dead time on the same contacts, common in dense recordings).
/// Swing: each channel keeps the largest |x| of its current run of samples of the sign opposite to the polarity
/// (opposite_run > 0), or of its last such run (stored negated, <= 0); frozen while the channel searches, so that a
/// candidate sees the run before its crossing; not kept for both polarities. A candidate whose run reached 3/4 of
/// its |value| (swung_against) is flagged: the contact went the other way by about the candidate's size just before
/// it, as on a contact where a spike's first phase is positive and this candidate is its later phase, which a new
/// spike's trough rarely follows. De-duplication drops flagged candidates behind any larger one (spatial_dedup.hpp).
/// Spatial rule (on when spatial_gate_gain != 0): a spike spreads over neighbouring contacts while the noise of each
/// contact is its own, so the sum of a channel and its n partners has a better signal-to-noise ratio than any one of
/// them. A sample beyond the gate threshold (gate = round(round(m / 2^4) * spatial_gate_gain / 2^8), below the
/// threshold) that does not cross the threshold starts a search when
///   v = n x + sum over partners p of clamp(x_p, -threshold, threshold)
/// is beyond round(round(m / 2^4) * spatial_gain[n - 1] / 2^8) in the direction of x. The clamp keeps one noisy partner
/// from carrying the sum; the partners' samples are the same frame's.
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/fixed_point.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

template <class CONFIG_T> struct DetectorState {
    std::int32_t noise[CONFIG_T::max_channels] = {};     ///< median |x| estimate, Q.noise_frac_bits
    std::uint8_t searching[CONFIG_T::max_channels] = {}; ///< 1 while looking for the extremum
    std::uint8_t count[CONFIG_T::max_channels] = {};     ///< samples searched so far
    std::uint8_t best_pos[CONFIG_T::max_channels] = {};  ///< position of the extremum in the search
    std::int32_t best_value[CONFIG_T::max_channels] = {};
    std::int32_t hold[CONFIG_T::max_channels] = {};         ///< frames left before the channel may cross again
    std::int32_t opposite_run[CONFIG_T::max_channels] = {}; ///< largest |x| of the current (> 0) or last (<= 0) run
    std::uint8_t attention[CONFIG_T::max_channels] = {};    ///< scratch: 1 = searching, 2 = starts a search, 3 = gate
    std::int32_t level[CONFIG_T::max_channels] = {};        ///< scratch: m before this frame's update
};

template <class CONFIG_T> void reset_detector(DetectorState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params) {
    state = DetectorState<CONFIG_T>{};
RESET_NOISE:
    for (int ch = 0; ch < CONFIG_T::max_channels; ++ch) {
#pragma HLS PIPELINE II = 1
        state.noise[ch] = params.noise_initial;
    }
}

/// Threshold in Q.sample_frac_bits from the noise estimate.
template <class CONFIG_T> inline std::int32_t threshold_from_noise(std::int32_t noise, std::int32_t gain) {
    static_assert(CONFIG_T::noise_frac_bits - CONFIG_T::sample_frac_bits == 4, "threshold scaling assumes Q8 -> Q4");
    return static_cast<std::int32_t>(round_shift(round_shift(noise, 4) * gain, CONFIG_T::gain_frac_bits));
}

inline bool beyond_threshold(std::int32_t value, std::int32_t threshold, Polarity polarity) {
    const bool negative = value < -threshold;
    const bool positive = value > threshold;
    return polarity == Polarity::negative ? negative
                                          : (polarity == Polarity::positive ? positive : negative || positive);
}

/// Whether a sample ends a channel's hold: |value| > 5/4 |peak| (|value|, |peak| < 2^21: the products fit 32 bits).
inline bool outgrows_peak(std::int32_t value, std::int32_t peak) {
    return 4 * (value < 0 ? -value : value) > 5 * (peak < 0 ? -peak : peak);
}

/// The next opposite_run after sample `against` (x for negative polarity, -x for positive; > 0: opposite sign).
inline std::int32_t next_opposite_run(std::int32_t run, std::int32_t against) {
    if (against > 0) // a run that had ended (run <= 0) restarts at against
        return run > against ? run : against;
    return run > 0 ? -run : run;
}

/// Whether a candidate of value peak followed a swing the other way of at least 3/4 of its size (|run|, |peak| <=
/// 2^20: the products fit 32 bits).
inline bool swung_against(std::int32_t run, std::int32_t peak) {
    return 4 * (run < 0 ? -run : run) >= 3 * (peak < 0 ? -peak : peak) && peak != 0;
}

inline bool more_extreme(std::int32_t value, std::int32_t best, Polarity polarity) {
    if (polarity == Polarity::negative)
        return value < best;
    if (polarity == Polarity::positive)
        return value > best;
    return (value < 0 ? -value : value) > (best < 0 ? -best : best);
}

/// Pass 1 of a frame, the same work for every channel of [begin, end): noise tracking, threshold, hold countdown,
/// and which channels need pass 2 (attention: 1 = searching, 2 = starts a search). Returns whether any does.
template <class CONFIG_T>
bool track_noise_and_flag(DetectorState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, std::uint64_t frame,
                          const std::int32_t* x, int begin, int end) {
    const bool warm = frame >= params.warmup_frames;
    const std::int32_t step = warm ? params.noise_step_slow : params.noise_step_fast;
    bool any_attention = false;
NOISE_AND_THRESHOLD:
    for (int ch = begin; ch < end; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = state.noise inter false // iteration ch touches channel ch only
#pragma HLS DEPENDENCE variable = state.hold inter false
#pragma HLS DEPENDENCE variable = state.best_value inter false
#pragma HLS DEPENDENCE variable = state.opposite_run inter false
        const std::int32_t value = x[ch];
        constexpr std::int32_t noise_max = (1 << CONFIG_T::noise_bits) - 1;
        constexpr int shift = CONFIG_T::noise_frac_bits - CONFIG_T::sample_frac_bits;
        const std::int32_t magnitude =
            static_cast<std::int32_t>(saturate(std::int64_t{value < 0 ? -value : value} << shift, 0, noise_max));
        const std::int32_t noise = state.noise[ch];
        const std::int32_t threshold = threshold_from_noise<CONFIG_T>(noise, params.threshold_gain);
        const std::int32_t raised = noise + step > noise_max ? noise_max : noise + step;
        const std::int32_t lowered = noise - step < 0 ? 0 : noise - step;
        state.noise[ch] = magnitude > noise ? raised : (magnitude < noise ? lowered : noise);
        const std::int32_t hold = state.hold[ch];
        state.hold[ch] = hold > 0 ? hold - 1 : 0;
        const bool released = hold == 0 || outgrows_peak(value, state.best_value[ch]);
        const bool crossing = warm && released && beyond_threshold(value, threshold, params.polarity);
        const std::int32_t gate = threshold_from_noise<CONFIG_T>(noise, params.spatial_gate_gain);
        const bool gated =
            warm && released && params.spatial_gate_gain != 0 && beyond_threshold(value, gate, params.polarity);
        const std::uint8_t attention = state.searching[ch] ? 1 : (crossing ? 2 : (gated ? 3 : 0));
        if (!state.searching[ch] && params.polarity != Polarity::both)
            state.opposite_run[ch] =
                next_opposite_run(state.opposite_run[ch], params.polarity == Polarity::negative ? value : -value);
        state.attention[ch] = attention;
        state.level[ch] = noise;
        any_attention |= attention != 0;
    }
    return any_attention;
}

/// Whether a gate crossing of value on channel ch (attention 3) is spatially supported (see the file comment);
/// sample_of(p) is partner p's sample in the same frame.
template <class CONFIG_T, class SAMPLE_OF>
bool spatially_supported(const DetectorState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, int ch,
                         std::int32_t value, SAMPLE_OF&& sample_of) {
    const std::int32_t level = state.level[ch];
    const std::int32_t threshold = threshold_from_noise<CONFIG_T>(level, params.threshold_gain);
    std::int32_t sum = 0; // |sum| <= 4 * 2^20
    int n = 0;
SPATIAL_PARTNERS:
    for (int k = 0; k < CONFIG_T::max_partners; ++k) {
#pragma HLS UNROLL
        const int p = params.partners[ch][k];
        if (p < 0)
            break;
        const std::int32_t v = sample_of(p);
        sum += v < -threshold ? -threshold : (v > threshold ? threshold : v);
        ++n;
    }
    if (n == 0)
        return false;
    const std::int32_t limit = threshold_from_noise<CONFIG_T>(level, params.spatial_gain[n - 1]);
    const std::int32_t v = n * value + sum; // |v| <= 8 * 2^20
    return value < 0 ? v < -limit : v > limit;
}

/// Pass 2 for one flagged channel (attention != 0): alignment and dead time; calls emit(SpikeEvent) when the
/// channel's search window closes in this frame.
template <class CONFIG_T, class EMIT>
void align_channel(DetectorState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, std::uint64_t frame, int ch,
                   std::int32_t value, EMIT&& emit) {
    if (state.attention[ch] == 2) {
        state.searching[ch] = 1;
        state.count[ch] = 1;
        state.best_pos[ch] = 0;
        state.best_value[ch] = value;
    } else {
        if (more_extreme(value, state.best_value[ch], params.polarity)) {
            state.best_value[ch] = value;
            state.best_pos[ch] = state.count[ch];
        }
        state.count[ch] = static_cast<std::uint8_t>(state.count[ch] + 1);
    }
    if (state.count[ch] == params.align_window) {
        const int best_pos = state.best_pos[ch];
        emit(SpikeEvent{frame - static_cast<std::uint64_t>(params.align_window - 1 - best_pos), ch,
                        state.best_value[ch], swung_against(state.opposite_run[ch], state.best_value[ch])});
        state.searching[ch] = 0;
        const int hold = params.dead_time - params.align_window + best_pos;
        state.hold[ch] = hold > 0 ? hold : 0;
    }
}

/// Pass 2 for one flagged channel: a gate crossing becomes a crossing when spatially supported (sample_of as in
/// spatially_supported), then alignment.
template <class CONFIG_T, class SAMPLE_OF, class EMIT>
void align_flagged_channel(DetectorState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, std::uint64_t frame,
                           int ch, std::int32_t value, SAMPLE_OF&& sample_of, EMIT&& emit) {
    if (state.attention[ch] == 3)
        state.attention[ch] = spatially_supported(state, params, ch, value, sample_of) ? 2 : 0;
    if (state.attention[ch] != 0)
        align_channel(state, params, frame, ch, value, emit);
}

/// Pass 2 for the flagged channels of [begin, end), in channel order.
template <class CONFIG_T, class EMIT>
void align_flagged(DetectorState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, std::uint64_t frame,
                   const std::int32_t* x, int begin, int end, EMIT&& emit) {
    auto sample_of = [x](int p) { return x[p]; };
ALIGN_AND_EMIT:
    for (int ch = begin; ch < end; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
#pragma HLS PIPELINE II = 1
        align_flagged_channel(state, params, frame, ch, x[ch], sample_of, emit);
    }
}

/// Processes frame `frame` of referenced samples x for channels [begin, end): both passes.
template <class CONFIG_T, class EMIT>
void detect_frame(DetectorState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, std::uint64_t frame,
                  const std::int32_t* x, int begin, int end, EMIT&& emit) {
    if (track_noise_and_flag(state, params, frame, x, begin, end))
        align_flagged(state, params, frame, x, begin, end, emit);
}

/// End of stream: emits the candidates of channels still searching (their windows cut short), in channel order.
/// next_frame is the index of the first frame that was not processed.
template <class CONFIG_T, class EMIT>
void flush_detector(DetectorState<CONFIG_T>& state, std::uint64_t next_frame, int begin, int end, EMIT&& emit) {
FLUSH_CHANNELS:
    for (int ch = begin; ch < end; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
        if (!state.searching[ch])
            continue;
        emit(SpikeEvent{next_frame - state.count[ch] + state.best_pos[ch], ch, state.best_value[ch],
                        swung_against(state.opposite_run[ch], state.best_value[ch])});
        state.searching[ch] = 0;
    }
}

} // namespace hw
} // namespace spikeline
