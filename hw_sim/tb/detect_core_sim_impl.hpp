#pragma once
// The harness, generic over the Verilated model class (every size of the core has the same ports). Included once
// per model by core_<size>.cpp, so each model's generated headers stay in one translation unit.
#include "detect_core_sim.hpp"

#include "spikeline/hw/register_program.hpp"

#include <verilated.h>
#include <verilated_fst_c.h>

#include <algorithm>
#include <array>
#include <random>
#include <stdexcept>

namespace spikeline::rtl {

template <class MODEL> class VerilatedCore final : public DetectCoreSim {
public:
    VerilatedCore(int max_channels, const SimOptions& options)
        : max_channels_(max_channels), options_(options), context_(std::make_unique<VerilatedContext>()),
          random_(options.seed) {
        context_->traceEverOn(!options.trace_path.empty());
        model_ = std::make_unique<MODEL>(context_.get(), "core");
        if (!options.trace_path.empty()) {
            trace_ = std::make_unique<VerilatedFstC>();
            model_->trace(trace_.get(), 99);
            trace_->open(options.trace_path.c_str());
        }
        model_->rst = 1;
        for (int i = 0; i < 4; ++i)
            tick();
        model_->rst = 0;
        tick();
    }

    ~VerilatedCore() override {
        if (trace_)
            trace_->close();
        model_->final();
    }

    int max_channels() const override { return max_channels_; }

    void configure(const CoreParams& params) override {
        const std::string problem = params_problem(params, max_channels_);
        if (!problem.empty())
            throw UnsupportedParams(problem);
        // The core's bounds must be L1's, or overflow would drop different candidates.
        if (read_register(reg::pending_depth) != hw::DetectConfig::max_pending ||
            read_register(reg::max_frame_candidates) != hw::DetectConfig::max_frame_candidates ||
            read_register(reg::max_frame_decisions) != hw::DetectConfig::max_frame_decisions)
            throw std::logic_error("the verilated core's queue bounds differ from L1's DetectConfig");
        n_channels_ = params.n_channels;
        hw::program_detect_params(params, register_writer());
        stager_.forget();
        write_register(sort_reg::control, 0);
        sorting_ = false;
        write_register(reg::control, reg::control_start);
        wait_for([this] { return (read_register(reg::status) & reg::status_clearing) == 0; }, "the state clear");
        stats_ = {};
        stream_start_cycle_ = cycle_;
        frames_in_ = 0;
        monitor_.clear();
        monitor_samples_ = 0;
        event_frames_.clear();
        artifacts_.clear();
    }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<hw::SpikeEvent>& events) override {
        source_ = frames;
        source_remaining_ = n_frames * static_cast<std::size_t>(n_channels_);
        std::uint64_t last_progress = cycle_;
        while (source_remaining_ > 0) {
            const std::size_t before = source_remaining_;
            tick();
            if (source_remaining_ != before)
                last_progress = cycle_;
            else if (cycle_ - last_progress > kStallLimit)
                throw std::runtime_error("the RTL core accepted no sample for " + std::to_string(kStallLimit) +
                                         " clocks");
        }
        source_ = nullptr;
        hand_out(events);
    }

    void hand_out(std::vector<hw::SpikeEvent>& events) {
        events.insert(events.end(), received_.begin(), received_.end());
        received_.clear();
    }

    void finish(std::vector<hw::SpikeEvent>& events) override {
        write_register(reg::control, reg::control_flush);
        wait_for([this] { return (read_register(reg::status) & reg::status_done) != 0; }, "the end of the stream");
        if (read_register(reg::status) & reg::status_framing_error)
            throw std::runtime_error("the RTL core saw tlast on the wrong channel");
        if (sorting_) {
            write_register(sort_reg::command, sort_reg::command_end);
            wait_for([this] { return (read_register(sort_reg::status) & sort_reg::status_done) != 0; },
                     "the end of sorting");
        }
        hand_out(events);
    }

    void configure_sorting(const StageParams& params, bool keep_snippets) override {
        const std::string problem = sort_params_problem(params, n_channels_);
        if (!problem.empty())
            throw UnsupportedParams(problem);
        // hold: the stage finishes the spike in progress and starts nothing while its tables change
        write_register(sort_reg::control,
                       sorting_ ? sort_reg::control_enable | sort_reg::control_hold : sort_reg::control_hold);
        wait_for([this] { return (read_register(sort_reg::status) & sort_reg::status_idle) != 0; }, "a held stage");
        width_ = params.pre + 1 + params.post;
        hw::program_sort_params(stager_, params, n_channels_, register_writer());
        keep_snippets_ = keep_snippets;
        sorting_ = true;
        write_register(sort_reg::control, sort_reg::control_enable | (keep_snippets ? sort_reg::control_snippets : 0u));
    }

    void queue_table_writes(const std::vector<hw::TableWrite>& writes) override {
        for (const hw::TableWrite& write : writes) {
            hw::program_table_write(stager_, write, register_writer());
        }
    }

    void take_sorted(std::vector<hw::SortedSpike>& spikes, std::vector<std::int32_t>& snippets) override {
        // a spike leaves with its snippet: either stream may be ahead of the other
        std::size_t n = sorted_.size();
        if (keep_snippets_) {
            n = std::min(n, spikes_with_snippets_);
            const auto values = static_cast<std::ptrdiff_t>(n * 8 * static_cast<std::size_t>(width_));
            snippets.insert(snippets.end(), snippet_rows_.begin(), snippet_rows_.begin() + values);
            snippet_rows_.erase(snippet_rows_.begin(), snippet_rows_.begin() + values);
            spikes_with_snippets_ -= n;
        }
        spikes.insert(spikes.end(), sorted_.begin(), sorted_.begin() + static_cast<std::ptrdiff_t>(n));
        sorted_.erase(sorted_.begin(), sorted_.begin() + static_cast<std::ptrdiff_t>(n));
    }

    const std::vector<std::int32_t>& monitor() const override { return monitor_; }

    void take_monitor(std::vector<std::int32_t>& referenced, std::vector<std::uint64_t>& event_frames) override {
        referenced.insert(referenced.end(), monitor_.begin(), monitor_.end());
        event_frames.insert(event_frames.end(), event_frames_.begin(), event_frames_.end());
        monitor_.clear();
        event_frames_.clear();
    }
    void take_artifacts(std::vector<hw::ArtifactEvent>& out) override {
        out.insert(out.end(), artifacts_.begin(), artifacts_.end());
        artifacts_.clear();
    }
    const CycleStats& stats() const override { return stats_; }

    std::uint32_t read_register(std::uint32_t address) override {
        model_->s_axil_araddr = address;
        model_->s_axil_arvalid = 1;
        model_->s_axil_rready = 1;
        while (!tick_observe([this] { return model_->s_axil_arready != 0; })) {
        }
        model_->s_axil_arvalid = 0;
        std::uint32_t value = 0;
        while (!tick_observe([this, &value] {
            value = model_->s_axil_rdata;
            return model_->s_axil_rvalid != 0;
        })) {
        }
        model_->s_axil_rready = 0;
        return value;
    }

    void write_register(std::uint32_t address, std::uint32_t value) override {
        model_->s_axil_awaddr = address;
        model_->s_axil_wdata = value;
        model_->s_axil_wstrb = 0xF;
        model_->s_axil_awvalid = 1;
        model_->s_axil_wvalid = 1;
        model_->s_axil_bready = 1;
        while (!tick_observe([this] { return model_->s_axil_awready != 0 && model_->s_axil_wready != 0; })) {
        }
        model_->s_axil_awvalid = 0;
        model_->s_axil_wvalid = 0;
        while (!tick_observe([this] { return model_->s_axil_bvalid != 0; })) {
        }
        model_->s_axil_bready = 0;
    }

private:
    static constexpr std::uint64_t kStallLimit = 50'000'000;
    static constexpr std::size_t kEntryRing = 1 << 14; ///< frames whose entry cycle is remembered for latencies

    template <class CONDITION> void wait_for(CONDITION&& done, const char* what) {
        const std::uint64_t start = cycle_;
        while (!done())
            if (cycle_ - start > kStallLimit)
                throw std::runtime_error(std::string("the RTL core did not reach ") + what);
    }

    void tick() {
        tick_observe([] { return true; });
    }

    auto register_writer() {
        return [this](std::uint32_t address, std::uint32_t value) { write_register(address, value); };
    }

    // One clock: drive the streams, settle, observe the handshakes (and the caller's condition) before the rising
    // edge, then clock.
    template <class OBSERVE> bool tick_observe(OBSERVE&& observe) {
        const bool offer = source_remaining_ > 0 && line_ready() && !draw(options_.idle_probability);
        if (offer) {
            const std::size_t index = sample_index();
            model_->s_axis_tdata = static_cast<std::uint16_t>(*source_);
            model_->s_axis_tlast =
                (index % static_cast<std::size_t>(n_channels_)) == static_cast<std::size_t>(n_channels_ - 1);
        }
        model_->s_axis_tvalid = offer;
        model_->m_axis_tready = !draw(options_.backpressure_probability);
        model_->m_axis_spike_tready = !draw(options_.backpressure_probability);
        model_->m_axis_snippet_tready = !draw(options_.backpressure_probability);
        model_->clk = 0;
        model_->eval();
        if (trace_)
            trace_->dump(2 * cycle_);
        const bool observed = observe();
        const bool input_transfer = offer && model_->s_axis_tready;
        if (offer && !model_->s_axis_tready)
            ++stats_.input_stalls;
        if (model_->m_axis_tvalid && model_->m_axis_tready)
            receive_event();
        if (model_->m_axis_spike_tvalid && model_->m_axis_spike_tready)
            receive_spike();
        if (model_->m_axis_snippet_tvalid && model_->m_axis_snippet_tready)
            receive_snippet_row();
        if (options_.capture_monitor && model_->monitor_valid) {
            monitor_.push_back(sign_extend(model_->monitor_sample, 21));
            ++monitor_samples_;
        }
        model_->clk = 1;
        model_->eval();
        if (trace_)
            trace_->dump(2 * cycle_ + 1);
        ++cycle_;
        stats_.cycles = cycle_ - stream_start_cycle_;
        if (input_transfer) {
            const std::size_t index = sample_index();
            if (index % static_cast<std::size_t>(n_channels_) == 0) {
                entry_cycle_[frames_in_ % kEntryRing] = cycle_ - 1;
                ++frames_in_;
            }
            if (stats_.samples_in == 0)
                stats_.first_sample_cycle = cycle_ - 1 - stream_start_cycle_;
            stats_.last_sample_cycle = cycle_ - 1 - stream_start_cycle_;
            ++stats_.samples_in;
            ++source_;
            --source_remaining_;
        }
        return observed;
    }

    std::size_t sample_index() const { return static_cast<std::size_t>(stats_.samples_in); }

    // With a line rate, a frame's first sample waits for its slot; the rest of the frame follows at once.
    bool line_ready() const {
        if (options_.frame_period_clocks == 0 || sample_index() % static_cast<std::size_t>(n_channels_) != 0)
            return true;
        return cycle_ - stream_start_cycle_ >= frames_in_ * options_.frame_period_clocks;
    }

    void receive_event() {
        const auto& data = model_->m_axis_tdata;
        const std::uint64_t sample = (std::uint64_t{data[1]} << 32) | data[0];
        if (data[2] & 0x10000u) { // an artefact: channel field = group, amplitude field = crossings
            artifacts_.push_back(hw::ArtifactEvent{sample, static_cast<std::int32_t>(data[2] & 0xFFFFu),
                                                   static_cast<std::int32_t>(data[3])});
            return;
        }
        hw::SpikeEvent event;
        event.sample = sample;
        event.channel = static_cast<std::int32_t>(data[2] & 0xFFFFu);
        event.amplitude = static_cast<std::int32_t>(data[3]);
        ++stats_.events_out;
        // the sample's entry: its frame's first transfer plus its channel (exact while the input does not stall)
        if (event.sample < frames_in_ && frames_in_ - event.sample <= kEntryRing) {
            stats_.event_latency_cycles.push_back(
                cycle_ - (entry_cycle_[event.sample % kEntryRing] + static_cast<std::uint64_t>(event.channel)));
            stats_.event_latency_samples.push_back(event.sample);
        }
        received_.push_back(event);
        if (options_.capture_monitor)
            event_frames_.push_back(monitor_samples_ / static_cast<std::uint64_t>(n_channels_));
    }

    void receive_spike() {
        const auto& data = model_->m_axis_spike_tdata;
        hw::SortedSpike spike;
        spike.event.sample = (std::uint64_t{data[1]} << 32) | data[0];
        spike.event.channel = static_cast<std::int32_t>(data[2]);
        spike.event.amplitude = static_cast<std::int32_t>(data[3]);
        spike.unit = static_cast<std::int32_t>(data[4]);
        spike.template_id = static_cast<std::int32_t>(data[5]);
        for (int v = 0; v < hw::SortConfig::n_values; ++v)
            spike.features[v] = static_cast<std::int32_t>(data[6 + static_cast<std::size_t>(v)]);
        ++stats_.spikes_out;
        const std::uint64_t sample = spike.event.sample;
        if (sample < frames_in_ && frames_in_ - sample <= kEntryRing)
            stats_.spike_latency_cycles.push_back(
                cycle_ - (entry_cycle_[sample % kEntryRing] + static_cast<std::uint64_t>(spike.event.channel)));
        sorted_.push_back(spike);
    }

    // LANES (8) samples of a snippet row per transfer; the row's last transfer may carry fewer than 8 of its width.
    void receive_snippet_row() {
        const auto& data = model_->m_axis_snippet_tdata;
        for (int lane = 0; lane < 8 && snippet_column_ < width_; ++lane, ++snippet_column_)
            snippet_rows_.push_back(static_cast<std::int32_t>(data[static_cast<std::size_t>(lane)]));
        if (snippet_column_ == width_)
            snippet_column_ = 0;
        if (model_->m_axis_snippet_tlast)
            ++spikes_with_snippets_;
    }

    static std::int32_t sign_extend(std::uint32_t value, int bits) {
        const std::uint32_t sign = 1u << (bits - 1);
        return static_cast<std::int32_t>((value ^ sign) - sign);
    }

    bool draw(double probability) {
        return probability > 0 && std::uniform_real_distribution<double>(0, 1)(random_) < probability;
    }

    int max_channels_;
    SimOptions options_;
    std::unique_ptr<VerilatedContext> context_;
    std::unique_ptr<MODEL> model_;
    std::unique_ptr<VerilatedFstC> trace_;
    std::mt19937_64 random_;
    int n_channels_ = 1;
    std::uint64_t cycle_ = 0;
    std::uint64_t stream_start_cycle_ = 0;
    std::uint64_t frames_in_ = 0;
    std::array<std::uint64_t, kEntryRing> entry_cycle_{};
    const std::int16_t* source_ = nullptr;
    std::size_t source_remaining_ = 0;
    std::vector<hw::SpikeEvent> received_;     ///< events that left the core, not yet handed out
    std::vector<hw::ArtifactEvent> artifacts_; ///< artefacts that left the core, not yet taken
    std::vector<std::int32_t> monitor_;
    std::uint64_t monitor_samples_ = 0;       ///< since configure()
    std::vector<std::uint64_t> event_frames_; ///< per received event: monitor_samples_ / n_channels_ at its arrival
    CycleStats stats_;
    bool sorting_ = false;
    bool keep_snippets_ = false;
    int width_ = 1; ///< snippet samples per row: pre + 1 + post
    hw::TableWriteStager stager_;
    std::vector<hw::SortedSpike> sorted_;
    std::vector<std::int32_t> snippet_rows_; ///< received snippet values not yet taken
    int snippet_column_ = 0;
    std::size_t spikes_with_snippets_ = 0; ///< whole snippets in snippet_rows_
};

} // namespace spikeline::rtl
