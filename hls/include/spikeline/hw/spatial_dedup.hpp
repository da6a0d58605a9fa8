#pragma once
/// @file spatial_dedup.hpp
/// Spatio-temporal de-duplication: one event per spike. Channel c's neighbourhood is c itself and its neighbour list,
/// whose entries are near or far (flagged kFarNeighbour). A candidate A is dropped when a candidate B in A's
/// neighbourhood
///   - lies within +-dedup_window samples and ranks higher: larger |value|, then earlier sample, then lower channel
///     (the same spike seen on several contacts); from a far neighbour only when B is not later than A: a spike's
///     copies on far contacts come at the same time or later (it spreads from its peak and widens on the way),
///     while a coincident spike of another neuron is as often earlier, and is kept then; or
///   - precedes A by 1..shadow_window samples and is much larger: |A| * 256 < |B| * shadow_ratio (a secondary lobe
///     of B: the band-pass rebound after a large spike, a re-crossing after the dead time, or the later trough of a
///     multiphasic waveform, which reaches as far as the spike's footprint, so far neighbours too); for a candidate
///     flagged swing (threshold_detector.hpp: shaped like a later phase) any larger B: |A| < |B|.
/// Candidates are compared with all candidates, not only with survivors, so the result does not depend on arrival
/// order. A candidate with peak t is decided at frame t + dedup_window + align_window - 1, when every candidate
/// that could compete with it has been emitted; survivors come out sorted by (sample, channel).
///
/// Bounded work per frame (what the RTL needs to take one frame per line period whatever the input): a frame queues
/// at most max_frame_candidates candidates (in channel order) and the list holds max_pending; candidates beyond
/// either are dropped and counted. A frame end decides at most max_frame_decisions candidates, smallest (sample,
/// channel) first; the others wait for the next frame ends (a delay, not a loss: later candidates are at least
/// dedup_window + 1 samples after them, too late to compete), at most max_decision_delay frames: a candidate still
/// undecided then is dropped and counted, which bounds an event's latency whatever the input. At the end of the
/// stream every candidate is decided.
/// Artefact rejection (artifact_rejection.hpp) runs on the same candidates before they are queued.
#include "spikeline/hw/artifact_rejection.hpp"
#include "spikeline/hw/detect_config.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

template <class CONFIG_T> struct DedupState {
    SpikeEvent pending[CONFIG_T::max_pending] = {};
    std::uint8_t decided[CONFIG_T::max_pending] = {};
    std::int8_t group[CONFIG_T::max_pending] = {}; ///< artefact group of each pending candidate (-1: none)
    int n_pending = 0;
    int frame_candidates = 0;  ///< candidates queued since the last frame end
    std::uint64_t dropped = 0; ///< candidates lost to a full list or to the per-frame limit
    /// No frame end before this one can decide or forget a candidate (a lower bound; 0 when unknown): the others
    /// skip the scans of the list, most of a software backend's de-duplication time.
    std::uint64_t next_change = 0;
    ArtifactState<CONFIG_T> artifacts;
};

/// Frames from a candidate's peak to the frame end that decides it.
template <class CONFIG_T> std::uint64_t decision_latency(const DetectParams<CONFIG_T>& params) {
    return static_cast<std::uint64_t>(params.dedup_window + params.align_window - 1);
}

template <class CONFIG_T> void reset_dedup(DedupState<CONFIG_T>& state) {
    state.n_pending = 0;
    state.frame_candidates = 0;
    state.dropped = 0;
    state.next_change = 0;
    state.artifacts = ArtifactState<CONFIG_T>{};
}

/// Queues a candidate emitted in the current frame: dropped as an artefact when its group is blanking, else
/// dropped and counted when the frame's share or the list is full.
template <class CONFIG_T>
void dedup_add(DedupState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, const SpikeEvent& candidate) {
    const int group = artifact_group(params, candidate.channel);
    if (group >= 0 && artifact_count(state.artifacts, group))
        return;
    if (state.n_pending == CONFIG_T::max_pending || state.frame_candidates == CONFIG_T::max_frame_candidates) {
        ++state.dropped;
        return;
    }
    ++state.frame_candidates;
    state.group[state.n_pending] = static_cast<std::int8_t>(group);
    state.pending[state.n_pending] = candidate;
    state.decided[state.n_pending] = 0;
    ++state.n_pending;
    const std::uint64_t decidable = candidate.sample + decision_latency(params);
    if (decidable < state.next_change)
        state.next_change = decidable;
}

inline std::int32_t magnitude(const SpikeEvent& e) {
    return e.amplitude < 0 ? -e.amplitude : e.amplitude;
}

/// Whether b beats a among duplicates of one spike.
inline bool outranks(const SpikeEvent& b, const SpikeEvent& a) {
    if (magnitude(b) != magnitude(a))
        return magnitude(b) > magnitude(a);
    if (b.sample != a.sample)
        return b.sample < a.sample;
    return b.channel < a.channel;
}

enum class Neighbourhood : std::uint8_t { outside, near, far };

/// Where `other` lies from `channel`: the channel itself is near, then a list entry before the first negative one.
template <class CONFIG_T> Neighbourhood neighbourhood(const DetectParams<CONFIG_T>& params, int channel, int other) {
    static_assert(CONFIG_T::max_channels <= kFarNeighbour, "channel ids must fit below the far flag");
    if (channel == other)
        return Neighbourhood::near;
NEIGHBOUR_SCAN:
    for (int k = 0; k < CONFIG_T::max_neighbours; ++k) {
#pragma HLS UNROLL // the neighbour row is partitioned: 16 compares in parallel
        const int n = params.neighbours[channel][k];
        if (n < 0)
            return Neighbourhood::outside;
        if ((n & (kFarNeighbour - 1)) == other)
            return (n & kFarNeighbour) ? Neighbourhood::far : Neighbourhood::near;
    }
    return Neighbourhood::outside;
}

template <class CONFIG_T>
bool survives(const DedupState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, const SpikeEvent& a) {
    const std::uint64_t window = static_cast<std::uint64_t>(params.dedup_window);
    const std::uint64_t shadow = static_cast<std::uint64_t>(params.shadow_window);
    const std::int64_t scaled_a = std::int64_t{magnitude(a)} * 256;
DEDUP_COMPARE:
    for (int j = 0; j < state.n_pending; ++j) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 512 avg = 32
#pragma HLS PIPELINE II = 1
        const SpikeEvent& b = state.pending[j];
        const std::uint64_t distance = a.sample > b.sample ? a.sample - b.sample : b.sample - a.sample;
        const bool may_duplicate = distance <= window && outranks(b, a);
        const bool lobe = b.sample < a.sample && distance <= shadow &&
                          (scaled_a < std::int64_t{magnitude(b)} * params.shadow_ratio ||
                           (a.swing != 0 && magnitude(a) < magnitude(b)));
        if (!may_duplicate && !lobe)
            continue; // most pending candidates: no neighbour scan (a software backend's main cost here)
        const Neighbourhood where = neighbourhood(params, a.channel, b.channel);
        const bool duplicate = may_duplicate && (where == Neighbourhood::near || b.sample <= a.sample);
        if ((duplicate || lobe) && where != Neighbourhood::outside)
            return false;
    }
    return true;
}

/// Removes the undecided candidates of the groups declared in an artefact at this frame end, keeping the order.
template <class CONFIG_T> void remove_artifact_candidates(DedupState<CONFIG_T>& state) {
    int kept = 0;
DEDUP_ARTIFACT_SCAN:
    for (int i = 0; i < state.n_pending; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 512 avg = 32
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = state.pending inter false // writes go to kept <= i, reads to i: never ahead
        const int group = state.group[i];
        if (!state.decided[i] && group >= 0 && state.artifacts.declared[group]) {
            ++state.artifacts.dropped_candidates;
            continue;
        }
        state.pending[kept] = state.pending[i];
        state.decided[kept] = state.decided[i];
        state.group[kept] = state.group[i];
        ++kept;
    }
    state.n_pending = kept;
}

/// End of frame `frame` (or, when final is true, of the stream): updates the artefact state, decides up to
/// max_frame_decisions candidates whose competitors are all known (every one of them when final), calls
/// emit(SpikeEvent) for the survivors in (sample, channel) order, and forgets candidates no longer needed.
template <class CONFIG_T, class EMIT>
void dedup_advance(DedupState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, std::uint64_t frame, bool final,
                   EMIT&& emit) {
    artifact_end_frame(state.artifacts, params, frame);
    if (state.artifacts.any_declared)
        remove_artifact_candidates(state);
    state.frame_candidates = 0;
    if (!final && frame < state.next_change)
        return;
    const std::uint64_t latency = decision_latency(params);
DEDUP_DECIDE: // one candidate per decision: at most every pending one, and one more that finds none
    for (int decisions = 0; decisions <= CONFIG_T::max_pending; ++decisions) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 5 avg = 1
        if (!final && decisions == CONFIG_T::max_frame_decisions)
            break;
        // the smallest eligible (sample, channel), as the RTL's selection scan finds it
        int chosen = -1;
    DEDUP_SELECT:
        for (int i = 0; i < state.n_pending; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 512 avg = 32
#pragma HLS PIPELINE II = 1
            const SpikeEvent& a = state.pending[i];
            if (state.decided[i] || !(final || a.sample + latency <= frame))
                continue;
            if (chosen < 0 || a.sample < state.pending[chosen].sample ||
                (a.sample == state.pending[chosen].sample && a.channel < state.pending[chosen].channel))
                chosen = i;
        }
        if (chosen < 0)
            break;
        state.decided[chosen] = 1;
        if (survives(state, params, state.pending[chosen]))
            emit(state.pending[chosen]);
    }
    // Forget decided candidates that no undecided candidate can still need: a candidate is compared with later ones
    // up to max(dedup_window, shadow_window) samples after it. Drop those that waited too long for a decision.
    const std::uint64_t keep = static_cast<std::uint64_t>(
        params.dedup_window > params.shadow_window ? params.dedup_window : params.shadow_window);
    const std::uint64_t stale = latency + static_cast<std::uint64_t>(CONFIG_T::max_decision_delay);
    int kept = 0;
    std::uint64_t next_change = ~std::uint64_t{0};
DEDUP_COMPACT:
    for (int i = 0; i < state.n_pending; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 512 avg = 32
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = state.pending inter false // writes go to kept <= i, reads to i: never ahead
        if (!state.decided[i] && !final && state.pending[i].sample + stale <= frame) {
            ++state.dropped;
            continue;
        }
        const bool needed = !state.decided[i] || (!final && state.pending[i].sample + latency + keep > frame);
        if (needed) {
            // An undecided candidate is decided (or dropped, later still) from sample + latency on; a decided one is
            // forgotten from sample + latency + keep on.
            const std::uint64_t change = state.pending[i].sample + latency + (state.decided[i] ? keep : 0);
            if (change < next_change)
                next_change = change;
            state.pending[kept] = state.pending[i];
            state.decided[kept] = state.decided[i];
            state.group[kept] = state.group[i];
            ++kept;
        }
    }
    state.n_pending = kept;
    state.next_change = next_change;
}

} // namespace hw
} // namespace spikeline
