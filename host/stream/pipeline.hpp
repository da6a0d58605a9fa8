#pragma once
// The stream's pipeline thread: blocks from the source queue (holes zero-filled) through the backend, each sorted
// spike published on ZeroMQ with its latency, online decoding, the first calibration collected and learnt in the
// background, and everything handed to the sink thread.
#include "backend/backend.hpp"
#include "sort/calibration.hpp"
#include "sort/sort_settings.hpp"
#include "stream/background_calibration.hpp"
#include "stream/bounded_queue.hpp"
#include "stream/gap_log.hpp"
#include "stream/latency.hpp"
#include "stream/publisher.hpp"
#include "stream/sink.hpp"
#include "stream/source.hpp"
#include "stream/stream_decoding.hpp"
#include "util/progress.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>

#include <nlohmann/json.hpp>

namespace spikeline::stream {

struct PipelineSetup {
    SourceInfo info;
    Backend* backend = nullptr;
    std::shared_ptr<const HwSortParams> geometry;
    sort::SortSettings sort;
    std::uint64_t need_frames = 0;                          ///< frames after a spike's peak it needs before it is final
    std::uint64_t calibration_frames = 0;                   ///< the first calibration's window (0: none)
    std::uint64_t duration_frames = 0;                      ///< stop after this many frames (0: never)
    double scale = 1;                                       ///< Q4 amplitude -> published uV (or LSB)
    std::shared_ptr<const sort::Calibration> loaded_sorter; ///< --sorter: labels from the first block on
    bool status = false;                                    ///< draw the status line
    Publisher* publisher = nullptr;                         ///< null: no publication
    StreamDecoding* decoding = nullptr;                     ///< null: no online decoding
    StreamSink* sink = nullptr;
    GapLog* gaps = nullptr;
};

class StreamPipeline {
public:
    explicit StreamPipeline(PipelineSetup setup);

    /// Processes blocks until the queue is closed and drained. stop_reading is set (for the reader) on a stop
    /// request, a sink error or when duration_frames have been processed.
    void run(BoundedQueue<SourceBlock>& queue, std::atomic<bool>& stop_reading, const std::atomic<bool>& stop,
             const LiveSource& source, const std::atomic<std::uint64_t>& overrun_blocks);
    /// End of stream: the spikes still waiting for samples after the last one, a calibration that finished after the
    /// data, END1.
    void finish();

    std::uint64_t frames() const { return expected_; }
    std::uint64_t spikes() const { return spikes_total_; }
    std::uint64_t published() const { return published_; }
    std::uint64_t released_at_end() const { return flushed_spikes_; }
    std::uint64_t link_gap_frames() const { return link_gap_frames_; }
    std::uint64_t overrun_gap_frames() const { return overrun_gap_frames_; }
    const LatencyHistogram& latency() const { return latency_; }
    std::chrono::steady_clock::time_point wall_start() const { return wall_start_; }
    /// The calibration part of stream.json.
    nlohmann::json calibration_json() const;

private:
    void publish(const std::vector<hw::SortedSpike>& spikes, bool at_end);
    void apply_calibration();
    void process(std::vector<std::int16_t> frames, std::size_t n_frames, std::int64_t arrival_ns);
    void fill_zeros(std::uint64_t n, const char* reason, std::int64_t arrival_ns);
    void update_status(const BoundedQueue<SourceBlock>& queue, const LiveSource& source,
                       const std::atomic<std::uint64_t>& overrun_blocks);

    PipelineSetup s_;
    std::size_t stride_;
    std::size_t values_per_spike_;
    LatencyHistogram latency_;
    ProgressLine status_;
    BackgroundCalibration calibration_;
    bool collecting_;
    SortOutput window_;
    std::deque<std::pair<std::uint64_t, std::int64_t>> arrivals_; ///< {end frame, arrival} of processed blocks
    std::vector<SpikeEvent> events_;
    SortOutput sorted_;
    std::uint64_t expected_ = 0, published_ = 0, spikes_total_ = 0, flushed_spikes_ = 0, link_gap_frames_ = 0;
    std::uint64_t overrun_gap_frames_ = 0;
    std::int64_t first_arrival_ = 0;
    std::chrono::steady_clock::time_point wall_start_;
    std::uint64_t last_status_spikes_ = 0;
    std::chrono::steady_clock::time_point last_status_time_;
    double spikes_per_second_ = 0;
    std::atomic<bool>* stop_reading_ = nullptr;
};

} // namespace spikeline::stream
