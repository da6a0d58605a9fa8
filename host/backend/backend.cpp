#include "backend/backend.hpp"

#include "backend/opencl_backend.hpp"
#include "backend/sort_stage.hpp"
#include "spikeline/hw/detector.hpp"
#include "util/errors.hpp"

#include <algorithm>

namespace spikeline {

void Backend::enable_sorting(std::shared_ptr<const HwSortParams>, bool) {
    throw InputError("the " + name() + " backend has no sorting stage yet: use --backend cpu (or reference)");
}

void Backend::take_sorted(SortOutput&) {}

void Backend::queue_table_writes(const std::vector<hw::TableWrite>&) {
    throw InputError("the " + name() +
                     " backend cannot apply unit updates (motion tracking): use --backend cpu, reference or "
                     "verilator, or sort with --no-motion");
}

void SortStageOutput::enable(std::shared_ptr<const HwSortParams> params, bool keep_snippets) {
    require(params != nullptr, "sorting parameters missing");
    if (params_) // a copy into the table it has: no fresh memory to fault in while a live stream waits
        *params_ = *params;
    else
        params_ = std::make_unique<HwSortParams>(*params);
    keep_snippets_ = keep_snippets;
    writes_->head = 0;
    writes_->count = 0;
}

void check_table_writes(const std::vector<hw::TableWrite>& writes, int n_channels, std::uint64_t processed_frames,
                        std::uint64_t last_queued) {
    std::uint64_t last = std::max(processed_frames, last_queued);
    for (const hw::TableWrite& w : writes) {
        if (w.sample < last)
            throw std::logic_error("table writes must come in sample order and not before the frames processed");
        if (w.channel < 0 || w.channel >= n_channels || w.slot >= HwSortConfig::max_entries || w.n_entries < 0 ||
            w.n_entries > HwSortConfig::max_entries)
            throw std::logic_error("table write outside the classifier table");
        last = w.sample;
    }
}

void SortStageOutput::queue_writes(const std::vector<hw::TableWrite>& writes, std::uint64_t processed_frames) {
    require(enabled(), "table writes before the sorting stage was enabled");
    const hw::TableWriteQueue<HwSortConfig>& q = *writes_;
    check_table_writes(writes, params_->n_channels, processed_frames,
                       q.count > 0 ? q.writes[(q.head + q.count - 1) % HwSortConfig::max_table_writes].sample : 0);
    for (const hw::TableWrite& w : writes) // all or nothing
        hw::queue_table_write(*writes_, w);
}

void SortStageOutput::apply_writes_until(std::uint64_t sample) {
    hw::apply_table_writes(*writes_, *params_, sample);
}

void SortStageOutput::wait(const SpikeEvent& event) {
    if (waiting_.size() == static_cast<std::size_t>(HwSortConfig::max_waiting)) {
        ++dropped_events_; // as hw::sort_add
        return;
    }
    waiting_.push_back(event);
}

void SortStageOutput::sort_ready(std::uint64_t frame, const std::int32_t* ring, int ring_frames, int stride) {
    std::int32_t snippet[HwSortConfig::snippet_channels][HwSortConfig::max_snippet_samples];
    while (!waiting_.empty() && waiting_.front().sample + static_cast<std::uint64_t>(params_->post) <= frame) {
        apply_writes_until(waiting_.front().sample);
        hw::SortedSpike spike;
        hw::sort_event(*params_, ring, ring_frames, stride, waiting_.front(), spike, snippet);
        add(spike, snippet);
        waiting_.pop_front();
    }
}

void SortStageOutput::add(
    const hw::SortedSpike& spike,
    const std::int32_t snippet[HwSortConfig::snippet_channels][HwSortConfig::max_snippet_samples]) {
    pending_.spikes.push_back(spike);
    if (!keep_snippets_)
        return;
    const int width = params_->pre + 1 + params_->post;
    for (int k = 0; k < HwSortConfig::snippet_channels; ++k)
        pending_.snippets.insert(pending_.snippets.end(), snippet[k], snippet[k] + width);
}

void SortStageOutput::take(SortOutput& out) {
    if (out.spikes.empty() && out.snippets.empty()) {
        // Hand the buffers over, and keep the caller's (cleared, with their capacity) for the next spikes: no copy
        // and no fresh pages every chunk.
        std::swap(out.spikes, pending_.spikes);
        std::swap(out.snippets, pending_.snippets);
    } else {
        out.spikes.insert(out.spikes.end(), pending_.spikes.begin(), pending_.spikes.end());
        out.snippets.insert(out.snippets.end(), pending_.snippets.begin(), pending_.snippets.end());
    }
    pending_.spikes.clear();
    pending_.snippets.clear();
}

void Backend::take_artifacts(std::vector<hw::ArtifactEvent>&) {}

template <class CONFIG_T>
void take_logged_artifacts(const hw::ArtifactState<CONFIG_T>& state, std::uint64_t& taken,
                           std::vector<hw::ArtifactEvent>& out) {
    constexpr auto capacity = static_cast<std::uint64_t>(CONFIG_T::max_groups);
    if (state.count - taken > capacity)
        throw std::logic_error("artefact log read too late: " + std::to_string(state.count - taken - capacity) +
                               " artefacts overwritten");
    for (; taken < state.count; ++taken)
        out.push_back(state.log[taken % capacity]);
}
template void take_logged_artifacts(const hw::ArtifactState<HwConfig>&, std::uint64_t&,
                                    std::vector<hw::ArtifactEvent>&);

namespace {

class ReferenceBackend final : public Backend {
public:
    explicit ReferenceBackend(const HwParams& params)
        : params_(std::make_unique<HwParams>(params)), state_(std::make_unique<hw::DetectState<HwConfig>>()),
          sort_state_(std::make_unique<hw::SortState<HwSortConfig>>()) {
        hw::reset_detect(*state_, *params_);
        hw::reset_sort(*sort_state_);
    }

    std::string name() const override { return "reference"; }

    auto add_sorted() {
        return [this](const hw::SortedSpike& spike,
                      const std::int32_t snippet[HwSortConfig::snippet_channels][HwSortConfig::max_snippet_samples]) {
            sorting_.add(spike, snippet);
        };
    }

    // One frame: detection, then (when sorting) the frame joins the ring, new events the queue, and the spikes whose
    // post-peak samples have all arrived are sorted.
    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        auto emit = [&](const SpikeEvent& e) {
            events.push_back(e);
            if (sorting_.enabled())
                hw::sort_add(*sort_state_, e);
        };
        for (std::size_t f = 0; f < n_frames; ++f) {
            hw::detect_one_frame(*state_, *params_, frames + f * static_cast<std::size_t>(params_->n_channels), emit);
            take_logged_artifacts(state_->dedup.artifacts, artifacts_taken_, artifacts_);
            if (sorting_.enabled()) {
                const std::uint64_t frame = state_->frame - 1;
                hw::sort_push_frame(*sort_state_, sorting_.params(), frame, state_->referenced);
                hw::sort_advance(*sort_state_, sorting_.params(), frame, add_sorted(), sorting_.before_spike());
            }
        }
        if (sorting_.enabled() && state_->frame > HwSortConfig::ring_frames)
            sorting_.apply_writes_until(state_->frame - HwSortConfig::ring_frames); // every spike before is sorted
    }

    void finish(std::vector<SpikeEvent>& events) override {
        hw::detect_flush(*state_, *params_, [&](const SpikeEvent& e) {
            events.push_back(e);
            if (sorting_.enabled())
                hw::sort_add(*sort_state_, e);
        });
        take_logged_artifacts(state_->dedup.artifacts, artifacts_taken_, artifacts_);
        if (sorting_.enabled())
            hw::sort_flush(*sort_state_, sorting_.params(), state_->frame, add_sorted(), sorting_.before_spike());
    }

    std::uint64_t lost_events() const override {
        return state_->dedup.dropped + sort_state_->dropped + sorting_.dropped_writes();
    }
    void take_artifacts(std::vector<hw::ArtifactEvent>& out) override {
        out.insert(out.end(), artifacts_.begin(), artifacts_.end());
        artifacts_.clear();
    }
    std::uint64_t artifact_candidates() const override { return state_->dedup.artifacts.dropped_candidates; }

    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) override {
        sorting_.enable(std::move(params), keep_snippets);
    }
    void take_sorted(SortOutput& out) override { sorting_.take(out); }
    void queue_table_writes(const std::vector<hw::TableWrite>& writes) override {
        sorting_.queue_writes(writes, state_->frame);
    }

private:
    std::unique_ptr<HwParams> params_;
    std::unique_ptr<hw::DetectState<HwConfig>> state_;
    std::unique_ptr<hw::SortState<HwSortConfig>> sort_state_;
    SortStageOutput sorting_;
    std::vector<hw::ArtifactEvent> artifacts_;
    std::uint64_t artifacts_taken_ = 0;
};

} // namespace

std::unique_ptr<Backend> make_reference_backend(const HwParams& params) {
    return std::make_unique<ReferenceBackend>(params);
}

namespace {

class ChannelsZeroed final : public Backend {
public:
    ChannelsZeroed(std::unique_ptr<Backend> inner, int n_channels, std::vector<int> channels)
        : inner_(std::move(inner)), n_channels_(static_cast<std::size_t>(n_channels)), channels_(std::move(channels)) {}

    std::string name() const override { return inner_->name(); }
    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        copy_.assign(frames, frames + n_frames * n_channels_);
        for (std::size_t f = 0; f < n_frames; ++f)
            for (int ch : channels_)
                copy_[f * n_channels_ + static_cast<std::size_t>(ch)] = 0;
        inner_->process(copy_.data(), n_frames, events);
    }
    void finish(std::vector<SpikeEvent>& events) override { inner_->finish(events); }
    StageSeconds stage_seconds() const override { return inner_->stage_seconds(); }
    std::uint64_t lost_events() const override { return inner_->lost_events(); }
    void take_artifacts(std::vector<hw::ArtifactEvent>& out) override { inner_->take_artifacts(out); }
    std::uint64_t artifact_candidates() const override { return inner_->artifact_candidates(); }
    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) override {
        inner_->enable_sorting(std::move(params), keep_snippets);
    }
    void take_sorted(SortOutput& out) override { inner_->take_sorted(out); }
    void queue_table_writes(const std::vector<hw::TableWrite>& writes) override { inner_->queue_table_writes(writes); }
    std::optional<RtlCycleFacts> rtl_cycle_facts() const override { return inner_->rtl_cycle_facts(); }

private:
    std::unique_ptr<Backend> inner_;
    std::size_t n_channels_;
    std::vector<int> channels_;
    std::vector<std::int16_t> copy_;
};

} // namespace

std::unique_ptr<Backend> with_channels_zeroed(std::unique_ptr<Backend> inner, int n_channels,
                                              std::vector<int> channels) {
    if (channels.empty())
        return inner;
    return std::make_unique<ChannelsZeroed>(std::move(inner), n_channels, std::move(channels));
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options, const HwParams& params) {
    require(options.threads >= 1 && options.threads <= 256,
            "--threads must be between 1 and 256 (got " + std::to_string(options.threads) + ")");
    if (options.name == "cpu")
        return make_cpu_backend(params, options.threads);
    if (options.name == "reference")
        return make_reference_backend(params);
    if (options.name == "verilator")
        return make_verilator_backend(params);
    if (options.name == "opencl") {
        OpenclOptions opencl;
        opencl.platform = options.opencl_platform;
        opencl.device = options.opencl_device;
        return make_opencl_backend(params, opencl);
    }
    throw InputError("unknown backend '" + options.name +
                     "': available backends are cpu, reference, verilator (RTL simulation), opencl and xrt (FPGA)");
}

} // namespace spikeline
