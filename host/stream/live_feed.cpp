#include "stream/live_feed.hpp"

#include <algorithm>

namespace spikeline::stream {

namespace {
// Bounds the spikes waiting for the view (a few MB) should its thread stall; beyond, spikes are counted as dropped.
constexpr std::size_t kMaxWaitingSpikes = 500000;
constexpr std::size_t kMaxWaitingBins = 10000;
} // namespace

LiveFeed::LiveFeed()
    : latency_bins_(static_cast<std::size_t>(kLatencyBins) + 1, 0), last_hand_over_(std::chrono::steady_clock::now()) {}

void LiveFeed::add_spike(const LiveSpike& spike, std::int64_t latency_ns) {
    if (pending_.spikes.size() < kMaxWaitingSpikes)
        pending_.spikes.push_back(spike);
    else
        ++pending_.dropped_spikes;
    if (latency_ns >= 0) {
        const auto bin = static_cast<std::size_t>(latency_ns / (kLatencyBinUs * 1000));
        ++latency_bins_[std::min(bin, latency_bins_.size() - 1)];
    }
}

void LiveFeed::add_decoded(const std::vector<decode::BinEstimate>& bins) {
    for (const decode::BinEstimate& bin : bins)
        if (pending_.decoded.size() < kMaxWaitingBins)
            pending_.decoded.push_back(bin);
}

void LiveFeed::block_done(std::uint64_t frames_processed) {
    pending_.frames = frames_processed;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_hand_over_ < std::chrono::milliseconds(25))
        return;
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock())
        return; // the view is taking a batch: keep this one for the next block
    hand_over();
    last_hand_over_ = now;
}

void LiveFeed::flush(std::uint64_t frames_processed) {
    pending_.frames = frames_processed;
    std::lock_guard lock(mutex_);
    hand_over();
}

void LiveFeed::hand_over() {
    // The view normally empties shared_ every 100 ms; if it has not, appending stays bounded.
    const std::size_t room = kMaxWaitingSpikes - std::min(kMaxWaitingSpikes, shared_.spikes.size());
    const std::size_t n = std::min(room, pending_.spikes.size());
    pending_.dropped_spikes += pending_.spikes.size() - n;
    if (shared_.spikes.empty() && n == pending_.spikes.size())
        shared_.spikes.swap(pending_.spikes);
    else
        shared_.spikes.insert(shared_.spikes.end(), pending_.spikes.begin(),
                              pending_.spikes.begin() + static_cast<std::ptrdiff_t>(n));
    pending_.spikes.clear();
    const std::size_t bin_room = kMaxWaitingBins - std::min(kMaxWaitingBins, shared_.decoded.size());
    shared_.decoded.insert(shared_.decoded.end(), pending_.decoded.begin(),
                           pending_.decoded.begin() +
                               static_cast<std::ptrdiff_t>(std::min(bin_room, pending_.decoded.size())));
    pending_.decoded.clear();
    shared_.latency_bins = latency_bins_;
    shared_.frames = pending_.frames;
    shared_.dropped_spikes = pending_.dropped_spikes;
}

LiveBatch LiveFeed::take() {
    LiveBatch batch;
    std::lock_guard lock(mutex_);
    batch.spikes.swap(shared_.spikes);
    batch.decoded.swap(shared_.decoded);
    batch.latency_bins = shared_.latency_bins;
    batch.frames = shared_.frames;
    batch.dropped_spikes = shared_.dropped_spikes;
    return batch;
}

} // namespace spikeline::stream
