#pragma once
// What the pipeline thread hands to the live view (`stream --http`): spikes, frames processed, a coarse latency
// histogram and decoded velocities. The pipeline never waits for the view: it batches locally and hands a batch over
// only when try_lock succeeds (every ~25 ms at most); the view's thread takes what has been handed over.
#include "decode/online.hpp"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace spikeline::stream {

struct LiveSpike {
    std::uint64_t sample = 0;
    std::int32_t channel = 0;
    std::int32_t unit = -1; ///< -1: unsorted
    float amplitude = 0;    ///< uV (LSB when the gain is unknown)
};

/// Everything handed over since the last take().
struct LiveBatch {
    std::vector<LiveSpike> spikes;
    std::vector<decode::BinEstimate> decoded;
    std::vector<std::uint64_t> latency_bins; ///< cumulative, LiveFeed::kLatencyBins of kLatencyBinUs, then overflow
    std::uint64_t frames = 0;                ///< frames processed so far
    std::uint64_t dropped_spikes = 0;        ///< cumulative: spikes the view did not take in time (bounded memory)
};

class LiveFeed {
public:
    static constexpr int kLatencyBins = 100;
    static constexpr int kLatencyBinUs = 100; ///< 0..10 ms in 100 us bins, then one overflow bin

    LiveFeed();

    // Pipeline thread.
    /// One published spike and its latency (negative: released at the end, not counted).
    void add_spike(const LiveSpike& spike, std::int64_t latency_ns);
    void add_decoded(const std::vector<decode::BinEstimate>& bins);
    /// After each block: hands the batch over if the last hand-off is ~25 ms old and the view is not taking one.
    void block_done(std::uint64_t frames_processed);
    /// At the end of the stream: hands over whatever is left (waits for the lock; the pipeline is done).
    void flush(std::uint64_t frames_processed);

    // The view's thread.
    /// Moves out what has been handed over (latency_bins and frames are the latest totals).
    LiveBatch take();

private:
    void hand_over();

    // Owned by the pipeline thread.
    LiveBatch pending_;
    std::vector<std::uint64_t> latency_bins_;
    std::chrono::steady_clock::time_point last_hand_over_;

    // Shared, under mutex_.
    std::mutex mutex_;
    LiveBatch shared_;
};

} // namespace spikeline::stream
