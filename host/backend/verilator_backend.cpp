// The verilator backend: the SystemVerilog core (hw_sim/rtl), simulated cycle by cycle through the harness in
// hw_sim/tb. Slow (a few million samples per second) but it runs the RTL itself on real recordings. The core has no
// sorting stage: the L1 sorting stage runs downstream of it on the core's own outputs (its events and the referenced
// samples of its monitor port), in the order the core produced them, as a sorting block behind the core would.
#include "backend/backend.hpp"
#include "backend/sort_stage.hpp"
#include "detect_core_sim.hpp"
#include "util/errors.hpp"

#include <cstdlib>

namespace spikeline {
namespace {

class VerilatorBackend final : public Backend {
public:
    explicit VerilatorBackend(const HwParams& params)
        : n_channels_(static_cast<std::size_t>(params.n_channels)),
          sort_state_(std::make_unique<hw::SortState<HwSortConfig>>()) {
        rtl::SimOptions options;
        options.capture_monitor = true;
        // A waveform of the whole run for debugging the RTL on a real recording (large: keep recordings short).
        if (const char* trace = std::getenv("SPIKELINE_RTL_TRACE"))
            options.trace_path = trace;
        try {
            core_ = rtl::make_detect_core_sim(params, options);
        } catch (const rtl::UnsupportedParams& e) {
            throw InputError(std::string("the verilator backend cannot run these settings: ") + e.what());
        }
        hw::reset_sort(*sort_state_);
    }

    std::string name() const override { return "verilator"; }

    auto add_sorted() {
        return [this](const hw::SortedSpike& spike,
                      const std::int32_t snippet[HwSortConfig::snippet_channels][HwSortConfig::max_snippet_samples]) {
            sorting_.add(spike, snippet);
        };
    }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        const std::size_t first_new = events.size();
        core_->process(frames, n_frames, events);
        core_->take_artifacts(artifacts_);
        frames_in_ += n_frames;
        sort_core_output(events, first_new);
    }

    void finish(std::vector<SpikeEvent>& events) override {
        const std::size_t first_new = events.size();
        core_->finish(events);
        core_->take_artifacts(artifacts_);
        lost_ = core_->read_register(rtl::reg::dropped);
        artifact_candidates_ = core_->read_register(rtl::reg::artifact_candidates);
        sort_core_output(events, first_new);
        if (!sorting_.enabled())
            return;
        if (frames_sorted_ != frames_in_)
            throw std::runtime_error("the RTL core's monitor port showed " + std::to_string(frames_sorted_) +
                                     " referenced frames for " + std::to_string(frames_in_) + " frames in");
        hw::sort_flush(*sort_state_, sorting_.params(), frames_sorted_, add_sorted(), sorting_.before_spike());
    }

    std::uint64_t lost_events() const override { return lost_ + sort_state_->dropped + sorting_.dropped_writes(); }
    void take_artifacts(std::vector<hw::ArtifactEvent>& out) override {
        out.insert(out.end(), artifacts_.begin(), artifacts_.end());
        artifacts_.clear();
    }
    std::uint64_t artifact_candidates() const override { return artifact_candidates_; }

    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) override {
        sorting_.enable(std::move(params), keep_snippets);
    }
    void take_sorted(SortOutput& out) override { sorting_.take(out); }
    void queue_table_writes(const std::vector<hw::TableWrite>& writes) override {
        sorting_.queue_writes(writes, frames_in_);
    }

private:
    // Replays the core's timeline through the L1 sorting stage: an event joins the queue before the first frame
    // the monitor port showed after the event left the core; each whole referenced frame enters the ring, then
    // the spikes whose post-peak samples have all arrived are sorted.
    void sort_core_output(const std::vector<SpikeEvent>& events, std::size_t first_new) {
        core_->take_monitor(referenced_, event_frames_);
        const std::size_t whole_frames = referenced_.size() / n_channels_;
        std::size_t next = first_new;
        auto add_arrived = [&](std::uint64_t frames_shown) {
            for (; next < events.size() && event_frames_[next - first_new] <= frames_shown; ++next)
                hw::sort_add(*sort_state_, events[next]);
        };
        for (std::size_t f = 0; f < whole_frames; ++f, ++frames_sorted_) {
            if (!sorting_.enabled())
                continue;
            add_arrived(frames_sorted_);
            hw::sort_push_frame(*sort_state_, sorting_.params(), frames_sorted_, &referenced_[f * n_channels_]);
            hw::sort_advance(*sort_state_, sorting_.params(), frames_sorted_, add_sorted(), sorting_.before_spike());
        }
        if (sorting_.enabled() && frames_sorted_ > HwSortConfig::ring_frames)
            sorting_.apply_writes_until(frames_sorted_ - HwSortConfig::ring_frames); // every spike before is sorted
        if (sorting_.enabled())
            add_arrived(~std::uint64_t{0}); // the rest left the core after the last whole frame
        referenced_.erase(referenced_.begin(),
                          referenced_.begin() + static_cast<std::ptrdiff_t>(whole_frames * n_channels_));
        event_frames_.clear();
    }

    std::size_t n_channels_;
    std::unique_ptr<rtl::DetectCoreSim> core_;
    std::unique_ptr<hw::SortState<HwSortConfig>> sort_state_;
    SortStageOutput sorting_;
    std::vector<std::int32_t> referenced_;    ///< monitor samples not yet a whole frame, or not yet sorted
    std::vector<std::uint64_t> event_frames_; ///< per event handed out by the last call: frames shown at its exit
    std::uint64_t frames_in_ = 0;
    std::uint64_t frames_sorted_ = 0;       ///< whole referenced frames taken from the monitor port
    std::uint64_t lost_ = 0;                ///< read from the core's counter at the end of the stream
    std::uint64_t artifact_candidates_ = 0; ///< likewise
    std::vector<hw::ArtifactEvent> artifacts_;
};

} // namespace

std::unique_ptr<Backend> make_verilator_backend(const HwParams& params) {
    return std::make_unique<VerilatorBackend>(params);
}

} // namespace spikeline
