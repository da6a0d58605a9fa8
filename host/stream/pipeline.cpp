#include "stream/pipeline.hpp"

#include <algorithm>
#include <cstdio>

namespace spikeline::stream {

using namespace std::chrono_literals;

StreamPipeline::StreamPipeline(PipelineSetup setup)
    : s_(std::move(setup)), stride_(static_cast<std::size_t>(s_.info.n_channels)),
      values_per_spike_(
          static_cast<std::size_t>(HwSortConfig::snippet_channels * (s_.geometry->pre + 1 + s_.geometry->post))),
      status_(s_.status), collecting_(s_.calibration_frames > 0) {
    s_.backend->enable_sorting(s_.loaded_sorter ? s_.loaded_sorter->params : s_.geometry, collecting_);
    if (s_.loaded_sorter) // registered before any spike, so that the Phy folder keeps the sorter's template ids
        s_.sink->push(CalibrationItem{s_.loaded_sorter});
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
    }
    spikes_total_ += spikes.size();
}

void StreamPipeline::apply_calibration() {
    if (!calibration_.ready())
        return;
    if (const std::shared_ptr<sort::Calibration> result = calibration_.take()) {
        s_.backend->enable_sorting(result->params, false);
        s_.sink->push(CalibrationItem{result});
    }
}

void StreamPipeline::process(std::vector<std::int16_t> frames, std::size_t n_frames, std::int64_t arrival_ns) {
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
    s_.backend->take_sorted(sorted_);
    publish(sorted_.spikes, false);
    const std::uint64_t processed = expected_ + n_frames;
    if (s_.decoding) {
        std::vector<decode::BinEstimate> bins =
            s_.decoding->add(sorted_.spikes, processed > s_.need_frames ? processed - s_.need_frames : 0, arrival_ns);
        if (!bins.empty())
            s_.sink->push(DecodedItem{std::move(bins)});
    }
    if (collecting_) {
        const std::size_t room =
            s_.sort.max_calibration_spikes - std::min(s_.sort.max_calibration_spikes, window_.spikes.size());
        const std::size_t n = std::min(room, sorted_.spikes.size());
        window_.spikes.insert(window_.spikes.end(), sorted_.spikes.begin(),
                              sorted_.spikes.begin() + static_cast<std::ptrdiff_t>(n));
        window_.snippets.insert(window_.snippets.end(), sorted_.snippets.begin(),
                                sorted_.snippets.begin() + static_cast<std::ptrdiff_t>(n * values_per_spike_));
    }
    if (!sorted_.spikes.empty())
        s_.sink->push(SpikesItem{std::move(sorted_.spikes)});
    sorted_ = {};
    frames.resize(n_frames * stride_);
    s_.sink->push(RawItem{std::move(frames), n_frames});
    expected_ += n_frames;
    if (collecting_ && expected_ >= s_.calibration_frames) {
        collecting_ = false;
        s_.backend->enable_sorting(s_.geometry, false); // spikes stay unsorted until the calibration is ready
        calibration_.start(s_.geometry, std::move(window_), s_.sort);
        window_ = {};
    }
    apply_calibration();
    if (s_.duration_frames > 0 && expected_ >= s_.duration_frames)
        stop_reading_->store(true);
}

void StreamPipeline::fill_zeros(std::uint64_t n, const char* reason, std::int64_t arrival_ns) {
    s_.gaps->add(expected_, n, reason);
    const std::size_t piece = std::max<std::size_t>(1, static_cast<std::size_t>(s_.info.sample_rate / 1000.0));
    while (n > 0 && !(s_.duration_frames > 0 && expected_ >= s_.duration_frames)) {
        const std::size_t m = static_cast<std::size_t>(std::min<std::uint64_t>(n, piece));
        process(std::vector<std::int16_t>(m * stride_, 0), m, arrival_ns);
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
                  "malformed %llu  %.0f spikes/s  p99 %.2f ms",
                  data_s, elapsed > 0 ? static_cast<double>(expected_ * stride_) / elapsed / 1e6 : 0.0,
                  elapsed > 0 ? data_s / elapsed : 0.0, queue.depth(), queue.capacity(),
                  static_cast<unsigned long long>(overrun_blocks.load()),
                  static_cast<unsigned long long>(link_gap_frames_ + overrun_gap_frames_),
                  static_cast<unsigned long long>(link.value("malformed", 0ull)), spikes_per_second_,
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
            continue;                         // drain: the reader is stopping
        if (block->first_frame > expected_) { // the reader dropped blocks on a full queue
            const std::uint64_t n = block->first_frame - expected_;
            overrun_gap_frames_ += n;
            fill_zeros(n, "overrun", block->arrival_ns);
        }
        if (block->first_frame < expected_) // cannot happen with the sources above; keep timing exact regardless
            continue;
        if (block->gap) {
            s_.gaps->add(expected_, block->n_frames, "link_loss");
            link_gap_frames_ += block->n_frames;
        }
        process(std::move(block->frames), block->n_frames, block->arrival_ns);
        update_status(queue, source, overrun_blocks);
    }
    status_.finish();
}

void StreamPipeline::finish() {
    s_.backend->finish(events_);
    s_.backend->take_sorted(sorted_);
    publish(sorted_.spikes, true);
    if (s_.decoding) {
        std::vector<decode::BinEstimate> bins = s_.decoding->add(sorted_.spikes, expected_, -1);
        if (!bins.empty())
            s_.sink->push(DecodedItem{std::move(bins)});
    }
    if (!sorted_.spikes.empty())
        s_.sink->push(SpikesItem{std::move(sorted_.spikes)});
    if (calibration_.pending()) {
        // Finished after the data ended: its units label no spike, but are recorded.
        if (const std::shared_ptr<sort::Calibration> result = calibration_.take())
            s_.sink->push(CalibrationItem{result});
    }
    if (s_.publisher) {
        EndMessage end;
        end.spikes = published_;
        end.frames = expected_;
        s_.publisher->send(end);
    }
}

nlohmann::json StreamPipeline::calibration_json() const {
    nlohmann::json json = {{"calibration_s", s_.loaded_sorter ? 0.0 : s_.sort.calibration_s},
                           {"done", calibration_.result() != nullptr}};
    if (s_.loaded_sorter)
        json["units"] = s_.loaded_sorter->units.size();
    if (const auto& result = calibration_.result()) {
        json["spikes"] = result->n_spikes;
        json["units"] = result->units.size();
        json["wall_seconds"] = calibration_.wall_seconds();
    }
    if (!calibration_.error().empty())
        json["error"] = calibration_.error();
    return json;
}

} // namespace spikeline::stream
