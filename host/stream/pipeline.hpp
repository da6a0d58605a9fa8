#pragma once
// The stream's pipeline thread: blocks from the source queue (holes filled, see gap_fill.hpp) through the backend, each
// sorted spike published on ZeroMQ with its latency, online decoding, motion tracking (estimates published, units moved
// by table writes), the first calibration and the later ones that keep learning computed in the background, and
// everything handed to the sink thread.
#include "backend/backend.hpp"
#include "pipeline/motion_tracking.hpp"
#include "pipeline/spike_reservoir.hpp"
#include "sort/calibration.hpp"
#include "sort/sort_settings.hpp"
#include "stream/background_calibration.hpp"
#include "stream/bounded_queue.hpp"
#include "stream/gap_fill.hpp"
#include "stream/gap_log.hpp"
#include "stream/latency.hpp"
#include "stream/live_feed.hpp"
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
#include <optional>

#include <nlohmann/json.hpp>

namespace spikeline::stream {

struct PipelineSetup {
    SourceInfo info;
    const probe::Probe* probe = nullptr;
    Backend* backend = nullptr;
    std::shared_ptr<const HwSortParams> geometry;
    sort::SortSettings sort;
    std::uint64_t need_frames = 0;        ///< frames after a spike's peak it needs before it is final
    std::uint64_t calibration_frames = 0; ///< the first calibration's window (0: none)
    std::uint64_t duration_frames = 0;    ///< stop after this many frames (0: never)
    std::uint64_t gap_blank_frames = 0;   ///< after a gap, spikes are dropped for this many frames (GapBlanking)
    double scale = 1;                     ///< Q4 amplitude -> published uV (or LSB)
    std::shared_ptr<const sort::Calibration> loaded_sorter; ///< --sorter: labels from the first block on
    /// --units-from: the first calibration builds the sorter from these units instead of clustering
    std::shared_ptr<const sort::OfflineUnits> units_from;
    bool track_motion = false;      ///< estimate the motion (published, motion.npy) and move the units with it
    bool learn = false;             ///< calibrate again at 2, 4, 8... x calibration_frames on a sample of every spike
    /// Take each calibration at the next block, waiting for it: a file read faster than real time would otherwise
    /// outrun it, and the labels would depend on the machine's load (live sources never wait).
    bool wait_for_calibration = false;
    bool status = false;            ///< draw the status line
    Publisher* publisher = nullptr; ///< null: no publication
    StreamDecoding* decoding = nullptr; ///< null: no online decoding
    StreamSink* sink = nullptr;
    GapLog* gaps = nullptr;
    LiveFeed* live = nullptr; ///< null: no live view (--http)
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
    /// Artefacts the backend found (hw/artifact_rejection.hpp).
    std::uint64_t artifacts() const { return artifacts_total_; }
    std::uint64_t published() const { return published_; }
    std::uint64_t released_at_end() const { return flushed_spikes_; }
    std::uint64_t link_gap_frames() const { return link_gap_frames_; }
    std::uint64_t overrun_gap_frames() const { return overrun_gap_frames_; }
    /// Spikes dropped because they peaked in a gap or in the blanked frames after it.
    std::uint64_t blanked_spikes() const { return blanked_spikes_; }
    std::uint64_t gap_blank_frames() const { return blanking_.blank_after(); }
    const LatencyHistogram& latency() const { return latency_; }
    std::chrono::steady_clock::time_point wall_start() const { return wall_start_; }
    /// The calibration part of stream.json.
    nlohmann::json calibration_json() const;
    /// The learning part of stream.json.
    nlohmann::json learning_json() const;
    /// Null when neither motion tracking nor learning is on.
    const MotionTracking* tracking() const { return tracking_.get(); }

private:
    void count_artifacts();
    void publish(const std::vector<hw::SortedSpike>& spikes, bool at_end);
    void publish_motion(std::size_t first_estimate);
    void apply_calibration();
    /// A background calibration's result: the first one enables sorting, a later one reaches the backend as table
    /// writes; both are registered with the sink before any spike they label. at_end: after the data (nothing left
    /// to label, only recorded).
    void take_calibration(CalibrationResult result, bool at_end);
    void start_learning();
    void queue_unit_updates();
    bool keep_snippets() const { return tracking_ != nullptr || s_.learn; }
    /// filled: the frames stand for a gap (the raw copy gets zeros there: it keeps what was received).
    void process(std::vector<std::int16_t> frames, std::size_t n_frames, std::int64_t arrival_ns, bool filled = false);
    /// A gap of n frames from first (written to gaps.tsv); it is processed once the frame after it arrives.
    void note_gap(std::uint64_t first, std::uint64_t n, const char* reason);
    /// Processes the pending gap's fill, which ends just before next_frame (null: nothing follows).
    void fill_gap(const std::int16_t* next_frame, std::int64_t arrival_ns);
    /// Drops the sorted spikes (and their snippets) that peak in a blanked span.
    void drop_blanked(SortOutput& sorted);
    /// Keeps this block's spikes (snippets, displacements) for the first calibration while there is room.
    void collect_for_calibration();
    /// Writes the blanked span after the last gap to gaps.tsv once it is over (or cut short at the next gap).
    void log_blanked_span(std::uint64_t until);
    void update_status(const BoundedQueue<SourceBlock>& queue, const LiveSource& source,
                       const std::atomic<std::uint64_t>& overrun_blocks);

    PipelineSetup s_;
    std::size_t stride_;
    std::size_t values_per_spike_;
    LatencyHistogram latency_;
    ProgressLine status_;
    BackgroundCalibration calibration_;
    bool collecting_;
    /// The first calibration's spikes (its first max_calibration_spikes), a chunk per block: a growing vector would
    /// copy all of them on the pipeline thread each time it reallocates; the calibration thread joins the chunks.
    std::vector<std::shared_ptr<const SpikeReservoir::Chunk>> window_;
    std::size_t window_spikes_ = 0;
    SpikeReservoir reservoir_; ///< learning: a uniform sample of every spike so far
    std::unique_ptr<MotionTracking> tracking_;
    std::shared_ptr<const sort::Calibration> current_; ///< the calibration the backend labels with (null: none yet)
    bool first_in_flight_ = false;                     ///< the background job is the first calibration
    CalibrationResult first_;                          ///< the first calibration's result
    std::optional<std::uint64_t> first_applied_frame_; ///< where the first calibration's units took effect
    std::uint64_t next_learning_ = 0;
    int n_learnt_ = 0, n_learning_skipped_ = 0;
    std::string last_skip_reason_;
    std::deque<std::pair<std::uint64_t, std::int64_t>> arrivals_; ///< {end frame, arrival} of processed blocks
    std::vector<SpikeEvent> events_;
    GapFiller filler_;
    GapBlanking blanking_;
    std::uint64_t pending_gap_ = 0; ///< gap frames waiting for the frame after them (the fill's end)
    std::uint64_t blanked_spikes_ = 0;
    std::uint64_t blank_first_ = 0, blank_end_ = 0; ///< the blanked span after the last gap not yet in gaps.tsv
    SortOutput sorted_;
    std::uint64_t expected_ = 0, published_ = 0, spikes_total_ = 0, flushed_spikes_ = 0, link_gap_frames_ = 0;
    std::uint64_t artifacts_total_ = 0;
    std::vector<hw::ArtifactEvent> artifacts_; ///< taken after each block (counted: the stream writes no list)
    std::uint64_t overrun_gap_frames_ = 0;
    std::int64_t first_arrival_ = 0;
    std::chrono::steady_clock::time_point wall_start_;
    std::uint64_t last_status_spikes_ = 0;
    std::chrono::steady_clock::time_point last_status_time_;
    double spikes_per_second_ = 0;
    std::atomic<bool>* stop_reading_ = nullptr;
};

} // namespace spikeline::stream
