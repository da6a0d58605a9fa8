#pragma once
// Vectorised rewrites of L1 stages for the CPU backend. They produce exactly the bits of the plain L1 functions
// (hw::bandpass_frame; hw::subtract_reference followed by hw::track_noise_and_flag), which tests/test_backend.cpp
// checks on every output. Loops run over runs of channels of one reference group, which removes L1's per-channel
// group lookup.
#include "backend/detect_settings.hpp"
#include "spikeline/hw/bandpass.hpp"
#include "spikeline/hw/common_reference.hpp"
#include "spikeline/hw/threshold_detector.hpp"

#include <algorithm>
#include <bit>
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

/// Widest channel range of bandpass_tile: 8 vectors of 16 int32 lanes are enough independent chains to hide the
/// multiplies' latency, and the tile's history (6 x 512 B) stays in L1.
inline constexpr int kBandpassTile = 128;

/// Whether hw::biquad_step's saturation of the filter states could act for these coefficients on some int16 input.
/// False when a bound of every section's output over all inputs stays inside the state range: the l1 norm of the
/// section's impulse response times the bound of its input, plus half an LSB of rounding per step through the
/// feedback (the Butterworth sections of 150-10000 Hz bands at 20-40 kHz stay within 0.57-0.81 of the range).
bool bandpass_states_may_saturate(const HwParams& params);

/// A tile's part of its group's hw::GroupSums, one entry per frame of the tile's frames, and the clip levels
/// (hw::ReferenceState, indexed by channel) of those frames.
struct TileSums {
    std::int32_t* plain;
    std::int32_t* clipped;
    std::int32_t* beyond;
    const std::int32_t* clip;
};

/// hw::bandpass_frame for channels [begin, end) (at most kBandpassTile, of one reference group) over n_frames
/// frame-major frames of `stride` channels, the history held in registers and L1 across the frames. Adds each
/// frame's part of hw::accumulate_group_sums to sums (unless sums.plain is null). states_may_saturate is
/// bandpass_states_may_saturate(params): when false the states are not clamped (two vector operations fewer per section
/// and 16 channels).
void bandpass_tile(hw::BandpassState<HwConfig>& state, const HwParams& params, bool states_may_saturate,
                   const std::int16_t* in, std::int32_t* out, std::size_t stride, std::size_t n_frames, int begin,
                   int end, const TileSums& sums);

/// Attention of a channel that is holding and beyond the threshold (kHeldCrossing) or the gate (kHeldCrossing + 1):
/// align_flagged_sparse makes it hw::track_noise_and_flag's 2 or 3 when hw::outgrows_peak ends the hold, else 0.
constexpr std::uint8_t kHeldCrossing = 4;

/// hw::subtract_reference followed by hw::track_noise_and_flag for one run, in one pass, except that a holding
/// channel beyond the threshold or gate is flagged kHeldCrossing(+1) for align_flagged_sparse to decide.
bool reference_and_flag(hw::DetectorState<HwConfig>& state, const HwParams& params, const ChannelRun& run,
                        std::int32_t mean, std::uint64_t frame, const std::int32_t* filtered, std::int32_t* referenced);

/// The loop of reference_and_flag on plain arrays (the AVX-512 build runs an intrinsics version of it): out of line
/// with restrict parameters, because GCC 12 does not vectorise the same loop once inlined into code holding the state
/// struct. Without the spatial rule it neither computes the gate nor stores levels (with them a detection pass takes
/// ~15 % longer).
template <bool kSpatialRule>
bool reference_and_flag_loop(const std::int32_t* __restrict filtered, std::int32_t* __restrict referenced,
                             std::int32_t* __restrict noise, std::int32_t* __restrict hold,
                             const std::uint8_t* __restrict searching, std::uint8_t* __restrict attention,
                             std::int32_t* __restrict level, int begin, int end, std::int32_t reference,
                             std::int32_t step, std::int32_t gain, std::int32_t gate_gain, std::int32_t want_negative,
                             std::int32_t want_positive, std::int32_t* __restrict opposite_run, std::int32_t run_sign);

/// Bit k set when flags[k] != 0, for k < n <= 64.
std::uint64_t flagged_bytes(const std::uint8_t* flags, int n);

/// hw::align_flagged, skipping unflagged channels 64 at a time (most frames flag a handful of 1024); sample_of(p)
/// gives the spatial rule a partner's sample of the same frame (partners may lie outside [begin, end)).
template <class SAMPLE_OF, class EMIT>
void align_flagged_sparse(hw::DetectorState<HwConfig>& state, const HwParams& params, std::uint64_t frame,
                          const std::int32_t* x, int begin, int end, SAMPLE_OF&& sample_of, EMIT&& emit) {
    for (int first = begin; first < end; first += 64)
        for (std::uint64_t bits = flagged_bytes(&state.attention[first], std::min(64, end - first)); bits != 0;
             bits &= bits - 1) {
            const int ch = first + std::countr_zero(bits);
            std::uint8_t& attention = state.attention[ch];
            if (attention >= kHeldCrossing) // 4 or 5: beyond the threshold or the gate while holding
                attention = hw::outgrows_peak(x[ch], state.best_value[ch]) ? attention - 2 : 0;
            hw::align_flagged_channel(state, params, frame, ch, x[ch], sample_of, emit);
        }
}

} // namespace spikeline::cpu
