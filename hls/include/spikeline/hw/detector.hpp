#pragma once
/// @file detector.hpp
/// The detection front end, one frame at a time: band-pass -> common reference -> noise tracker and threshold
/// detector -> spatio-temporal de-duplication. This is the plain L1 reference every backend must equal.
#include "spikeline/hw/bandpass.hpp"
#include "spikeline/hw/common_reference.hpp"
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/spatial_dedup.hpp"
#include "spikeline/hw/threshold_detector.hpp"

#include <cstdint>

namespace spikeline::hw {

template <class CONFIG_T> class Detector {
public:
    explicit Detector(const DetectParams<CONFIG_T>& params) : params_(params) { reset_detector(detector_, params_); }

    /// Processes one frame (n_channels int16 samples); calls emit(SpikeEvent) for each final event.
    /// referenced_out, if not null, receives the filtered and re-referenced frame.
    template <class EMIT>
    void process_frame(const std::int16_t* frame, EMIT&& emit, std::int32_t* referenced_out = nullptr) {
        const int n = params_.n_channels;
        bandpass_frame(bandpass_, params_, frame, filtered_, 0, n);
        std::int32_t sums[CONFIG_T::max_groups] = {};
        std::int32_t means[CONFIG_T::max_groups];
        accumulate_group_sums(params_, filtered_, sums, 0, n);
        group_means(params_, sums, means);
        subtract_reference(params_, filtered_, means, referenced_, 0, n);
        if (referenced_out)
            for (int ch = 0; ch < n; ++ch)
                referenced_out[ch] = referenced_[ch];
        detect_frame(detector_, params_, frame_, referenced_, 0, n,
                     [this](const SpikeEvent& candidate) { dedup_add(dedup_, candidate); });
        dedup_advance(dedup_, params_, frame_, false, emit);
        ++frame_;
    }

    /// End of stream: emits the remaining events.
    template <class EMIT> void flush(EMIT&& emit) {
        flush_detector(detector_, frame_, 0, params_.n_channels,
                       [this](const SpikeEvent& candidate) { dedup_add(dedup_, candidate); });
        dedup_advance(dedup_, params_, frame_, true, emit);
    }

    std::uint64_t frames_processed() const { return frame_; }
    std::uint64_t candidates_dropped() const { return dedup_.dropped; }

private:
    DetectParams<CONFIG_T> params_;
    BandpassState<CONFIG_T> bandpass_;
    DetectorState<CONFIG_T> detector_;
    DedupState<CONFIG_T> dedup_;
    std::int32_t filtered_[CONFIG_T::max_channels] = {};
    std::int32_t referenced_[CONFIG_T::max_channels] = {};
    std::uint64_t frame_ = 0;
};

} // namespace spikeline::hw
