#pragma once
// The stream's sink thread: what the pipeline hands over (samples, sorted spikes, calibrations, decoded bins, unit
// updates) is written in arrival order to the SpikeGLX copy of the stream, the Phy folder, sorter.json,
// decoded_velocity.npy and unit_updates.npy, off the pipeline thread, and every file is finalised when the queue
// closes.
#include "backend/backend.hpp"
#include "decode/online.hpp"
#include "io/recording.hpp"
#include "pipeline/motion_tracking.hpp"
#include "probe/probe.hpp"
#include "sort/calibration.hpp"
#include "sort/sorter_file.hpp"
#include "stream/bounded_queue.hpp"

#include <atomic>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace spikeline::stream {

struct RawItem {
    std::vector<std::int16_t> frames;
    std::size_t n_frames = 0;
};
struct SpikesItem {
    std::vector<hw::SortedSpike> spikes;
};
struct CalibrationItem {
    std::shared_ptr<const sort::Calibration> calibration;
};
struct DecodedItem {
    std::vector<decode::BinEstimate> bins;
};
struct UnitUpdatesItem {
    std::vector<hw::TableWrite> writes;
};
using SinkItem = std::variant<RawItem, SpikesItem, CalibrationItem, DecodedItem, UnitUpdatesItem>;

struct SinkSettings {
    std::filesystem::path out_dir;
    bool save_raw = true;           ///< write recording.bin
    io::RecordingInfo saved;        ///< what recording.bin holds (params.py points at it)
    std::string source_description; ///< for spikeline_sort.json
    double expected_duration_s = 0; ///< 0: unknown (a live stream)
    bool decoded = false;           ///< write decoded_velocity.npy
    bool unit_updates = false;      ///< write unit_updates.npy (motion tracking or learning on)
    /// Spikes are held back until the first CalibrationItem: Phy template ids must start with the calibration's,
    /// and unsorted spikes create templates as they come.
    bool hold_until_calibration = false;
    sort::SorterFileContext sorter_context;
    nlohmann::json phy_info; ///< extra fields of spikeline_sort.json (backend, settings)
};

class StreamSink {
public:
    /// Starts the thread. The probe and geometry must outlive the sink.
    StreamSink(SinkSettings settings, const probe::Probe& probe, std::shared_ptr<const HwSortParams> geometry);
    StreamSink(const StreamSink&) = delete;
    StreamSink& operator=(const StreamSink&) = delete;
    ~StreamSink();

    /// Queues an item (blocks while the queue is full); after a sink error, records that the queue closed early.
    void push(SinkItem item);
    /// Closes the queue and waits until every file is finalised (after an error too: what was written is kept).
    void finish();
    /// The sink failed (its error is rethrown by rethrow_error()); the pipeline then ends the stream.
    bool failed() const { return failed_.load(); }
    void rethrow_error() const;
    /// After finish(): the first error's message (empty: none), and whether it was a full disk (or file size limit).
    std::string error_text() const;
    bool disk_full() const { return disk_full_; }
    /// After finish(): frames handed to the sink, frames recording.bin keeps, spikes handed to the Phy folder and
    /// kept in it, and the files that could not be finalised (with the reason).
    std::uint64_t frames_received() const { return frames_received_; }
    std::uint64_t raw_frames_kept() const { return raw_frames_kept_; }
    std::uint64_t spikes_received() const { return spikes_received_; }
    std::uint64_t spikes_kept() const { return spikes_kept_; }
    const std::vector<std::string>& not_finished() const { return not_finished_; }
    std::size_t high_water() const { return queue_.high_water(); }
    /// The template id the Phy folder gives next once it has written everything pushed so far: the first id of a
    /// calibration pushed now (its templates are registered before any spike pushed after it).
    int next_template_id() const { return next_template_id_; }

private:
    void run();
    /// Records the first error and closes the queue.
    void fail(std::exception_ptr error);
    /// Follows the Phy writer's template ids (calibration entries, then a zero template per channel at its first
    /// unsorted spike) on the pushing thread, without waiting for the sink.
    void count_templates(const SinkItem& item);

    SinkSettings settings_;
    const probe::Probe& probe_;
    std::shared_ptr<const HwSortParams> geometry_;
    BoundedQueue<SinkItem> queue_{1000};
    std::atomic<bool> failed_{false};
    std::exception_ptr error_;
    bool disk_full_ = false;
    std::uint64_t frames_received_ = 0, raw_frames_kept_ = 0, spikes_received_ = 0, spikes_kept_ = 0;
    std::vector<std::string> not_finished_;
    int next_template_id_ = 0;
    bool calibrated_ = false;
    std::vector<bool> unsorted_channels_;
    std::thread thread_;
};

} // namespace spikeline::stream
