// spikeline's per-channel detection stages in OpenCL C, with exactly the integer arithmetic of L1
// (hls/include/spikeline/hw/: bandpass.hpp, common_reference.hpp, threshold_detector.hpp). The host passes L1's
// DetectConfig constants as -D options (STATE_FRAC_BITS, ...), so the widths here are L1's.
//
// Work is laid out in lanes: lane = probe * n_channels + channel. Frames of a chunk are [probe][frame][channel]
// (int16 in, int32 after the filter), so neighbouring work items read neighbouring words.

inline long round_shift(long value, int shift) {
    return (value + ((long)1 << (shift - 1))) >> shift;
}

inline int saturate_bits(long value, int bits) {
    const long low = -((long)1 << (bits - 1));
    const long high = ((long)1 << (bits - 1)) - 1;
    return (int)(value < low ? low : (value > high ? high : value));
}

// bandpass_frame for one channel over a chunk: sections holds (gain, a1, a2, numerator middle) per section; history
// is [N_SECTIONS + 1][2][n_lanes], L1's BandpassState with lanes for channels.
__kernel void bandpass(__global const short* frames, __global int* filtered, __global int* history,
                       __constant int* sections, int n_channels, int n_frames, int n_lanes) {
    const int lane = get_global_id(0);
    if (lane >= n_lanes)
        return;
    const int probe = lane / n_channels;
    const size_t first = (size_t)probe * n_frames * n_channels + (lane - probe * n_channels);
    int h[N_SECTIONS + 1][2];
    for (int k = 0; k <= N_SECTIONS; ++k)
        for (int j = 0; j < 2; ++j)
            h[k][j] = history[(k * 2 + j) * n_lanes + lane];
    for (int f = 0; f < n_frames; ++f) {
        const size_t at = first + (size_t)f * n_channels;
        int x = (int)frames[at] * (1 << STATE_FRAC_BITS);
        for (int k = 0; k < N_SECTIONS; ++k) {
            const int numerator = x + sections[4 * k + 3] * h[k][0] + h[k][1];
            const long acc = (long)sections[4 * k] * numerator - (long)sections[4 * k + 1] * h[k + 1][0] -
                             (long)sections[4 * k + 2] * h[k + 1][1];
            const int y = saturate_bits(round_shift(acc, COEF_FRAC_BITS), STATE_BITS);
            h[k][1] = h[k][0];
            h[k][0] = x;
            x = y;
        }
        h[N_SECTIONS][1] = h[N_SECTIONS][0];
        h[N_SECTIONS][0] = x;
        filtered[at] = saturate_bits(round_shift(x, STATE_FRAC_BITS - SAMPLE_FRAC_BITS), SAMPLE_BITS);
    }
    for (int k = 0; k <= N_SECTIONS; ++k)
        for (int j = 0; j < 2; ++j)
            history[(k * 2 + j) * n_lanes + lane] = h[k][j];
}

// accumulate_group_sums + group_means for one frame of one probe (row = probe * n_frames + frame).
__kernel void group_means(__global const int* filtered, __global const short* group_of,
                          __global const int* group_inverse_size, __global int* means, int n_channels, int n_rows) {
    const int row = get_global_id(0);
    if (row >= n_rows)
        return;
    __global const int* x = filtered + (size_t)row * n_channels;
    int sums[MAX_GROUPS];
    for (int g = 0; g < MAX_GROUPS; ++g)
        sums[g] = 0;
    for (int ch = 0; ch < n_channels; ++ch) {
        const int group = group_of[ch];
        if (group >= 0)
            sums[group] += x[ch];
    }
    for (int g = 0; g < MAX_GROUPS; ++g)
        means[(size_t)row * MAX_GROUPS + g] = (int)round_shift((long)sums[g] * group_inverse_size[g], 16);
}

inline int threshold_from_noise(int noise, int gain) {
    return (int)round_shift((long)(noise >> 4) * gain, GAIN_FRAC_BITS);
}

// Polarity: 0 negative, 1 positive, 2 both (hw::Polarity).
inline bool beyond_threshold(int value, int threshold, int polarity) {
    const bool negative = value < -threshold;
    const bool positive = value > threshold;
    return polarity == 0 ? negative : (polarity == 1 ? positive : negative || positive);
}

inline bool more_extreme(int value, int best, int polarity) {
    if (polarity == 0)
        return value < best;
    if (polarity == 1)
        return value > best;
    return (value < 0 ? -value : value) > (best < 0 ? -best : best);
}

// subtract_reference, track_noise_and_flag and align_channel for one channel over a chunk. The detector state
// (DetectorState, one word per lane and field) persists between chunks. Each candidate is written to the lane's own
// list as (frame of the chunk it was emitted at, peak frame relative to the chunk's first frame, value); a channel
// emits at most once per align_window frames, so `capacity` = n_frames / align_window + 1 entries always suffice.
// referenced (the samples after the common reference, for the sorting stage) is written when keep_referenced.
__kernel void detect(__global const int* filtered, __global const int* means, __global const short* group_of,
                     __global int* noise_state, __global int* searching_state, __global int* count_state,
                     __global int* best_pos_state, __global int* best_value_state, __global int* hold_state,
                     __global int* referenced, int keep_referenced, __global int* candidates,
                     __global int* n_candidates, int capacity, int n_channels, int n_frames, int n_lanes,
                     ulong first_frame, int noise_step_fast, int noise_step_slow, uint warmup_frames,
                     int threshold_gain, int polarity, int align_window, int dead_time) {
    const int lane = get_global_id(0);
    if (lane >= n_lanes)
        return;
    const int probe = lane / n_channels;
    const int ch = lane - probe * n_channels;
    const size_t first = (size_t)probe * n_frames * n_channels + ch;
    const int group = group_of[ch];
    const int noise_max = (1 << NOISE_BITS) - 1;
    const int shift = NOISE_FRAC_BITS - SAMPLE_FRAC_BITS;
    int noise = noise_state[lane];
    int searching = searching_state[lane];
    int count = count_state[lane];
    int best_pos = best_pos_state[lane];
    int best_value = best_value_state[lane];
    int hold = hold_state[lane];
    int emitted = 0;
    __global int* out = candidates + (size_t)lane * capacity * 3;
    for (int f = 0; f < n_frames; ++f) {
        const size_t at = first + (size_t)f * n_channels;
        const int reference = group >= 0 ? means[((size_t)probe * n_frames + f) * MAX_GROUPS + group] : 0;
        const int value = saturate_bits((long)filtered[at] - reference, SAMPLE_BITS);
        if (keep_referenced)
            referenced[at] = value;

        const ulong frame = first_frame + (ulong)f;
        const bool warm = frame >= (ulong)warmup_frames;
        const int step = warm ? noise_step_slow : noise_step_fast;
        const long scaled = (long)(value < 0 ? -value : value) << shift;
        const int magnitude = (int)(scaled > noise_max ? noise_max : scaled);
        const int threshold = threshold_from_noise(noise, threshold_gain);
        const int raised = noise + step > noise_max ? noise_max : noise + step;
        const int lowered = noise - step < 0 ? 0 : noise - step;
        noise = magnitude > noise ? raised : (magnitude < noise ? lowered : noise);
        const int held = hold;
        hold = held > 0 ? held - 1 : 0;
        const bool crossing = warm && held == 0 && beyond_threshold(value, threshold, polarity);
        if (!searching && !crossing)
            continue;
        if (!searching) {
            searching = 1;
            count = 1;
            best_pos = 0;
            best_value = value;
        } else {
            if (more_extreme(value, best_value, polarity)) {
                best_value = value;
                best_pos = count;
            }
            count = (count + 1) & 0xff; // an 8-bit counter in L1
        }
        if (count == align_window) {
            out[3 * emitted] = f;
            out[3 * emitted + 1] = f - (align_window - 1 - best_pos);
            out[3 * emitted + 2] = best_value;
            ++emitted;
            searching = 0;
            const int new_hold = dead_time - align_window + best_pos;
            hold = new_hold > 0 ? new_hold : 0;
        }
    }
    n_candidates[lane] = emitted;
    noise_state[lane] = noise;
    searching_state[lane] = searching;
    count_state[lane] = count;
    best_pos_state[lane] = best_pos;
    best_value_state[lane] = best_value;
    hold_state[lane] = hold;
}
