#pragma once
// What the reference and CPU backends share around the L1 sorting stage: its parameters and the collected output.
#include "backend/backend.hpp"

#include <memory>
#include <vector>

namespace spikeline {

class SortStageOutput {
public:
    /// A copy of params becomes the stage's table; writes still queued for the previous table are discarded.
    void enable(std::shared_ptr<const HwSortParams> params, bool keep_snippets);
    bool enabled() const { return params_ != nullptr; }
    const HwSortParams& params() const { return *params_; }

    /// Queues table writes (non-decreasing samples, none before `processed_frames`, the frames already processed).
    void queue_writes(const std::vector<hw::TableWrite>& writes, std::uint64_t processed_frames);
    /// Applies the queued writes whose sample is <= sample: call before sorting a spike of that sample, and with a
    /// sample every spike still to be sorted is past, so that the queue stays short.
    void apply_writes_until(std::uint64_t sample);
    /// Writes lost to a full queue (the host queued more than two whole tables ahead of the spikes).
    std::uint64_t dropped_writes() const { return writes_->dropped; }
    /// For hw::sort_advance: applies the writes due before a spike of that sample.
    auto before_spike() {
        return [this](std::uint64_t sample) { apply_writes_until(sample); };
    }

    /// Appends a sorted spike and, when kept, its snippet (compacted to pre + 1 + post columns).
    void add(const hw::SortedSpike& spike,
             const std::int32_t snippet[HwSortConfig::snippet_channels][HwSortConfig::max_snippet_samples]);
    void take(SortOutput& out);

private:
    std::unique_ptr<HwSortParams> params_;
    std::unique_ptr<hw::TableWriteQueue<HwSortConfig>> writes_ = std::make_unique<hw::TableWriteQueue<HwSortConfig>>();
    bool keep_snippets_ = false;
    SortOutput pending_;
};

} // namespace spikeline
