#pragma once
/// @file spatial_dedup.hpp
/// Spatio-temporal de-duplication: one event per spike. Channel c's neighbourhood is c itself and its neighbour list,
/// whose entries are near or far (flagged kFarNeighbour). A candidate A is dropped when a candidate B in A's
/// neighbourhood
///   - lies within +-dedup_window samples and ranks higher: larger |value|, then earlier sample, then lower channel
///     (the same spike seen on several contacts); from a far neighbour only when B is not later than A: a spike's
///     copies on far contacts come at the same time or later (it spreads from its peak and widens on the way),
///     while a coincident spike of another neuron is as often earlier, and is kept then; or
///   - is near, precedes A by 1..shadow_window samples and is much larger: |A| * 256 < |B| * shadow_ratio (a
///     secondary lobe of B: the band-pass rebound after a large spike, or a re-crossing after the dead time).
/// Candidates are compared with all candidates, not only with survivors, so the result does not depend on arrival
/// order. A candidate with peak t is decided at frame t + dedup_window + align_window - 1, when every candidate
/// that could compete with it has been emitted; survivors come out sorted by (sample, channel).
#include "spikeline/hw/detect_config.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

template <class CONFIG_T> struct DedupState {
    SpikeEvent pending[CONFIG_T::max_pending] = {};
    std::uint8_t decided[CONFIG_T::max_pending] = {};
    int n_pending = 0;
    std::uint64_t dropped = 0; ///< candidates lost because pending was full
};

/// Queues a candidate (dropped and counted when the queue is full).
template <class CONFIG_T> void dedup_add(DedupState<CONFIG_T>& state, const SpikeEvent& candidate) {
    if (state.n_pending == CONFIG_T::max_pending) {
        ++state.dropped;
        return;
    }
    state.pending[state.n_pending] = candidate;
    state.decided[state.n_pending] = 0;
    ++state.n_pending;
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
        const SpikeEvent& b = state.pending[j];
        const std::uint64_t distance = a.sample > b.sample ? a.sample - b.sample : b.sample - a.sample;
        const Neighbourhood where = neighbourhood(params, a.channel, b.channel);
        const bool near = where == Neighbourhood::near;
        const bool duplicate = distance <= window && outranks(b, a) && (near || b.sample <= a.sample);
        const bool lobe = near && b.sample < a.sample && distance <= shadow &&
                          scaled_a < std::int64_t{magnitude(b)} * params.shadow_ratio;
        if ((duplicate || lobe) && where != Neighbourhood::outside)
            return false;
    }
    return true;
}

/// Decides the candidates whose competitors are all known once frame `frame` has been processed (all of them when
/// final is true, at the end of the stream), calls emit(SpikeEvent) for the survivors in (sample, channel) order,
/// and forgets candidates no longer needed.
template <class CONFIG_T, class EMIT>
void dedup_advance(DedupState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, std::uint64_t frame, bool final,
                   EMIT&& emit) {
    const std::uint64_t latency = static_cast<std::uint64_t>(params.dedup_window + params.align_window - 1);
    // Survivors of this call, kept sorted by insertion (few per frame).
    SpikeEvent ready[CONFIG_T::max_pending];
    int n_ready = 0;
DEDUP_DECIDE:
    for (int i = 0; i < state.n_pending; ++i) {
        const SpikeEvent& a = state.pending[i];
        if (state.decided[i] || !(final || a.sample + latency <= frame))
            continue;
        state.decided[i] = 1;
        if (!survives(state, params, a))
            continue;
        int pos = n_ready;
        while (pos > 0 && (ready[pos - 1].sample > a.sample ||
                           (ready[pos - 1].sample == a.sample && ready[pos - 1].channel > a.channel))) {
            ready[pos] = ready[pos - 1];
            --pos;
        }
        ready[pos] = a;
        ++n_ready;
    }
    // Forget decided candidates that no undecided candidate can still need: a candidate is compared with later ones
    // up to max(dedup_window, shadow_window) samples after it.
    const std::uint64_t keep = static_cast<std::uint64_t>(
        params.dedup_window > params.shadow_window ? params.dedup_window : params.shadow_window);
    int kept = 0;
DEDUP_COMPACT:
    for (int i = 0; i < state.n_pending; ++i) {
        const bool needed = !state.decided[i] || (!final && state.pending[i].sample + latency + keep > frame);
        if (needed) {
            state.pending[kept] = state.pending[i];
            state.decided[kept] = state.decided[i];
            ++kept;
        }
    }
    state.n_pending = kept;
EMIT_READY:
    for (int i = 0; i < n_ready; ++i)
        emit(ready[i]);
}

} // namespace hw
} // namespace spikeline
