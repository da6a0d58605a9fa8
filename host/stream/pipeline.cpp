#include "stream/pipeline.hpp"

#include <algorithm>
#include <cstdio>

namespace spikeline::stream {

using namespace std::chrono_literals;

namespace {

/// Gives a calibration's templates the ids first, first + 1, ...: a calibration learnt in the background started from
/// the ids the Phy folder would give next at the time, and unsorted spikes may have taken some since.
void renumber_templates(sort::Calibration& calibration, int first) {
    if (calibration.entries.empty())
        return;
    const int shift = first - calibration.entries.front().template_id;
    if (shift == 0)
        return;
    for (sort::Entry& entry : calibration.entries)
        entry.template_id += shift;
    HwSortParams& params = *calibration.params;
    for (int c = 0; c < params.n_channels; ++c)
        for (int e = 0; e < params.n_entries[c]; ++e)
            params.entries[c][e].template_id += shift;
}

} // namespace

StreamPipeline::StreamPipeline(PipelineSetup setup)
    : s_(std::move(setup)), stride_(static_cast<std::size_t>(s_.info.n_channels)),
      values_per_spike_(
          static_cast<std::size_t>(HwSortConfig::snippet_channels * (s_.geometry->pre + 1 + s_.geometry->post))),
      status_(s_.status), collecting_(s_.calibration_frames > 0),
      reservoir_(s_.sort.max_calibration_spikes, values_per_spike_, s_.track_motion),
      // 2 ms of history: enough to mirror noise without repeating it every packet.
      filler_(stride_, std::max<std::size_t>(2, static_cast<std::size_t>(s_.info.sample_rate * 0.002))),
      blanking_(s_.gap_blank_frames) {
    if (s_.track_motion || s_.learn) {
        // From the first block on, also while the first calibration collects, so that its snippets carry the
        // displacement they were seen at.
        tracking_ = std::make_unique<MotionTracking>(*s_.probe, s_.info.sample_rate, s_.geometry,
                                                     motion::MotionSettings{}, s_.track_motion);
    }
    next_learning_ = 2 * s_.calibration_frames;
    s_.backend->enable_sorting(s_.loaded_sorter ? s_.loaded_sorter->params : s_.geometry,
                               collecting_ || keep_snippets());
    if (s_.loaded_sorter) { // registered before any spike, so that the Phy folder keeps the sorter's template ids
        s_.sink->push(CalibrationItem{s_.loaded_sorter});
        current_ = s_.loaded_sorter;
        if (tracking_)
            tracking_->follow(*s_.loaded_sorter, true);
    }
    wall_start_ = std::chrono::steady_clock::now();
    last_status_time_ = wall_start_;
}

void StreamPipeline::publish(const std::vector<hw::SortedSpike>& spikes, bool at_end) {
    for (const hw::SortedSpike& spike : spikes) {
        std::int64_t latency_ns = -1;
        if (!at_end) {
            const std::uint64_t needed = spike.event.sample + s_.need_frames;
            while (arrivals_.size() > 1 && arrivals_.front().first <= needed)
                arrivals_.pop_front();
        }
        SpikeMessage message;
        message.sample = spike.event.sample;
        message.channel = spike.event.channel;
        message.unit = spike.unit;
        message.amplitude = static_cast<float>(spike.event.amplitude * s_.scale);
        if (s_.publisher) {
            message.host_time_ns = realtime_ns();
            if (!at_end && !arrivals_.empty())
                latency_ns = monotonic_ns() - arrivals_.front().second;
            message.latency_ns = latency_ns;
            s_.publisher->send(message);
            ++published_;
        } else if (!at_end && !arrivals_.empty()) {
            latency_ns = monotonic_ns() - arrivals_.front().second;
        }
        if (latency_ns >= 0)
            latency_.add(latency_ns);
        else
            ++flushed_spikes_;
        if (s_.live)
            s_.live->add_spike({message.sample, message.channel, message.unit, message.amplitude}, latency_ns);
    }
    spikes_total_ += spikes.size();
}

void StreamPipeline::publish_motion(std::size_t first_estimate) {
    if (!s_.publisher)
        return;
    const std::vector<motion::MotionBlock>& blocks = tracking_->estimator().blocks();
    MotionMessage message;
    for (const motion::MotionBlock& block : blocks) {
        message.shank.push_back(block.shank);
        message.depth_um.push_back(static_cast<float>(block.depth_um));
    }
    const std::vector<motion::MotionEstimate>& estimates = tracking_->estimates();
    for (std::size_t i = first_estimate; i < estimates.size(); ++i) {
        message.time_s = estimates[i].time_s;
        message.displacement_um = estimates[i].displacement;
        message.host_time_ns = realtime_ns();
        s_.publisher->send(message);
    }
}

void StreamPipeline::apply_calibration() {
    if (calibration_.ready() || (s_.wait_for_calibration && calibration_.busy()))
        take_calibration(calibration_.take(), false);
}

void StreamPipeline::take_calibration(CalibrationResult result, bool at_end) {
    const std::shared_ptr<sort::Calibration> calibration = result.calibration;
    if (first_in_flight_) {
        first_in_flight_ = false;
        first_ = std::move(result);
        if (!calibration)
            return;
        if (!at_end) {
            first_applied_frame_ = expected_;
            s_.backend->enable_sorting(calibration->params, keep_snippets());
            if (tracking_)
                tracking_->follow(*calibration, true);
        }
        s_.sink->push(CalibrationItem{calibration});
        current_ = calibration;
        return;
    }
    if (!calibration) { // too few spikes, say: the current units stay
        ++n_learning_skipped_;
        last_skip_reason_ = result.error;
        return;
    }
    renumber_templates(*calibration, s_.sink->next_template_id());
    s_.sink->push(CalibrationItem{calibration});
    if (!at_end && tracking_)
        tracking_->follow(*calibration, false); // the next table writes take the backend to its units
    current_ = calibration;
    ++n_learnt_;
}

void StreamPipeline::start_learning() {
    if (!s_.learn || !current_ || calibration_.busy() || expected_ < next_learning_)
        return;
    while (next_learning_ <= expected_) // points missed while an earlier calibration ran are not made up
        next_learning_ *= 2;
    CalibrationJob job;
    job.geometry = s_.geometry;
    job.sample = reservoir_.snapshot(); // the reservoir keeps sampling while the job runs
    if (!s_.sort.relearn_all)           // the next learning looks only at what these units leave unsorted
        reservoir_.restart();
    job.settings = s_.sort;
    job.first_template_id = s_.sink->next_template_id();
    job.previous = current_;
    if (s_.track_motion) {
        job.motion.probe = s_.probe;
        job.history = tracking_->history();
    }
    job.keep_basis = true; // the backend keeps its basis: the new units can be table writes
    calibration_.start(std::move(job));
}

void StreamPipeline::queue_unit_updates() {
    if (!tracking_)
        return;
    // Units follow the latest estimate from the next frame on, in every backend alike.
    std::vector<hw::TableWrite> writes = tracking_->table_writes(expected_);
    if (writes.empty())
        return;
    s_.backend->queue_table_writes(writes);
    s_.sink->push(UnitUpdatesItem{std::move(writes)});
}

void StreamPipeline::collect_for_calibration() {
    const std::size_t room = s_.sort.max_calibration_spikes - std::min(s_.sort.max_calibration_spikes, window_spikes_);
    const std::size_t n = std::min(room, sorted_.spikes.size());
    if (n == 0)
        return;
    auto chunk = std::make_shared<SpikeReservoir::Chunk>();
    chunk->spikes.assign(sorted_.spikes.begin(), sorted_.spikes.begin() + static_cast<std::ptrdiff_t>(n));
    if (!sorted_.snippets.empty())
        chunk->snippets.assign(sorted_.snippets.begin(),
                               sorted_.snippets.begin() + static_cast<std::ptrdiff_t>(n * values_per_spike_));
    if (s_.track_motion)
        for (std::size_t i = 0; i < n; ++i)
            chunk->displacement_um.push_back(tracking_->displacement_at_channel(sorted_.spikes[i].event.channel));
    window_spikes_ += n;
    window_.push_back(std::move(chunk));
}

void StreamPipeline::drop_blanked(SortOutput& sorted) {
    std::size_t kept = 0;
    const bool snippets = !sorted.snippets.empty();
    for (std::size_t i = 0; i < sorted.spikes.size(); ++i) {
        if (blanking_.blanked(sorted.spikes[i].event.sample)) {
            ++blanked_spikes_;
            continue;
        }
        if (kept != i) {
            sorted.spikes[kept] = sorted.spikes[i];
            if (snippets)
                std::copy_n(sorted.snippets.begin() + static_cast<std::ptrdiff_t>(i * values_per_spike_),
                            values_per_spike_,
                            sorted.snippets.begin() + static_cast<std::ptrdiff_t>(kept * values_per_spike_));
        }
        ++kept;
    }
    sorted.spikes.resize(kept);
    if (snippets)
        sorted.snippets.resize(kept * values_per_spike_);
}

void StreamPipeline::log_blanked_span(std::uint64_t until) {
    const std::uint64_t end = std::min(until, blank_end_);
    if (end > blank_first_)
        s_.gaps->add(blank_first_, end - blank_first_, "blanked");
    blank_first_ = blank_end_ = 0;
}

void StreamPipeline::process(std::vector<std::int16_t> frames, std::size_t n_frames, std::int64_t arrival_ns,
                             bool filled) {
    if (s_.duration_frames > 0 && expected_ + n_frames > s_.duration_frames)
        n_frames = static_cast<std::size_t>(s_.duration_frames - std::min(s_.duration_frames, expected_));
    if (n_frames == 0)
        return;
    if (first_arrival_ == 0)
        first_arrival_ = arrival_ns;
    arrivals_.emplace_back(expected_ + n_frames, arrival_ns);
    // Blocks far behind the current one cannot hold the last sample of a spike still to come.
    while (arrivals_.size() > 1 && arrivals_.front().first + 4096 < expected_)
        arrivals_.pop_front();
    s_.backend->process(frames.data(), n_frames, events_);
    events_.clear();
    count_artifacts();
    s_.backend->take_sorted(sorted_);
    drop_blanked(sorted_);
    publish(sorted_.spikes, false);
    const std::uint64_t processed = expected_ + n_frames;
    if (s_.decoding) {
        std::vector<decode::BinEstimate> bins =
            s_.decoding->add(sorted_.spikes, processed > s_.need_frames ? processed - s_.need_frames : 0, arrival_ns);
        if (s_.live)
            s_.live->add_decoded(bins);
        if (!bins.empty())
            s_.sink->push(DecodedItem{std::move(bins)});
    }
    if (tracking_) {
        const std::size_t before = tracking_->estimates().size();
        if (tracking_->add(sorted_, processed))
            publish_motion(before);
    }
    if (collecting_)
        collect_for_calibration();
    if (s_.learn)
        reservoir_.add(sorted_, tracking_.get());
    if (!sorted_.spikes.empty())
        s_.sink->push(SpikesItem{std::move(sorted_.spikes)});
    sorted_ = {};
    frames.resize(n_frames * stride_);
    if (filled)
        std::fill(frames.begin(), frames.end(), std::int16_t{0});
    else
        filler_.remember(frames.data(), n_frames);
    s_.sink->push(RawItem{std::move(frames), n_frames});
    expected_ += n_frames;
    if (blank_end_ > 0 && expected_ >= blank_end_)
        log_blanked_span(blank_end_);
    // Spikes still to come peak at most need_frames (plus the block's length) before the newest frame.
    blanking_.forget_before(expected_ > 4096 + s_.need_frames ? expected_ - 4096 - s_.need_frames : 0);
    if (collecting_ && expected_ >= s_.calibration_frames) {
        collecting_ = false;
        // Spikes stay unsorted until the calibration is ready.
        s_.backend->enable_sorting(s_.geometry, keep_snippets());
        CalibrationJob job;
        job.geometry = s_.geometry;
        job.sample = SpikeReservoir::Snapshot{std::move(window_)}; // joined on the calibration thread
        job.settings = s_.sort;
        if (s_.track_motion) {
            job.motion.probe = s_.probe;
            job.history = tracking_->history();
        }
        job.units_from = s_.units_from;
        first_in_flight_ = true;
        calibration_.start(std::move(job));
        window_ = {};
    }
    apply_calibration();
    start_learning();
    queue_unit_updates();
    if (s_.live)
        s_.live->block_done(expected_);
    if (s_.duration_frames > 0 && expected_ >= s_.duration_frames)
        stop_reading_->store(true);
}

void StreamPipeline::note_gap(std::uint64_t first, std::uint64_t n, const char* reason) {
    if (blank_end_ > 0)
        log_blanked_span(first);
    s_.gaps->add(first, n, reason);
    pending_gap_ += n;
}

void StreamPipeline::fill_gap(const std::int16_t* next_frame, std::int64_t arrival_ns) {
    if (pending_gap_ == 0)
        return;
    blanking_.add_gap(expected_, pending_gap_);
    blank_first_ = expected_ + pending_gap_;
    blank_end_ = blank_first_ + blanking_.blank_after();
    filler_.begin(pending_gap_, next_frame);
    const std::size_t piece = std::max<std::size_t>(1, static_cast<std::size_t>(s_.info.sample_rate / 1000.0));
    std::uint64_t n = pending_gap_;
    pending_gap_ = 0;
    while (n > 0 && !(s_.duration_frames > 0 && expected_ >= s_.duration_frames)) {
        const std::size_t m = static_cast<std::size_t>(std::min<std::uint64_t>(n, piece));
        std::vector<std::int16_t> frames(m * stride_);
        filler_.produce(m, frames.data());
        process(std::move(frames), m, arrival_ns, true);
        n -= m;
    }
}

void StreamPipeline::update_status(const BoundedQueue<SourceBlock>& queue, const LiveSource& source,
                                   const std::atomic<std::uint64_t>& overrun_blocks) {
    if (!s_.status)
        return;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - wall_start_).count();
    const double since = std::chrono::duration<double>(now - last_status_time_).count();
    if (since >= 1.0) {
        spikes_per_second_ = static_cast<double>(spikes_total_ - last_status_spikes_) / since;
        last_status_spikes_ = spikes_total_;
        last_status_time_ = now;
    }
    const double data_s = static_cast<double>(expected_) / s_.info.sample_rate;
    const nlohmann::json link = source.counters();
    char line[240];
    std::snprintf(line, sizeof line,
                  "stream: %.1f s  %.1f MS/s  %.2fx real time  queue %zu/%zu  drops %llu gap frames %llu "
                  "malformed %llu rejected %llu  %.0f spikes/s  p99 %.2f ms",
                  data_s, elapsed > 0 ? static_cast<double>(expected_ * stride_) / elapsed / 1e6 : 0.0,
                  elapsed > 0 ? data_s / elapsed : 0.0, queue.depth(), queue.capacity(),
                  static_cast<unsigned long long>(overrun_blocks.load()),
                  static_cast<unsigned long long>(link_gap_frames_ + overrun_gap_frames_),
                  static_cast<unsigned long long>(link.value("malformed", 0ull)),
                  static_cast<unsigned long long>(link.value("rejected", 0ull)), spikes_per_second_,
                  latency_.percentile_us(0.99) / 1000.0);
    status_.update(line);
}

void StreamPipeline::run(BoundedQueue<SourceBlock>& queue, std::atomic<bool>& stop_reading,
                         const std::atomic<bool>& stop, const LiveSource& source,
                         const std::atomic<std::uint64_t>& overrun_blocks) {
    stop_reading_ = &stop_reading;
    for (;;) {
        if (stop.load() || s_.sink->failed())
            stop_reading.store(true);
        std::optional<SourceBlock> block = queue.pop(20ms);
        if (!block) {
            apply_calibration();
            update_status(queue, source, overrun_blocks);
            if (queue.closed_and_empty())
                break;
            continue;
        }
        if (s_.sink->failed() || (s_.duration_frames > 0 && expected_ >= s_.duration_frames))
            continue; // drain: the reader is stopping
        // Gaps wait for the first frame after them, which their fill leads into.
        const std::uint64_t position = expected_ + pending_gap_;
        if (block->first_frame > position) { // the reader dropped blocks on a full queue
            const std::uint64_t n = block->first_frame - position;
            overrun_gap_frames_ += n;
            note_gap(position, n, "overrun");
        }
        if (block->first_frame < position) // cannot happen with the sources above; keep timing exact regardless
            continue;
        if (block->gap) {
            link_gap_frames_ += block->n_frames;
            note_gap(block->first_frame, block->n_frames, "link_loss");
            continue;
        }
        fill_gap(block->frames.data(), block->arrival_ns);
        process(std::move(block->frames), block->n_frames, block->arrival_ns);
        update_status(queue, source, overrun_blocks);
    }
    fill_gap(nullptr, monotonic_ns()); // a gap at the very end: nothing follows it
    status_.finish();
}

void StreamPipeline::count_artifacts() {
    artifacts_.clear();
    s_.backend->take_artifacts(artifacts_);
    artifacts_total_ += artifacts_.size();
}

void StreamPipeline::finish() {
    s_.backend->finish(events_);
    count_artifacts();
    s_.backend->take_sorted(sorted_);
    drop_blanked(sorted_);
    if (blank_end_ > 0)
        log_blanked_span(expected_);
    publish(sorted_.spikes, true);
    if (s_.decoding) {
        std::vector<decode::BinEstimate> bins = s_.decoding->add(sorted_.spikes, expected_, -1);
        if (s_.live)
            s_.live->add_decoded(bins);
        if (!bins.empty())
            s_.sink->push(DecodedItem{std::move(bins)});
    }
    if (!sorted_.spikes.empty())
        s_.sink->push(SpikesItem{std::move(sorted_.spikes)});
    if (s_.live)
        s_.live->flush(expected_);
    if (calibration_.busy()) // finished after the data ended: its units label no spike, but are recorded
        take_calibration(calibration_.take(), true);
    if (s_.publisher) {
        EndMessage end;
        end.spikes = published_;
        end.frames = expected_;
        s_.publisher->send(end);
    }
}

nlohmann::json StreamPipeline::calibration_json() const {
    nlohmann::json json = {{"calibration_s", s_.loaded_sorter ? 0.0 : s_.sort.calibration_s},
                           {"done", first_.calibration != nullptr}};
    if (s_.loaded_sorter)
        json["units"] = s_.loaded_sorter->units.size();
    if (first_.calibration) {
        json["spikes"] = first_.calibration->n_spikes;
        json["units"] = first_.calibration->units.size();
        json["wall_seconds"] = first_.wall_seconds;
        // Data time its units took effect at (null: only after the data ended, so every spike stayed unsorted).
        json["applied_at_s"] = first_applied_frame_ && s_.sort.sample_rate > 0
                                   ? nlohmann::json(static_cast<double>(*first_applied_frame_) / s_.sort.sample_rate)
                                   : nlohmann::json();
    }
    if (!first_.error.empty())
        json["error"] = first_.error;
    if (s_.units_from) {
        json["units_from"] = first_.units_from.to_json();
        json["units_from"]["folder"] = s_.units_from->folder.string();
        json["units_from"]["layout"] = s_.units_from->layout;
        json["units_from"]["labels_file"] = s_.units_from->labels_file;
    }
    return json;
}

nlohmann::json StreamPipeline::learning_json() const {
    nlohmann::json json = {{"enabled", s_.learn},
                           {"calibrations", n_learnt_},
                           {"skipped", n_learning_skipped_},
                           {"units", current_ ? current_->units.size() : 0}};
    if (!last_skip_reason_.empty())
        json["last_skip_reason"] = last_skip_reason_;
    return json;
}

} // namespace spikeline::stream
