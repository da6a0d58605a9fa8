#pragma once
// What the reference, CPU and OpenCL backends share around the L1 sorting stage: its parameters, the events waiting
// for their post-peak samples and the collected output.
#include "backend/backend.hpp"

#include <deque>
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

    /// Queues an event for sorting (dropped with a count when max_waiting events wait, as hw::sort_add).
    void wait(const SpikeEvent& event);
    /// hw::sort_advance over a backend's ring of referenced frames (ring_frames rows of stride values): sorts every
    /// waiting event whose post-peak samples are in by `frame`.
    void sort_ready(std::uint64_t frame, const std::int32_t* ring, int ring_frames, int stride);
    /// Events lost to a full waiting queue.
    std::uint64_t dropped_events() const { return dropped_events_; }

private:
    std::unique_ptr<HwSortParams> params_;
    std::unique_ptr<hw::TableWriteQueue<HwSortConfig>> writes_ = std::make_unique<hw::TableWriteQueue<HwSortConfig>>();
    bool keep_snippets_ = false;
    SortOutput pending_;
    std::deque<SpikeEvent> waiting_;
    std::uint64_t dropped_events_ = 0;
};

} // namespace spikeline
