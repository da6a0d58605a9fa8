// spikeline's per-channel detection stages in OpenCL C, with exactly the integer arithmetic of L1
// (hls/include/spikeline/hw/: bandpass.hpp, common_reference.hpp, threshold_detector.hpp). The host passes L1's
// DetectConfig constants as -D options (STATE_FRAC_BITS, ...), so the widths here are L1's.
//
// A work item takes VEC neighbouring channels of one probe through the whole chunk, in vector types: the filter
// recursion runs along frames, so the parallelism is across channels, and explicit vectors are what CPU
// implementations (pocl) turn into SIMD instructions; GPUs run them as VEC scalar operations. Rows of a chunk are
// padded to `padded` channels (a multiple of VEC; the host keeps the padding at 0, in no reference group, where it
// never crosses a threshold). Layouts: frames, filtered and referenced are [probe][frame][padded]; per-channel state
// is [lane] with lane = probe * padded + channel.

#define VEC 8
typedef int8 intv;

inline long round_shift(long value, int shift) {
    return (value + ((long)1 << (shift - 1))) >> shift;
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
__kernel void bandpass(__global const short* frames, __global int* filtered, __global int* history,
                       __constant int* sections, int padded, int n_frames, int n_vectors) {
    const int v = get_global_id(0);
    if (v >= n_vectors)
        return;
    const int per_probe = padded / VEC;
    const int probe = v / per_probe;
    const int lane = v * VEC;
    const size_t first = (size_t)probe * n_frames * padded + (size_t)(lane - probe * padded);
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

// accumulate_group_sums + group_means for one frame of one probe (row = probe * n_frames + frame). runs lists the
// channel ranges of one group as (begin, end, group); sums of at most 1024 values below 2^20 fit 32 bits, so the
// order of the additions does not change them.
__kernel void group_means(__global const int* filtered, __global const int* runs, int n_runs,
                          __global const int* group_inverse_size, __global int* means, int padded, int n_rows) {
    const int row = get_global_id(0);
    if (row >= n_rows)
        return;
    __global const int* x = filtered + (size_t)row * padded;
    int sums[MAX_GROUPS];
    for (int g = 0; g < MAX_GROUPS; ++g)
        sums[g] = 0;
    for (int r = 0; r < n_runs; ++r) {
        const int end = runs[3 * r + 1];
        int ch = runs[3 * r];
        intv partial = (intv)0;
        for (; ch + VEC <= end; ch += VEC)
            partial += vload8(0, x + ch);
        int sum = partial.s0 + partial.s1 + partial.s2 + partial.s3 + partial.s4 + partial.s5 + partial.s6 + partial.s7;
        for (; ch < end; ++ch)
            sum += x[ch];
        sums[runs[3 * r + 2]] += sum;
    }
    for (int g = 0; g < MAX_GROUPS; ++g)
        means[(size_t)row * MAX_GROUPS + g] = (int)round_shift((long)sums[g] * group_inverse_size[g], 16);
}

// Polarity: 0 negative, 1 positive, 2 both (hw::Polarity).
inline bool more_extreme(int value, int best, int polarity) {
    if (polarity == 0)
        return value < best;
    if (polarity == 1)
        return value > best;
    return (value < 0 ? -value : value) > (best < 0 ? -best : best);
}

// subtract_reference, track_noise_and_flag (in vectors) and align_channel (lane by lane, only in frames where a lane
// of the vector searches or crosses, as the cpu backend does) over a chunk. The detector state (DetectorState, one
// word per lane and field) persists between chunks. Each candidate goes to its lane's own list as (frame of the chunk
// it was emitted at, peak frame relative to the chunk's first frame, value); a channel emits at most once per
// align_window frames, so `capacity` = n_frames / align_window + 1 entries always suffice. referenced (the samples
// after the common reference, for the sorting stage) is written when keep_referenced.
__kernel void detect(__global const int* filtered, __global const int* means, __global const short* group_of,
                     __global int* noise_state, __global int* searching_state, __global int* count_state,
                     __global int* best_pos_state, __global int* best_value_state, __global int* hold_state,
                     __global int* referenced, int keep_referenced, __global int* candidates,
                     __global int* n_candidates, int capacity, int padded, int n_frames, int n_vectors,
                     ulong first_frame, int noise_step_fast, int noise_step_slow, uint warmup_frames,
                     int threshold_gain, int polarity, int align_window, int dead_time) {
    const int v = get_global_id(0);
    if (v >= n_vectors)
        return;
    const int per_probe = padded / VEC;
    const int probe = v / per_probe;
    const int lane = v * VEC;
    const int column = lane - probe * padded;
    const size_t first = (size_t)probe * n_frames * padded + (size_t)column;
    const int noise_max = (1 << NOISE_BITS) - 1;
    const int shift = NOISE_FRAC_BITS - SAMPLE_FRAC_BITS;

    int group[VEC];
    bool one_group = true; // the usual case: the vector's channels share a reference group
    for (int i = 0; i < VEC; ++i) {
        group[i] = group_of[column + i];
        one_group = one_group && group[i] == group[0];
    }
    intv noise = vload8(0, noise_state + lane);
    intv hold = vload8(0, hold_state + lane);
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
        __global const int* row_means = means + ((size_t)probe * n_frames + f) * MAX_GROUPS;
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

        const bool warm = first_frame + (ulong)f >= (ulong)warmup_frames;
        const int step = warm ? noise_step_slow : noise_step_fast;
        const intv magnitude = min(convert_int8(abs(value)) << shift, (intv)noise_max);
        // (noise >> 4) < 2^19 and threshold_gain < 2^12: the product and its rounding fit 32 bits.
        const intv threshold = ((noise >> 4) * threshold_gain + (1 << (GAIN_FRAC_BITS - 1))) >> GAIN_FRAC_BITS;
        const intv raised = min(noise + step, (intv)noise_max);
        const intv lowered = max(noise - step, (intv)0);
        noise = select(select(noise, lowered, magnitude < noise), raised, magnitude > noise);
        const intv held = hold;
        hold = max(held - 1, (intv)0);
        const intv negative = value < -threshold;
        const intv positive = value > threshold;
        const intv beyond = polarity == 0 ? negative : (polarity == 1 ? positive : (negative | positive));
        const intv crossing = warm ? ((held == 0) & beyond) : (intv)0;
        if (!any(crossing | (vload8(0, searching) != 0)))
            continue;
        int values[VEC], crossings[VEC], holds[VEC];
        vstore8(value, 0, values);
        vstore8(crossing, 0, crossings);
        vstore8(hold, 0, holds);
        for (int i = 0; i < VEC; ++i) {
            if (!searching[i] && !crossings[i])
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
                __global int* out = candidates + ((size_t)(lane + i) * capacity + emitted[i]) * 3;
                out[0] = f;
                out[1] = f - (align_window - 1 - best_pos[i]);
                out[2] = best_value[i];
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
    for (int i = 0; i < VEC; ++i) {
        n_candidates[lane + i] = emitted[i];
        searching_state[lane + i] = searching[i];
        count_state[lane + i] = count[i];
        best_pos_state[lane + i] = best_pos[i];
        best_value_state[lane + i] = best_value[i];
    }
}
