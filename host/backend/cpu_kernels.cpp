#include "backend/cpu_kernels.hpp"

#include <cmath>

// bandpass_tile needs AVX-512 BW and VL besides F (masked 16-bit loads, 16-bit blends) and VNNI (vpdpwssd: Ice Lake,
// Zen 4 and later); elsewhere it runs L1 frame by frame.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
// GCC 12 reports false "may be used uninitialized" warnings inside its own AVX-512 intrinsics (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace spikeline::cpu {

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
namespace {

constexpr int kLanes = 16; // int32 lanes of a 512-bit vector
// Rows are requested this many frames ahead: a tile touches a few lines of each row, rows kilobytes apart, which the
// hardware prefetchers do not follow (without these requests the stage ran at 0.4x).
constexpr std::size_t kPrefetchFrames = 8;
// A state s is carried as the 16-bit pair (s mod-balanced 2^14, its high part) so that vpmaddwd / vpdpwssd multiply
// both halves by 16-bit coefficients: s = high * 2^kSplit + low, low in [-2^13, 2^13).
constexpr int kSplit = HwConfig::coef_frac_bits;

constexpr bool middles_are_plus_or_minus_two() {
    for (int k = 0; k < HwConfig::n_sections; ++k)
        if (HwConfig::numerator_middle(k) != 2 && HwConfig::numerator_middle(k) != -2)
            return false;
    return true;
}

inline __m512i clamp_epi32(__m512i value, __m512i low, __m512i high) {
    return _mm512_min_epi32(_mm512_max_epi32(value, low), high);
}

/// The split pair of each lane's value as one int32 lane (low half in bits 0..15, high half in bits 16..31), from
/// value * 2^(16 - kSplit): the input's shift merges with its scaling to the state format.
inline __m512i split_scaled(__m512i scaled) {
    // High word of scaled + 2^15: (value + 2^13) >> 14. Low word: scaled's low word >> 2 (16-bit arithmetic shift),
    // value's bits 13..0 read as signed.
    const __m512i high = _mm512_add_epi32(scaled, _mm512_set1_epi32(1 << 15));
    return _mm512_mask_srai_epi16(high, static_cast<__mmask32>(0x55555555u), scaled, 16 - kSplit);
}

inline __m512i split(__m512i value) {
    return split_scaled(_mm512_slli_epi32(value, 16 - kSplit));
}

/// The value of a split pair.
inline __m512i join(__m512i pair) {
    const __m512i low = _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16);
    return _mm512_add_epi32(_mm512_slli_epi32(_mm512_srai_epi32(pair, 16), kSplit), low);
}

/// Requests the cache lines holding bytes [first, first + bytes).
template <_mm_hint kHint> inline void prefetch_bytes(const void* first, std::size_t bytes) {
    const auto start = reinterpret_cast<std::uintptr_t>(first);
    for (std::uintptr_t line = start & ~std::uintptr_t{63}; line < start + bytes; line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(line), kHint);
}

template <bool kClampStates>
void bandpass_tile_vector(hw::BandpassState<HwConfig>& state, const HwParams& params, const std::int16_t* in,
                          std::int32_t* out, std::size_t stride, std::size_t n_frames, int begin, int end,
                          const TileSums& sums) {
    constexpr int S = HwConfig::n_sections;
    constexpr int F = HwConfig::state_frac_bits;
    static_assert(middles_are_plus_or_minus_two(), "the numerator's middle tap is computed as a shift");
    static_assert(HwConfig::coef_bits <= 16, "vpdpwssd multiplies 16-bit coefficients");
    // Halves of a numerator (at most four states) must fit 16 bits: |low| <= 4 * 2^13, |high| <= 4 * 2^(bits - 15).
    static_assert(HwConfig::state_bits - kSplit + 3 <= 16, "the high half of a numerator must fit 16 bits");
    // Low sums: |gain| * 2^15 + (|a1| + |a2|) * 2^13 + 2^13 < 2^31 for coefficients below 2^15.
    const int width = end - begin;
    const int full = width / kLanes;
    const int n_vectors = (width + kLanes - 1) / kLanes;
    const auto tail = static_cast<__mmask16>((1u << (width % kLanes)) - 1);
    auto mask_of = [&](int v) { return v < full ? static_cast<__mmask16>(0xffff) : tail; };

    // history[k][j][v]: the L1 state's history[k][j] of channels begin + 16v .. begin + 16v + 15, as split pairs.
    __m512i history[S + 1][2][kBandpassTile / kLanes];
    for (int k = 0; k <= S; ++k)
        for (int j = 0; j < 2; ++j)
            for (int v = 0; v < n_vectors; ++v)
                history[k][j][v] =
                    split(_mm512_maskz_loadu_epi32(mask_of(v), &state.history[k][j][begin + v * kLanes]));
    // Coefficient pairs: (c, 0) multiplies the low halves, (0, c) the high halves; feedback enters negated.
    __m512i gain_low[S], gain_high[S], a1_low[S], a1_high[S], a2_low[S], a2_high[S];
    auto low_pair = [](std::int32_t c) { return _mm512_set1_epi32(static_cast<std::int32_t>(c & 0xffff)); };
    auto high_pair = [](std::int32_t c) {
        return _mm512_set1_epi32(static_cast<std::int32_t>(static_cast<std::uint32_t>(c) << 16));
    };
    for (int k = 0; k < S; ++k) {
        gain_low[k] = low_pair(params.sections[k].gain);
        gain_high[k] = high_pair(params.sections[k].gain);
        a1_low[k] = low_pair(-params.sections[k].a1);
        a1_high[k] = high_pair(-params.sections[k].a1);
        a2_low[k] = low_pair(-params.sections[k].a2);
        a2_high[k] = high_pair(-params.sections[k].a2);
    }
    const __m512i state_round = _mm512_set1_epi32(1 << (kSplit - 1));
    const __m512i state_min = _mm512_set1_epi32(-(1 << (HwConfig::state_bits - 1)));
    const __m512i state_max = _mm512_set1_epi32((1 << (HwConfig::state_bits - 1)) - 1);
    constexpr int out_shift = F - HwConfig::sample_frac_bits;
    const __m512i out_round = _mm512_set1_epi32(1 << (out_shift - 1));
    const __m512i out_min = _mm512_set1_epi32(-(1 << (HwConfig::sample_bits - 1)));
    const __m512i out_max = _mm512_set1_epi32((1 << (HwConfig::sample_bits - 1)) - 1);
    __m512i clip[kBandpassTile / kLanes], negative_clip[kBandpassTile / kLanes];
    for (int v = 0; v < n_vectors && sums.plain != nullptr; ++v) {
        clip[v] = _mm512_maskz_loadu_epi32(mask_of(v), sums.clip + begin + v * kLanes);
        negative_clip[v] = _mm512_sub_epi32(_mm512_setzero_si512(), clip[v]);
    }

    for (std::size_t f = 0; f < n_frames; ++f) {
        const std::int16_t* row_in = in + f * stride + begin;
        std::int32_t* row_out = out + f * stride + begin;
        if (f + kPrefetchFrames < n_frames) {
            const std::size_t ahead = kPrefetchFrames * stride;
            prefetch_bytes<_MM_HINT_T0>(row_in + ahead, static_cast<std::size_t>(width) * sizeof(std::int16_t));
            prefetch_bytes<_MM_HINT_ET0>(row_out + ahead, static_cast<std::size_t>(width) * sizeof(std::int32_t));
        }
        __m512i sum = _mm512_setzero_si512(), clipped_sum = _mm512_setzero_si512();
        int beyond = 0;
        for (int v = 0; v < n_vectors; ++v) {
            const __mmask16 mask = mask_of(v);
            __m512i x = split_scaled(_mm512_slli_epi32(
                _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(mask, row_in + v * kLanes)), F + 16 - kSplit));
            __m512i y = x;
            for (int k = 0; k < S; ++k) {
                // As hw::biquad_step, exactly: acc = high * 2^14 + low, so round_shift(acc, 14) = high + ((low + 2^13)
                // >> 14).
                const __m512i x1 = history[k][0][v], x2 = history[k][1][v];
                const __m512i y1 = history[k + 1][0][v], y2 = history[k + 1][1][v];
                // Halves add word by word (16-bit lanes: no carry from the low half into the high half).
                const __m512i twice = _mm512_add_epi16(x1, x1);
                const __m512i outer = _mm512_add_epi16(x, x2);
                const __m512i numerator =
                    HwConfig::numerator_middle(k) < 0 ? _mm512_sub_epi16(outer, twice) : _mm512_add_epi16(outer, twice);
                __m512i low = _mm512_dpwssd_epi32(state_round, numerator, gain_low[k]);
                low = _mm512_dpwssd_epi32(low, y1, a1_low[k]);
                low = _mm512_dpwssd_epi32(low, y2, a2_low[k]);
                __m512i high = _mm512_madd_epi16(numerator, gain_high[k]);
                high = _mm512_dpwssd_epi32(high, y1, a1_high[k]);
                high = _mm512_dpwssd_epi32(high, y2, a2_high[k]);
                y = _mm512_add_epi32(high, _mm512_srai_epi32(low, kSplit));
                if constexpr (kClampStates)
                    y = clamp_epi32(y, state_min, state_max);
                history[k][1][v] = x1;
                history[k][0][v] = x;
                x = split(y);
            }
            history[S][1][v] = history[S][0][v];
            history[S][0][v] = x;
            const __m512i filtered =
                clamp_epi32(_mm512_srai_epi32(_mm512_add_epi32(y, out_round), out_shift), out_min, out_max);
            _mm512_mask_storeu_epi32(row_out + v * kLanes, mask, filtered);
            if (sums.plain != nullptr) { // as hw::accumulate_group_sums
                sum = _mm512_mask_add_epi32(sum, mask, sum, filtered);
                clipped_sum = _mm512_mask_add_epi32(clipped_sum, mask, clipped_sum,
                                                    clamp_epi32(filtered, negative_clip[v], clip[v]));
                beyond += std::popcount(
                    static_cast<unsigned>(_mm512_mask_cmpge_epi32_mask(mask, _mm512_abs_epi32(filtered), clip[v])));
            }
        }
        // |sum| <= 128 * 2^20: fits int32 as in the L1 sum.
        if (sums.plain != nullptr) {
            sums.plain[f] += _mm512_reduce_add_epi32(sum);
            sums.clipped[f] += _mm512_reduce_add_epi32(clipped_sum);
            sums.beyond[f] += beyond;
        }
    }

    for (int k = 0; k <= S; ++k)
        for (int j = 0; j < 2; ++j)
            for (int v = 0; v < n_vectors; ++v)
                _mm512_mask_storeu_epi32(&state.history[k][j][begin + v * kLanes], mask_of(v), join(history[k][j][v]));
}

} // namespace

void bandpass_tile(hw::BandpassState<HwConfig>& state, const HwParams& params, bool states_may_saturate,
                   const std::int16_t* in, std::int32_t* out, std::size_t stride, std::size_t n_frames, int begin,
                   int end, const TileSums& sums) {
    auto tile = states_may_saturate ? bandpass_tile_vector<true> : bandpass_tile_vector<false>;
    tile(state, params, in, out, stride, n_frames, begin, end, sums);
}
#else
void bandpass_tile(hw::BandpassState<HwConfig>& state, const HwParams& params, bool /*states_may_saturate*/,
                   const std::int16_t* in, std::int32_t* out, std::size_t stride, std::size_t n_frames, int begin,
                   int end, const TileSums& sums) {
    for (std::size_t f = 0; f < n_frames; ++f) {
        std::int32_t* row = out + f * stride;
        hw::bandpass_frame(state, params, in + f * stride, row, begin, end);
        if (sums.plain == nullptr)
            continue;
        for (int ch = begin; ch < end; ++ch) { // as hw::accumulate_group_sums
            sums.plain[f] += row[ch];
            sums.clipped[f] += hw::clip_sample(row[ch], sums.clip[ch]);
            sums.beyond[f] += row[ch] <= -sums.clip[ch] || row[ch] >= sums.clip[ch] ? 1 : 0;
        }
    }
}
#endif

bool bandpass_states_may_saturate(const HwParams& params) {
    constexpr double coef_one = 1 << HwConfig::coef_frac_bits;
    constexpr double state_limit = (1 << (HwConfig::state_bits - 1)) - 1; // |state| above it saturates
    // |input| <= 2^15 in the state format.
    double input_bound = std::ldexp(1.0, 15 + HwConfig::state_frac_bits);
    for (int k = 0; k < HwConfig::n_sections; ++k) {
        const hw::BiquadQ& c = params.sections[k];
        const double gain = c.gain / coef_one, a1 = c.a1 / coef_one, a2 = c.a2 / coef_one;
        const double middle = HwConfig::numerator_middle(k);
        // Impulse responses from the input (h) and from one step's rounding error (e), in double: their l1 norms,
        // until both have decayed (or the section does not decay: then it may saturate).
        double h1 = 0, h2 = 0, e1 = 0, e2 = 0, h_norm = 0, e_norm = 0;
        constexpr int kMaxSteps = 1 << 22;
        int n = 0;
        for (; n < kMaxSteps; ++n) {
            const double x = n == 0 ? 1.0 : n == 1 ? middle : n == 2 ? 1.0 : 0.0;
            const double h = gain * x - a1 * h1 - a2 * h2;
            const double e = (n == 0 ? 1.0 : 0.0) - a1 * e1 - a2 * e2;
            h_norm += std::abs(h);
            e_norm += std::abs(e);
            h2 = h1, h1 = h, e2 = e1, e1 = e;
            if (n > 2 && std::abs(h1) + std::abs(h2) + std::abs(e1) + std::abs(e2) < 1e-15)
                break;
        }
        if (n == kMaxSteps)
            return true;
        // A margin for the double-precision sums, and one LSB.
        const double output_bound = (h_norm * input_bound + 0.5 * e_norm) * (1 + 1e-6) + 1;
        if (!(output_bound < state_limit))
            return true;
        input_bound = output_bound;
    }
    return false;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
namespace {

/// reference_and_flag_loop in AVX-512 intrinsics, 16 channels at a time with the flags in mask registers: what GCC 12
/// makes of the plain loop spills, widens the byte flags to 64 channels per iteration and took a third of `detect`.
template <bool kSpatialRule>
bool reference_and_flag_vector(const std::int32_t* __restrict filtered, std::int32_t* __restrict referenced,
                               std::int32_t* __restrict noise, std::int32_t* __restrict hold,
                               const std::uint8_t* __restrict searching, std::uint8_t* __restrict attention,
                               std::int32_t* __restrict level, int begin, int end, std::int32_t reference,
                               std::int32_t step, std::int32_t gain, std::int32_t gate_gain, std::int32_t want_negative,
                               std::int32_t want_positive, std::int32_t* __restrict opposite_run,
                               std::int32_t run_sign) {
    constexpr int shift = HwConfig::noise_frac_bits - HwConfig::sample_frac_bits;
    constexpr int gain_shift = HwConfig::gain_frac_bits;
    const __m512i sample_min = _mm512_set1_epi32(-(1 << (HwConfig::sample_bits - 1)));
    const __m512i sample_max = _mm512_set1_epi32((1 << (HwConfig::sample_bits - 1)) - 1);
    const __m512i noise_max = _mm512_set1_epi32((1 << HwConfig::noise_bits) - 1);
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1), eight = _mm512_set1_epi32(8);
    const __m512i reference_v = _mm512_set1_epi32(reference), step_v = _mm512_set1_epi32(step);
    const __m512i gain_v = _mm512_set1_epi32(gain), gate_gain_v = _mm512_set1_epi32(gate_gain);
    const __m512i gain_round = _mm512_set1_epi32(1 << (gain_shift - 1));
    const __m128i flag_searching = _mm_set1_epi8(1), flag_crossing = _mm_set1_epi8(2), flag_gated = _mm_set1_epi8(3);
    // A sample is beyond +-limit in a wanted polarity when |value| > limit and its sign is wanted.
    const bool both = want_negative && want_positive;
    const auto wanted_sign = [&](__m512i value) -> __mmask16 {
        if (both)
            return 0xffff;
        if (want_negative)
            return _mm512_cmplt_epi32_mask(value, zero);
        return want_positive ? _mm512_cmpgt_epi32_mask(value, zero) : 0;
    };
    // ((m + 8) >> 4) * g rounded to Q4 (>> gain_shift), as threshold_from_noise; below 2^31.
    auto limit_of = [&](__m512i quarter, __m512i g) {
        return _mm512_srai_epi32(_mm512_add_epi32(_mm512_mullo_epi32(quarter, g), gain_round), gain_shift);
    };
    __m128i any = _mm_setzero_si128();
    for (int ch = begin; ch < end; ch += kLanes) {
        const auto m = static_cast<__mmask16>(end - ch >= kLanes ? 0xffff : (1u << (end - ch)) - 1);
        const __m512i value = clamp_epi32(_mm512_sub_epi32(_mm512_maskz_loadu_epi32(m, filtered + ch), reference_v),
                                          sample_min, sample_max);
        _mm512_mask_storeu_epi32(referenced + ch, m, value);
        const __m512i size = _mm512_abs_epi32(value);
        const __m512i magnitude = _mm512_min_epi32(_mm512_slli_epi32(size, shift), noise_max);
        // One step towards |value|, within [0, noise_max] (the current estimate is within it).
        const __m512i current = _mm512_maskz_loadu_epi32(m, noise + ch);
        __m512i updated = _mm512_mask_add_epi32(current, _mm512_cmpgt_epi32_mask(magnitude, current), current, step_v);
        updated = _mm512_mask_sub_epi32(updated, _mm512_cmplt_epi32_mask(magnitude, current), updated, step_v);
        _mm512_mask_storeu_epi32(noise + ch, m, _mm512_min_epi32(_mm512_max_epi32(updated, zero), noise_max));
        const __m512i held = _mm512_maskz_loadu_epi32(m, hold + ch);
        const __mmask16 free = _mm512_mask_testn_epi32_mask(m, held, held);
        _mm512_mask_storeu_epi32(hold + ch, m, _mm512_mask_sub_epi32(held, static_cast<__mmask16>(~free), held, one));
        const __mmask16 wanted = m & wanted_sign(value);
        const __m512i quarter = _mm512_srai_epi32(_mm512_add_epi32(current, eight), 4);
        const __mmask16 beyond = _mm512_mask_cmpgt_epi32_mask(wanted, size, limit_of(quarter, gain_v));
        // + 2 on a holding channel: pass 2 asks hw::outgrows_peak (rarely needed, so not computed for every channel)
        const __m128i held_offset = _mm_maskz_mov_epi8(static_cast<__mmask16>(m & ~free), flag_crossing);
        __m128i flag = _mm_setzero_si128();
        if constexpr (kSpatialRule) {
            const __mmask16 gated = _mm512_mask_cmpgt_epi32_mask(wanted, size, limit_of(quarter, gate_gain_v));
            flag = _mm_maskz_add_epi8(gated, flag_gated, held_offset);
            _mm512_mask_storeu_epi32(level + ch, m, current);
        }
        flag = _mm_mask_add_epi8(flag, beyond, flag_crossing, held_offset);
        const __m128i was_searching = _mm_maskz_loadu_epi8(m, searching + ch);
        const __mmask16 searching_mask = _mm_test_epi8_mask(was_searching, was_searching);
        flag = _mm_mask_mov_epi8(flag, searching_mask, flag_searching);
        if (run_sign != 0) { // hw::next_opposite_run where the channel is not searching
            const __m512i against = run_sign > 0 ? value : _mm512_sub_epi32(zero, value);
            const __m512i run = _mm512_maskz_loadu_epi32(m, opposite_run + ch);
            const __m512i ended = _mm512_sub_epi32(zero, _mm512_abs_epi32(run));
            const __m512i next = _mm512_mask_max_epi32(ended, _mm512_cmpgt_epi32_mask(against, zero), run, against);
            _mm512_mask_storeu_epi32(opposite_run + ch, static_cast<__mmask16>(m & ~searching_mask), next);
        }
        _mm_mask_storeu_epi8(attention + ch, m, flag);
        any = _mm_or_si128(any, flag);
    }
    return _mm_test_all_zeros(any, any) == 0;
}

} // namespace
#endif

bool reference_and_flag(hw::DetectorState<HwConfig>& state, const HwParams& params, const ChannelRun& run,
                        std::int32_t mean, std::uint64_t frame, const std::int32_t* filtered,
                        std::int32_t* referenced) {
    const bool warm = frame >= params.warmup_frames;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
    auto loop = params.spatial_gate_gain != 0 ? reference_and_flag_vector<true> : reference_and_flag_vector<false>;
#else
    auto loop = params.spatial_gate_gain != 0 ? reference_and_flag_loop<true> : reference_and_flag_loop<false>;
#endif
    return loop(filtered, referenced, state.noise, state.hold, state.searching, state.attention, state.level, run.begin,
                run.end, run.group >= 0 ? mean : 0, warm ? params.noise_step_slow : params.noise_step_fast,
                params.threshold_gain, params.spatial_gate_gain, warm && params.polarity != hw::Polarity::positive,
                warm && params.polarity != hw::Polarity::negative, state.opposite_run,
                params.polarity == hw::Polarity::both ? 0 : (params.polarity == hw::Polarity::negative ? 1 : -1));
}

std::uint64_t flagged_bytes(const std::uint8_t* flags, int n) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
    const auto mask = n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
    const __m512i bytes = _mm512_maskz_loadu_epi8(mask, flags);
    return _mm512_test_epi8_mask(bytes, bytes);
#else
    std::uint64_t bits = 0;
    for (int k = 0; k < n; ++k)
        bits |= static_cast<std::uint64_t>(flags[k] != 0) << k;
    return bits;
#endif
}

template <bool kSpatialRule>
bool reference_and_flag_loop(const std::int32_t* __restrict filtered, std::int32_t* __restrict referenced,
                             std::int32_t* __restrict noise, std::int32_t* __restrict hold,
                             const std::uint8_t* __restrict searching, std::uint8_t* __restrict attention,
                             std::int32_t* __restrict level, int begin, int end, std::int32_t reference,
                             std::int32_t step, std::int32_t gain, std::int32_t gate_gain, std::int32_t want_negative,
                             std::int32_t want_positive, std::int32_t* __restrict opposite_run, std::int32_t run_sign) {
    constexpr std::int32_t sample_max = (1 << (HwConfig::sample_bits - 1)) - 1;
    constexpr std::int32_t sample_min = -(1 << (HwConfig::sample_bits - 1));
    constexpr std::int32_t noise_max = (1 << HwConfig::noise_bits) - 1;
    constexpr int shift = HwConfig::noise_frac_bits - HwConfig::sample_frac_bits;
    std::int32_t any = 0;
    for (int ch = begin; ch < end; ++ch) {
        const std::int32_t value = clamp_value(filtered[ch] - reference, sample_min, sample_max);
        referenced[ch] = value;
        const std::int32_t scaled = (value < 0 ? -value : value) << shift; // |value| <= 2^20: no overflow
        const std::int32_t magnitude = scaled > noise_max ? noise_max : scaled;
        const std::int32_t current = noise[ch];
        const std::int32_t threshold =
            (((current + 8) >> 4) * gain + (1 << (HwConfig::gain_frac_bits - 1))) >> HwConfig::gain_frac_bits;
        const std::int32_t raised = current + step > noise_max ? noise_max : current + step;
        const std::int32_t lowered = current - step > 0 ? current - step : 0;
        noise[ch] = magnitude > current ? raised : (magnitude < current ? lowered : current);
        const std::int32_t held = hold[ch];
        hold[ch] = held > 0 ? held - 1 : 0;
        const std::int32_t held_offset = 2 * (held != 0); // as in the vector version
        const std::int32_t crossing = ((want_negative & (value < -threshold)) | (want_positive & (value > threshold)));
        std::int32_t gated = 0;
        if constexpr (kSpatialRule) {
            const std::int32_t gate =
                (((current + 8) >> 4) * gate_gain + (1 << (HwConfig::gain_frac_bits - 1))) >> HwConfig::gain_frac_bits;
            gated = ((want_negative & (value < -gate)) | (want_positive & (value > gate)));
            level[ch] = current; // for pass 2 (a masked store, only where gated, ran 3 % slower)
        }
        // Two selects, not three nested: GCC 12 vectorises this form only.
        const std::int32_t fresh = crossing ? 2 + held_offset : gated * (3 + held_offset);
        const std::int32_t flag = searching[ch] ? 1 : fresh;
        const std::int32_t run = opposite_run[ch];
        const std::int32_t against = run_sign * value;
        const std::int32_t grown = run > against ? run : against;
        const std::int32_t next = against > 0 ? grown : (run > 0 ? -run : run);
        opposite_run[ch] = searching[ch] || run_sign == 0 ? run : next; // hw::next_opposite_run
        attention[ch] = static_cast<std::uint8_t>(flag);
        any |= flag;
    }
    return any != 0;
}

template bool reference_and_flag_loop<true>(const std::int32_t* __restrict, std::int32_t* __restrict,
                                            std::int32_t* __restrict, std::int32_t* __restrict,
                                            const std::uint8_t* __restrict, std::uint8_t* __restrict,
                                            std::int32_t* __restrict, int, int, std::int32_t, std::int32_t,
                                            std::int32_t, std::int32_t, std::int32_t, std::int32_t,
                                            std::int32_t* __restrict, std::int32_t);
template bool reference_and_flag_loop<false>(const std::int32_t* __restrict, std::int32_t* __restrict,
                                             std::int32_t* __restrict, std::int32_t* __restrict,
                                             const std::uint8_t* __restrict, std::uint8_t* __restrict,
                                             std::int32_t* __restrict, int, int, std::int32_t, std::int32_t,
                                             std::int32_t, std::int32_t, std::int32_t, std::int32_t,
                                             std::int32_t* __restrict, std::int32_t);

} // namespace spikeline::cpu
