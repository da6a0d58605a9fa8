#pragma once
/// @file detector.hpp
/// The detection front end, one frame at a time: band-pass -> common reference -> noise tracker and threshold
/// detector -> spatio-temporal de-duplication. This is the plain L1 reference every backend must equal, and
/// detect_frames() is the body of the FPGA kernel (kernels/spikeline_detect.cpp).
#include "spikeline/hw/bandpass.hpp"
#include "spikeline/hw/common_reference.hpp"
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/spatial_dedup.hpp"
#include "spikeline/hw/threshold_detector.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

/// Everything the front end remembers between frames.
template <class CONFIG_T> struct DetectState {
    BandpassState<CONFIG_T> bandpass;
    ReferenceState<CONFIG_T> reference;
    DetectorState<CONFIG_T> detector;
    DedupState<CONFIG_T> dedup;
    std::int32_t filtered[CONFIG_T::max_channels] = {};
    std::int32_t referenced[CONFIG_T::max_channels] = {}; ///< the last frame after the common reference
    std::uint64_t frame = 0;                              ///< frames processed
};

/// Start of a stream: zero filters, noise estimates at their initial value, nothing pending.
template <class CONFIG_T> void reset_detect(DetectState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params) {
    state.bandpass = BandpassState<CONFIG_T>{};
    state.reference = ReferenceState<CONFIG_T>{};
    reset_detector(state.detector, params);
    reset_dedup(state.dedup);
    state.frame = 0;
}

/// Processes one frame (n_channels int16 samples); calls emit(SpikeEvent) for each final event.
template <class CONFIG_T, class EMIT>
void detect_one_frame(DetectState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, const std::int16_t* frame,
                      EMIT&& emit) {
    const int n = params.n_channels;
    bandpass_frame(state.bandpass, params, frame, state.filtered, 0, n);
    GroupSums<CONFIG_T> sums;
    std::int32_t means[CONFIG_T::max_groups];
#pragma HLS ARRAY_PARTITION variable = sums.plain complete // registers: a group's running sums are updated every clock
#pragma HLS ARRAY_PARTITION variable = sums.clipped complete
#pragma HLS ARRAY_PARTITION variable = sums.beyond complete
    clear_group_sums(sums);
    accumulate_group_sums(params, state.reference, state.frame, state.filtered, sums, 0, n);
    group_means(params, sums, means);
    subtract_reference(params, state.filtered, means, state.referenced, 0, n);
    take_reference_clips(state.reference, params, state.frame, state.detector.noise, 0, n);
    detect_frame(state.detector, params, state.frame, state.referenced, 0, n,
                 [&](const SpikeEvent& candidate) { dedup_add(state.dedup, params, candidate); });
    dedup_advance(state.dedup, params, state.frame, false, emit);
    ++state.frame;
}

/// End of stream: emits the remaining events.
template <class CONFIG_T, class EMIT>
void detect_flush(DetectState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params, EMIT&& emit) {
    flush_detector(state.detector, state.frame, 0, params.n_channels,
                   [&](const SpikeEvent& candidate) { dedup_add(state.dedup, params, candidate); });
    dedup_advance(state.dedup, params, state.frame, true, emit);
}

/// Processes n_frames time-major frames, then (if flush) ends the stream. Writes the first max_events events to
/// events and returns how many events there were; the caller sees lost events as a count above max_events.
template <class CONFIG_T>
std::uint32_t detect_frames(DetectState<CONFIG_T>& state, const DetectParams<CONFIG_T>& params,
                            const std::int16_t* frames, std::uint32_t n_frames, bool flush, SpikeEvent* events,
                            std::uint32_t max_events) {
    std::uint32_t count = 0;
    auto store = [&](const SpikeEvent& e) {
        if (count < max_events)
            events[count] = e;
        ++count;
    };
DETECT_FRAMES:
    for (std::uint32_t f = 0; f < n_frames; ++f) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 90000 avg = 30
        detect_one_frame(state, params, frames + static_cast<std::uint64_t>(f) * params.n_channels, store);
    }
    if (flush)
        detect_flush(state, params, store);
    return count;
}

} // namespace hw
} // namespace spikeline
