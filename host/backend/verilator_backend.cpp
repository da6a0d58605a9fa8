// The verilator backend: the SystemVerilog engine (hw_sim/rtl/spikeline_core.sv: detection core and sorting stage),
// simulated cycle by cycle through the harness in hw_sim/tb. Slow (a few million samples per second) but it runs the
// RTL itself on real recordings: detection and sorting (snippets, features, labels, table writes) are the RTL's own
// outputs, with no C++ sorter in the loop.
#include "backend/backend.hpp"
#include "detect_core_sim.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <cstdlib>

namespace spikeline {
namespace {

constexpr double kAssumedClockMhz = 250;

std::uint64_t percentile(std::vector<std::uint64_t> values, double fraction) {
    if (values.empty())
        return 0;
    const auto index = static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
    return values[index];
}

class VerilatorBackend final : public Backend {
public:
    explicit VerilatorBackend(const HwParams& params) : n_channels_(params.n_channels) {
        rtl::SimOptions options;
        // A waveform of the whole run for debugging the RTL on a real recording (large: keep recordings short).
        if (const char* trace = std::getenv("SPIKELINE_RTL_TRACE"))
            options.trace_path = trace;
        try {
            core_ = rtl::make_detect_core_sim(params, options);
        } catch (const rtl::UnsupportedParams& e) {
            throw InputError(std::string("the verilator backend cannot run these settings: ") + e.what());
        }
    }

    std::string name() const override { return "verilator"; }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        core_->process(frames, n_frames, events);
        core_->take_artifacts(artifacts_);
        frames_in_ += n_frames;
        take_from_core();
    }

    void finish(std::vector<SpikeEvent>& events) override {
        core_->finish(events);
        take_from_core();
        core_->take_artifacts(artifacts_);
        lost_ = core_->read_register(rtl::reg::dropped) + core_->read_register(rtl::sort_reg::dropped_events) +
                core_->read_register(rtl::sort_reg::dropped_writes);
        artifact_candidates_ = core_->read_register(rtl::reg::artifact_candidates);
    }

    std::uint64_t lost_events() const override { return lost_; }
    void take_artifacts(std::vector<hw::ArtifactEvent>& out) override {
        out.insert(out.end(), artifacts_.begin(), artifacts_.end());
        artifacts_.clear();
    }
    std::uint64_t artifact_candidates() const override { return artifact_candidates_; }

    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) override {
        require(params != nullptr, "sorting parameters missing");
        try {
            core_->configure_sorting(*params, keep_snippets);
        } catch (const rtl::UnsupportedParams& e) {
            throw InputError(std::string("the verilator backend's sorting stage cannot hold this sorter: ") + e.what());
        }
        sorting_ = true;
        last_queued_ = 0;
    }

    void take_sorted(SortOutput& out) override {
        out.spikes.insert(out.spikes.end(), pending_.spikes.begin(), pending_.spikes.end());
        out.snippets.insert(out.snippets.end(), pending_.snippets.begin(), pending_.snippets.end());
        pending_ = {};
    }

    void queue_table_writes(const std::vector<hw::TableWrite>& writes) override {
        require(sorting_, "table writes before the sorting stage was enabled");
        check_table_writes(writes, n_channels_, frames_in_, last_queued_);
        if (!writes.empty())
            last_queued_ = writes.back().sample;
        core_->queue_table_writes(writes);
    }

    std::optional<RtlCycleFacts> rtl_cycle_facts() const override {
        const rtl::CycleStats& stats = core_->stats();
        RtlCycleFacts facts;
        facts.clock_mhz = kAssumedClockMhz;
        facts.clocks = stats.cycles;
        facts.samples_in = stats.samples_in;
        const std::uint64_t streaming =
            stats.samples_in > 0 ? stats.last_sample_cycle - stats.first_sample_cycle + 1 : 0;
        facts.samples_per_clock =
            streaming > 0 ? static_cast<double>(stats.samples_in) / static_cast<double>(streaming) : 0;
        facts.input_stall_clocks = stats.input_stalls;
        facts.sorted = sorting_;
        const auto& latency = sorting_ ? stats.spike_latency_cycles : stats.event_latency_cycles;
        facts.latency_events = latency.size();
        facts.latency_median = percentile(latency, 0.5);
        facts.latency_p99 = percentile(latency, 0.99);
        facts.latency_max = percentile(latency, 1.0);
        return facts;
    }

private:
    void take_from_core() {
        if (sorting_)
            core_->take_sorted(pending_.spikes, pending_.snippets);
    }

    int n_channels_;
    std::unique_ptr<rtl::DetectCoreSim> core_;
    bool sorting_ = false;
    SortOutput pending_;
    std::uint64_t frames_in_ = 0;
    std::uint64_t last_queued_ = 0;         ///< sample of the last table write queued (0: none)
    std::uint64_t lost_ = 0;                ///< read from the core's and the stage's counters at the end of the stream
    std::uint64_t artifact_candidates_ = 0; ///< read from the core's counter at the end of the stream
    std::vector<hw::ArtifactEvent> artifacts_;
};

} // namespace

std::unique_ptr<Backend> make_verilator_backend(const HwParams& params) {
    return std::make_unique<VerilatorBackend>(params);
}

} // namespace spikeline
