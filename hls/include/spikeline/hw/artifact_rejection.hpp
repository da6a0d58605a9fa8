#pragma once
/// @file artifact_rejection.hpp
/// Artefact rejection per reference group (shank), with bounded state: the de-duplication (spatial_dedup.hpp)
/// counts the candidates each group emits per frame over a sliding window of artifact_window frames. A candidate
/// is emitted a fixed align_window - 1 frames after its channel crossed the threshold, so the count is that of the
/// group's crossings over the window. When, at the end of frame f, the window holds more than artifact_limit[g]
/// candidates, group g is declared in an artefact:
///   - its undecided candidates are removed from the pending list (with artifact_window <= dedup_window + 1 these
///     include every candidate counted in the window: they are decided dedup_window + align_window - 1 frames
///     after their peak);
///   - its candidates emitted in frames f + 1 .. f + artifact_blank are dropped as they arrive;
///   - if the group was not in an artefact at the end of frame f - 1 (declared, or blanking), an ArtifactEvent is
///     logged.
/// Dropped candidates still count in the window, so an artefact that goes on keeps the group declared.
/// artifact_window = 0 turns rejection off.
#include "spikeline/hw/detect_config.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

/// The start of an artefact on one group.
struct ArtifactEvent {
    std::uint64_t sample; ///< the frame of the latest crossing counted when the limit was passed
    std::int32_t group;
    std::int32_t crossings; ///< candidates in the window at that moment

    friend bool operator==(const ArtifactEvent& a, const ArtifactEvent& b) {
        return a.sample == b.sample && a.group == b.group && a.crossings == b.crossings;
    }
};

template <class CONFIG_T> struct ArtifactState {
    std::int32_t frame_count[CONFIG_T::max_groups] = {}; ///< candidates of the current frame
    std::int32_t window_sum[CONFIG_T::max_groups] = {};  ///< candidates of the window's frames
    std::int32_t blank_left[CONFIG_T::max_groups] = {};  ///< frames in which arriving candidates are dropped
    std::uint8_t active[CONFIG_T::max_groups] = {};      ///< declared at the last frame end, or blanking
    std::uint8_t declared[CONFIG_T::max_groups] = {};    ///< at the last frame end
    std::int32_t history[CONFIG_T::max_artifact_window][CONFIG_T::max_groups] = {}; ///< per frame of the window
    int slot = 0;                                                                   ///< history row of the oldest frame
    bool any_declared = false;                                                      ///< at the last frame end
    std::uint64_t dropped_candidates = 0; ///< candidates removed or dropped as artefacts
    std::uint64_t count = 0;              ///< artefacts logged since the start
    /// The last max_groups artefacts: artefact i (i < count) is log[i % max_groups]. A frame logs at most one per
    /// group, so a reader that takes them after every frame misses none.
    ArtifactEvent log[CONFIG_T::max_groups] = {};
};

/// The group whose artefact state a channel's candidates belong to, or -1 (no rejection for it).
template <class CONFIG_T> int artifact_group(const DetectParams<CONFIG_T>& params, int channel) {
    return params.artifact_window > 0 ? params.group_of[channel] : -1;
}

/// Counts an arriving candidate of group g (>= 0); returns whether it must be dropped (its group is blanking).
template <class CONFIG_T> bool artifact_count(ArtifactState<CONFIG_T>& state, int group) {
    ++state.frame_count[group];
    if (state.blank_left[group] > 0) {
        ++state.dropped_candidates;
        return true;
    }
    return false;
}

/// End of frame `frame`: slides every group's window and declares the groups over their limit.
template <class CONFIG_T>
void artifact_end_frame(ArtifactState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, std::uint64_t frame) {
    state.any_declared = false;
    if (params.artifact_window <= 0)
        return;
    const std::uint64_t delay = static_cast<std::uint64_t>(params.align_window - 1);
    // Two passes: the window update has no branch and no loop-carried state but two OR-reductions into locals (so the
    // CPU build vectorises it: before, the flags stored into state every group kept it scalar, 7 % of a one-thread
    // detect), and the log is written in group order only in the rare frame that declares a new artefact.
    const int slot = state.slot;
    const std::int32_t blank = params.artifact_blank;
    std::uint8_t any_new_bit = 0, any_declared_bit = 0;
    std::uint8_t is_new[CONFIG_T::max_groups];
ARTIFACT_GROUPS:
    for (int g = 0; g < CONFIG_T::max_groups; ++g) {
#pragma HLS PIPELINE II = 1
        const std::int32_t count = state.frame_count[g];
        const std::int32_t sum = state.window_sum[g] + count - state.history[slot][g];
        const std::int32_t left = state.blank_left[g];
        const std::uint8_t declared = sum > params.artifact_limit[g] ? 1 : 0;
        const std::uint8_t was_active = state.active[g];
        const std::int32_t left_next = declared ? blank : (left > 0 ? left - 1 : 0);
        state.history[slot][g] = count;
        state.frame_count[g] = 0;
        state.window_sum[g] = sum;
        state.blank_left[g] = left_next;
        state.declared[g] = declared;
        state.active[g] = (declared | (left_next > 0 ? 1 : 0)) ? 1 : 0;
        is_new[g] = declared & (was_active ^ 1);
        any_new_bit |= is_new[g];
        any_declared_bit |= declared;
    }
    state.any_declared = any_declared_bit != 0;
    const bool any_new = any_new_bit != 0;
    if (any_new) {
    ARTIFACT_LOG:
        for (int g = 0; g < CONFIG_T::max_groups; ++g) {
#pragma HLS PIPELINE II = 1
            if (is_new[g]) {
                state.log[state.count % CONFIG_T::max_groups] =
                    ArtifactEvent{frame > delay ? frame - delay : 0, g, state.window_sum[g]};
                ++state.count;
            }
        }
    }
    state.slot = state.slot + 1 == params.artifact_window ? 0 : state.slot + 1;
}

} // namespace hw
} // namespace spikeline
