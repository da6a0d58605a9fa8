// spikeline's per-channel detection stages in OpenCL C, with exactly the integer arithmetic of L1
// (hls/include/spikeline/hw/: bandpass.hpp, common_reference.hpp, threshold_detector.hpp). The host passes L1's
// DetectConfig constants as -D options (STATE_FRAC_BITS, ...), so the widths here are L1's.
//
// A work item takes VEC neighbouring channels of one probe through the whole chunk, in vector types: the filter
// recursion runs along frames, so the parallelism is across channels, and explicit vectors are what CPU
// implementations (pocl) turn into SIMD instructions; GPUs run them as VEC scalar operations. Rows of a chunk are
// padded to its probe's `padded` channels (a multiple of VEC; the host keeps the padding at 0, in no reference group,
// where it never crosses a threshold). The probes of a batch are independent recordings: each has its own channel
// count, parameters and number of frames in the launch (at most `stride` frames, the launch's longest; a probe with
// none only keeps its state). Layouts: frames, filtered and referenced are [probe][stride frames][its padded]
// (probe p's block starts at stride * lane_base(p)); means are [probe][stride frames][MAX_GROUPS]; per-channel state
// is [lane] with lane = lane_base(p) + channel.
//
// The common reference's clip levels (common_reference.hpp) are [2 banks][lane]: detect takes them from the noise
// estimates at the frames that start a period of REFERENCE_PERIOD frames, group_means reads them. The host launches at
// most REFERENCE_PERIOD frames of a probe at a time, so the levels a launch's group_means reads were taken by an
// earlier launch, and the bank detect overwrites in a launch is one its group_means has finished reading.

#define VEC 8
typedef int8 intv;

// Per probe, the host's table `layout` (PROBE_WORDS ints; fixed for the run) and `frames_now` (n_frames, first frame
// low and high word; per launch).
#define P_LANE_BASE 0
#define P_PADDED 1
#define P_RUNS_BEGIN 2
#define P_N_RUNS 3
#define P_NOISE_STEP_FAST 4
#define P_NOISE_STEP_SLOW 5
#define P_WARMUP_FRAMES 6
#define P_THRESHOLD_GAIN 7
#define P_POLARITY 8
#define P_ALIGN_WINDOW 9
#define P_DEAD_TIME 10
#define P_SPATIAL_GATE_GAIN 11
#define P_REFERENCE_CLIP_GAIN 12
#define P_SPATIAL_GAIN 13 // MAX_PARTNERS words, the last field
#define PROBE_WORDS (P_SPATIAL_GAIN + MAX_PARTNERS)
#define FRAMES_WORDS 3

inline long round_shift(long value, int shift) {
    return (value + ((long)1 << (shift - 1))) >> shift;
}

// The first frame of a probe's launch (frames_now's low and high words).
inline ulong first_frame_of(__global const int* frames_now, int probe) {
    return (ulong)(uint)frames_now[probe * FRAMES_WORDS + 1] | ((ulong)(uint)frames_now[probe * FRAMES_WORDS + 2] << 32);
}

// The bank of clip levels frame `frame` uses (reference_bank).
inline int reference_bank(ulong frame) {
    return (int)((frame / REFERENCE_PERIOD) & 1);
}

inline int sum_v(intv v) {
    return v.s0 + v.s1 + v.s2 + v.s3 + v.s4 + v.s5 + v.s6 + v.s7;
}

// clip_sample, in scalars and vectors, written as in L1 (clamp is undefined for clip < 0).
inline int clip_sample(int value, int clip) {
    return value < -clip ? -clip : (value > clip ? clip : value);
}

inline intv clip_sample_v(intv value, intv clip) {
    return select(select(value, clip, value > clip), -clip, value < -clip);
}

// The low half of a state in [-2^13, 2^13) and its high half: state = high * 2^COEF_FRAC_BITS + low. With 16-bit
// coefficients every product below is 16 x 16 -> 32 bits and the sums fit 32 bits (see bandpass.hpp), so the biquad
// needs no 64-bit arithmetic and still equals L1's round_shift of the exact 64-bit accumulator.
inline intv low_half(intv state) {
    return (state << (32 - COEF_FRAC_BITS)) >> (32 - COEF_FRAC_BITS);
}

inline intv high_half(intv state) {
    return (state + (1 << (COEF_FRAC_BITS - 1))) >> COEF_FRAC_BITS;
}

inline intv saturate_int_v(intv value, int bits) {
    return clamp(value, (intv)(-(1 << (bits - 1))), (intv)((1 << (bits - 1)) - 1));
}

// bandpass_frame over a chunk. sections holds (gain, a1, a2, numerator middle) per section; history is
// [N_SECTIONS + 1][2][lanes], L1's BandpassState.
// sections are the probe's (per probe N_SECTIONS * 4 words).
__kernel void bandpass(__global const short* frames, __global int* filtered, __global int* history,
                       __global const int* all_sections, __global const int* vector_probe,
                       __global const int* layout, __global const int* frames_now, int stride, int n_vectors) {
    const int v = get_global_id(0);
    if (v >= n_vectors)
        return;
    const int probe = vector_probe[v];
    int sections[N_SECTIONS * 4]; // private: the stores to filtered and history below cannot alias them
    for (int i = 0; i < N_SECTIONS * 4; ++i)
        sections[i] = all_sections[probe * N_SECTIONS * 4 + i];
    const int lane_base = layout[probe * PROBE_WORDS + P_LANE_BASE];
    const int padded = layout[probe * PROBE_WORDS + P_PADDED];
    const int n_frames = frames_now[probe * FRAMES_WORDS];
    const int lane = v * VEC;
    const size_t first = (size_t)stride * lane_base + (size_t)(lane - lane_base);
    const size_t lanes = (size_t)n_vectors * VEC;
    intv h[N_SECTIONS + 1][2];
    for (int k = 0; k <= N_SECTIONS; ++k)
        for (int j = 0; j < 2; ++j)
            h[k][j] = vload8(0, history + (k * 2 + j) * lanes + lane);
    for (int f = 0; f < n_frames; ++f) {
        const size_t at = first + (size_t)f * padded;
        intv x = convert_int8(vload8(0, frames + at)) * (1 << STATE_FRAC_BITS);
        for (int k = 0; k < N_SECTIONS; ++k) {
            const int gain = sections[4 * k], a1 = sections[4 * k + 1], a2 = sections[4 * k + 2];
            const int middle = sections[4 * k + 3];
            // Halves add like the states: the numerator's halves are the sums of the states' halves.
            const intv low_numerator = low_half(x) + middle * low_half(h[k][0]) + low_half(h[k][1]);
            const intv high_numerator = high_half(x) + middle * high_half(h[k][0]) + high_half(h[k][1]);
            const intv y1 = h[k + 1][0], y2 = h[k + 1][1];
            const intv low = (1 << (COEF_FRAC_BITS - 1)) + gain * low_numerator - a1 * low_half(y1) - a2 * low_half(y2);
            const intv high = gain * high_numerator - a1 * high_half(y1) - a2 * high_half(y2);
            const intv y = saturate_int_v(high + (low >> COEF_FRAC_BITS), STATE_BITS);
            h[k][1] = h[k][0];
            h[k][0] = x;
            x = y;
        }
        h[N_SECTIONS][1] = h[N_SECTIONS][0];
        h[N_SECTIONS][0] = x;
        const int out_shift = STATE_FRAC_BITS - SAMPLE_FRAC_BITS;
        vstore8(saturate_int_v((x + (1 << (out_shift - 1))) >> out_shift, SAMPLE_BITS), 0, filtered + at);
    }
    for (int k = 0; k <= N_SECTIONS; ++k)
        for (int j = 0; j < 2; ++j)
            vstore8(h[k][j], 0, history + (k * 2 + j) * lanes + lane);
}

// accumulate_group_sums + group_means for one frame of one probe (global ids: frame, probe), with the clip levels
// of the frame's bank. runs lists the channel ranges of one group as (begin, end, group), each probe's from its
// layout's runs_begin; sums of at most 1024 values below 2^20 fit 32 bits, so the order of the additions does not
// change them.
__kernel void group_means(__global const int* filtered, __global const int* all_runs,
                          __global const int* all_group_inverse_size, __global int* means,
                          __global const int* layout, __global const int* frames_now, int stride, int n_probes,
                          __global const int* clip_state, int n_lanes) {
    const int frame = get_global_id(0);
    const int probe = get_global_id(1);
    if (probe >= n_probes || frame >= frames_now[probe * FRAMES_WORDS])
        return;
    __global const int* runs = all_runs + 3 * layout[probe * PROBE_WORDS + P_RUNS_BEGIN];
    const int n_runs = layout[probe * PROBE_WORDS + P_N_RUNS];
    __global const int* group_inverse_size = all_group_inverse_size + probe * MAX_GROUPS;
    const size_t row = (size_t)probe * stride + frame;
    const int padded = layout[probe * PROBE_WORDS + P_PADDED];
    const int lane_base = layout[probe * PROBE_WORDS + P_LANE_BASE];
    __global const int* x = filtered + (size_t)stride * lane_base + (size_t)frame * padded;
    const int bank = reference_bank(first_frame_of(frames_now, probe) + (ulong)frame);
    __global const int* clip = clip_state + (size_t)bank * n_lanes + lane_base;
    int plain[MAX_GROUPS], clipped[MAX_GROUPS], beyond[MAX_GROUPS];
    for (int g = 0; g < MAX_GROUPS; ++g)
        plain[g] = clipped[g] = beyond[g] = 0;
    for (int r = 0; r < n_runs; ++r) {
        const int end = runs[3 * r + 1];
        int ch = runs[3 * r];
        intv plain_v = (intv)0, clipped_v = (intv)0, beyond_v = (intv)0;
        for (; ch + VEC <= end; ch += VEC) {
            const intv value = vload8(0, x + ch);
            const intv level = vload8(0, clip + ch);
            plain_v += value;
            clipped_v += clip_sample_v(value, level);
            beyond_v -= (value <= -level) | (value >= level); // a true comparison is -1
        }
        int plain_sum = sum_v(plain_v), clipped_sum = sum_v(clipped_v), beyond_sum = sum_v(beyond_v);
        for (; ch < end; ++ch) {
            const int value = x[ch], level = clip[ch];
            plain_sum += value;
            clipped_sum += clip_sample(value, level);
            beyond_sum += value <= -level || value >= level ? 1 : 0;
        }
        const int group = runs[3 * r + 2];
        plain[group] += plain_sum;
        clipped[group] += clipped_sum;
        beyond[group] += beyond_sum;
    }
    for (int g = 0; g < MAX_GROUPS; ++g) {
        // group_mean (the plain sum when about three quarters of the group are beyond their clip): beyond <= 1024
        // times round(2^16 / members) <= 2^16 fits 32 bits
        const int sum = beyond[g] * group_inverse_size[g] > 3 * (1 << 14) ? plain[g] : clipped[g];
        means[(size_t)row * MAX_GROUPS + g] = (int)round_shift((long)sum * group_inverse_size[g], 16);
    }
}

// Polarity: 0 negative, 1 positive, 2 both (hw::Polarity).
inline bool more_extreme(int value, int best, int polarity) {
    if (polarity == 0)
        return value < best;
    if (polarity == 1)
        return value > best;
    return (value < 0 ? -value : value) > (best < 0 ? -best : best);
}

// threshold_detector.hpp's spatially_supported for one lane: its partners' samples of this frame are referenced from
// the filtered row (the partners may lie in other work items' vectors).
inline bool spatially_supported(int value, int threshold, int level, __global const int* partners,
                                __global const int* row, __global const short* group_of, __global const int* row_means,
                                __global const int* settings) {
    int sum = 0;
    int n = 0;
    for (int k = 0; k < MAX_PARTNERS; ++k) {
        const int p = partners[k];
        if (p < 0)
            break;
        const int group = group_of[p];
        const int sample = clamp(row[p] - (group >= 0 ? row_means[group] : 0), -(1 << (SAMPLE_BITS - 1)),
                                 (1 << (SAMPLE_BITS - 1)) - 1);
        sum += clamp(sample, -threshold, threshold);
        ++n;
    }
    if (n == 0)
        return false;
    const int limit = (int)round_shift((long)((level + 8) >> 4) * settings[P_SPATIAL_GAIN + n - 1], GAIN_FRAC_BITS);
    const int v = n * value + sum;
    return value < 0 ? v < -limit : v > limit;
}

// subtract_reference, track_noise_and_flag (in vectors) and align_channel (lane by lane, only in frames where a lane
// of the vector searches or crosses, as the cpu backend does) over a chunk. The detector state (DetectorState, one
// word per lane and field) persists between chunks. Each candidate goes to its lane's own list as (frame of the chunk
// it was emitted at, peak frame relative to the chunk's first frame, value, swing); a channel emits at most once per
// align_window frames, so `capacity` = n_frames / align_window + 1 entries always suffice. referenced (the samples
// after the common reference, for the sorting stage) is written when keep_referenced. At the frame of the chunk that
// starts a period (at most one: the host launches at most REFERENCE_PERIOD frames), take_reference_clips.
__kernel void detect(__global const int* filtered, __global const int* means, __global const short* group_of,
                     __global int* noise_state, __global int* searching_state, __global int* count_state,
                     __global int* best_pos_state, __global int* best_value_state, __global int* hold_state,
                     __global int* referenced, int keep_referenced, __global int* candidates,
                     __global int* n_candidates, int capacity, __global const int* vector_probe,
                     __global const int* layout, __global const int* frames_now, int stride, int n_vectors,
                     __global const int* partners, __global int* clip_state, __global int* opposite_run_state) {
    const int v = get_global_id(0);
    if (v >= n_vectors)
        return;
    const int probe = vector_probe[v];
    __global const int* settings = layout + probe * PROBE_WORDS;
    const int spatial_gate_gain = settings[P_SPATIAL_GATE_GAIN];
    const int lane_base = settings[P_LANE_BASE];
    const int padded = settings[P_PADDED];
    const int noise_step_fast = settings[P_NOISE_STEP_FAST];
    const int noise_step_slow = settings[P_NOISE_STEP_SLOW];
    const uint warmup_frames = (uint)settings[P_WARMUP_FRAMES];
    const int threshold_gain = settings[P_THRESHOLD_GAIN];
    const int polarity = settings[P_POLARITY];
    const int align_window = settings[P_ALIGN_WINDOW];
    const int dead_time = settings[P_DEAD_TIME];
    const int reference_clip_gain = settings[P_REFERENCE_CLIP_GAIN];
    const int n_frames = frames_now[probe * FRAMES_WORDS];
    const ulong first_frame = first_frame_of(frames_now, probe);
    const int period_start = (int)((REFERENCE_PERIOD - first_frame % REFERENCE_PERIOD) % REFERENCE_PERIOD);
    const int lane = v * VEC;
    const int column = lane - lane_base;
    const size_t first = (size_t)stride * lane_base + (size_t)column;
    const int noise_max = (1 << NOISE_BITS) - 1;
    const int shift = NOISE_FRAC_BITS - SAMPLE_FRAC_BITS;

    int group[VEC];
    bool one_group = true; // the usual case: the vector's channels share a reference group
    for (int i = 0; i < VEC; ++i) {
        group[i] = group_of[lane + i];
        one_group = one_group && group[i] == group[0];
    }
    intv noise = vload8(0, noise_state + lane);
    intv hold = vload8(0, hold_state + lane);
    intv run = vload8(0, opposite_run_state + lane);
    int searching[VEC], count[VEC], best_pos[VEC], best_value[VEC], emitted[VEC];
    for (int i = 0; i < VEC; ++i) {
        searching[i] = searching_state[lane + i];
        count[i] = count_state[lane + i];
        best_pos[i] = best_pos_state[lane + i];
        best_value[i] = best_value_state[lane + i];
        emitted[i] = 0;
    }
    for (int f = 0; f < n_frames; ++f) {
        const size_t at = first + (size_t)f * padded;
        __global const int* row_means = means + ((size_t)probe * stride + f) * MAX_GROUPS;
        intv reference;
        if (one_group) {
            reference = (intv)(group[0] >= 0 ? row_means[group[0]] : 0);
        } else {
            int references[VEC];
            for (int i = 0; i < VEC; ++i)
                references[i] = group[i] >= 0 ? row_means[group[i]] : 0;
            reference = vload8(0, references);
        }
        // |filtered|, |reference| < 2^20: the difference and its saturation fit 32 bits.
        const intv value = clamp(vload8(0, filtered + at) - reference, -(1 << (SAMPLE_BITS - 1)),
                                 (1 << (SAMPLE_BITS - 1)) - 1);
        if (keep_referenced)
            vstore8(value, 0, referenced + at);

        if (f == period_start) {
            // threshold_from_noise in 64 bits: the gain may reach 2^16, (noise + 8) >> 4 2^19.
            const long8 clips = (convert_long8((noise + 8) >> 4) * reference_clip_gain + (1 << (GAIN_FRAC_BITS - 1))) >>
                                GAIN_FRAC_BITS;
            const int bank = 1 - reference_bank(first_frame + (ulong)f);
            vstore8(convert_int8(clips), 0, clip_state + (size_t)bank * n_vectors * VEC + lane);
        }
        const bool warm = first_frame + (ulong)f >= (ulong)warmup_frames;
        const int step = warm ? noise_step_slow : noise_step_fast;
        const intv magnitude = min(convert_int8(abs(value)) << shift, (intv)noise_max);
        // The estimate rounded to Q4, (noise + 8) >> 4 <= 2^19, times threshold_gain < 2^12: the product and its
        // rounding fit 32 bits.
        const intv quarter = (noise + 8) >> 4;
        const intv threshold = (quarter * threshold_gain + (1 << (GAIN_FRAC_BITS - 1))) >> GAIN_FRAC_BITS;
        const intv gate = (quarter * spatial_gate_gain + (1 << (GAIN_FRAC_BITS - 1))) >> GAIN_FRAC_BITS;
        const intv level = noise;
        const intv raised = min(noise + step, (intv)noise_max);
        const intv lowered = max(noise - step, (intv)0);
        noise = select(select(noise, lowered, magnitude < noise), raised, magnitude > noise);
        const intv held = hold;
        hold = max(held - 1, (intv)0);
        const intv negative = value < -threshold;
        const intv positive = value > threshold;
        const intv beyond = polarity == 0 ? negative : (polarity == 1 ? positive : (negative | positive));
        // outgrows_peak: a sample beyond 5/4 of the held peak ends the hold
        const intv peak_size = convert_int8(abs(vload8(0, best_value)));
        const intv released = (held == 0) | (convert_int8(abs(value)) * 4 > peak_size * 5);
        const intv crossing = warm ? (released & beyond) : (intv)0;
        const intv gate_negative = value < -gate;
        const intv gate_positive = value > gate;
        const intv gate_beyond =
            polarity == 0 ? gate_negative : (polarity == 1 ? gate_positive : (gate_negative | gate_positive));
        const intv gated = (warm && spatial_gate_gain != 0) ? (released & gate_beyond & ~crossing) : (intv)0;
        // next_opposite_run where the channel is not searching (polarity both: no runs)
        if (polarity != 2) {
            const intv against = polarity == 0 ? value : -value;
            const intv next = select(-convert_int8(abs(run)), max(run, against), against > 0);
            run = select(next, run, vload8(0, searching) != 0);
        }
        if (!any(crossing | gated | (vload8(0, searching) != 0)))
            continue;
        int values[VEC], crossings[VEC], holds[VEC], gateds[VEC], thresholds[VEC], levels[VEC], runs[VEC];
        vstore8(value, 0, values);
        vstore8(run, 0, runs);
        vstore8(crossing, 0, crossings);
        vstore8(hold, 0, holds);
        vstore8(gated, 0, gateds);
        vstore8(threshold, 0, thresholds);
        vstore8(level, 0, levels);
        for (int i = 0; i < VEC; ++i) {
            if (!searching[i] && !crossings[i] &&
                !(gateds[i] && spatially_supported(values[i], thresholds[i], levels[i], partners + (lane + i) * MAX_PARTNERS,
                                                   filtered + (size_t)stride * lane_base + (size_t)f * padded,
                                                   group_of + lane_base, row_means, settings)))
                continue;
            if (!searching[i]) {
                searching[i] = 1;
                count[i] = 1;
                best_pos[i] = 0;
                best_value[i] = values[i];
            } else {
                if (more_extreme(values[i], best_value[i], polarity)) {
                    best_value[i] = values[i];
                    best_pos[i] = count[i];
                }
                count[i] = (count[i] + 1) & 0xff; // an 8-bit counter in L1
            }
            if (count[i] == align_window) {
                __global int* out = candidates + ((size_t)(lane + i) * capacity + emitted[i]) * 4;
                out[0] = f;
                out[1] = f - (align_window - 1 - best_pos[i]);
                out[2] = best_value[i];
                out[3] = 4 * abs(runs[i]) >= 3 * abs(best_value[i]) && best_value[i] != 0; // swung_against
                ++emitted[i];
                searching[i] = 0;
                const int new_hold = dead_time - align_window + best_pos[i];
                holds[i] = new_hold > 0 ? new_hold : 0;
            }
        }
        hold = vload8(0, holds);
    }
    vstore8(noise, 0, noise_state + lane);
    vstore8(hold, 0, hold_state + lane);
    vstore8(run, 0, opposite_run_state + lane);
    for (int i = 0; i < VEC; ++i) {
        n_candidates[lane + i] = emitted[i];
        searching_state[lane + i] = searching[i];
        count_state[lane + i] = count[i];
        best_pos_state[lane + i] = best_pos[i];
        best_value_state[lane + i] = best_value[i];
    }
}
