#pragma once
// C++ harness around the Verilated engine (hw_sim/rtl/spikeline_core.sv: the detection core and the sorting stage
// behind it): an AXI4-Lite master that uploads hw::DetectParams and hw::SortParams and streams table writes, an
// AXI4-Stream source of int16 frames and sinks of events, sorted spikes and snippets, with optional random idle and
// back-pressure insertion, cycle counting and FST tracing on request.
#include "spikeline/hw/artifact_rejection.hpp"
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/sorter.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace spikeline::rtl {

using CoreParams = hw::DetectParams<hw::DetectConfig>;
using StageParams = hw::SortParams<hw::SortConfig>;

/// Register map of the core (byte addresses on s_axil); hw_sim/README.md documents every field.
namespace reg {
inline constexpr std::uint32_t control = 0x000; ///< W: bit 0 START (clear state, begin a stream), bit 1 FLUSH
inline constexpr std::uint32_t status = 0x004;  ///< R: bit 0 clearing, 1 stream done, 2 framing error, 3 active
inline constexpr std::uint32_t max_channels = 0x008;
inline constexpr std::uint32_t max_groups = 0x00C;
inline constexpr std::uint32_t n_channels = 0x010;
inline constexpr std::uint32_t pending_depth = 0x014;
inline constexpr std::uint32_t max_frame_candidates = 0x018;
inline constexpr std::uint32_t max_frame_decisions = 0x01C;
inline constexpr std::uint32_t section_base = 0x020; ///< + 12 k: gain, a1, a2 of section k
inline constexpr std::uint32_t noise_step_fast = 0x040;
inline constexpr std::uint32_t noise_step_slow = 0x044;
inline constexpr std::uint32_t noise_initial = 0x048;
inline constexpr std::uint32_t warmup_frames = 0x04C;
inline constexpr std::uint32_t threshold_gain = 0x050;
inline constexpr std::uint32_t polarity = 0x054;
inline constexpr std::uint32_t align_window = 0x058;
inline constexpr std::uint32_t dead_time = 0x05C;
inline constexpr std::uint32_t dedup_window = 0x060;
inline constexpr std::uint32_t shadow_window = 0x064;
inline constexpr std::uint32_t shadow_ratio = 0x068;
inline constexpr std::uint32_t artifact_window = 0x06C;
inline constexpr std::uint32_t artifact_blank = 0x070;
inline constexpr std::uint32_t frames_low = 0x080;
inline constexpr std::uint32_t frames_high = 0x084;
inline constexpr std::uint32_t dropped = 0x088;
inline constexpr std::uint32_t events_out = 0x08C; ///< m_axis transfers: events and artefacts
inline constexpr std::uint32_t artifacts = 0x090;
inline constexpr std::uint32_t artifact_candidates = 0x094;
inline constexpr std::uint32_t group_inverse_base = 0x01000;  ///< + 4 g
inline constexpr std::uint32_t artifact_limit_base = 0x02000; ///< + 4 g
inline constexpr std::uint32_t group_of_base = 0x10000;       ///< + 4 channel
inline constexpr std::uint32_t neighbour_base = 0x40000;      ///< + 4 (16 channel + k)
inline constexpr std::uint32_t control_start = 1u << 0;
inline constexpr std::uint32_t control_flush = 1u << 1;
inline constexpr std::uint32_t status_clearing = 1u << 0;
inline constexpr std::uint32_t status_done = 1u << 1;
inline constexpr std::uint32_t status_framing_error = 1u << 2;
} // namespace reg

/// Register map of the sorting stage (byte addresses on s_axil, from 0x100000; hw_sim/README.md).
namespace sort_reg {
inline constexpr std::uint32_t base = 0x100000;
inline constexpr std::uint32_t control = base + 0x000; ///< RW: bit 0 enable, 1 hold, 2 snippets
inline constexpr std::uint32_t command = base + 0x004; ///< W: bit 0 queue staged write, 1 apply it now, 2 clear
                                                       ///< the write queue, 3 end of stream
inline constexpr std::uint32_t status = base + 0x008;  ///< R: bit 0 idle, 1 done
inline constexpr std::uint32_t n_channels = base + 0x00C;
inline constexpr std::uint32_t pre = base + 0x010;
inline constexpr std::uint32_t post = base + 0x014;
inline constexpr std::uint32_t frames_low = base + 0x018;
inline constexpr std::uint32_t dropped_events = base + 0x020;
inline constexpr std::uint32_t dropped_writes = base + 0x024;
inline constexpr std::uint32_t queued_writes = base + 0x028;
inline constexpr std::uint32_t sorted = base + 0x02C;
inline constexpr std::uint32_t staged_write = base + 0x100; ///< 33 words: sample (2), channel, slot, n_entries, unit,
                                                            ///< template id, gate (2); centroid from + 0x80
inline constexpr std::uint32_t staged_centroid = base + 0x180;
inline constexpr std::uint32_t basis_base = base + 0x400;             ///< + 4 (64 p + s)
inline constexpr std::uint32_t snippet_channel_base = base + 0x10000; ///< + 4 (8 channel + k)
inline constexpr std::uint32_t control_enable = 1u << 0;
inline constexpr std::uint32_t control_hold = 1u << 1;
inline constexpr std::uint32_t control_snippets = 1u << 2;
inline constexpr std::uint32_t command_queue = 1u << 0;
inline constexpr std::uint32_t command_apply = 1u << 1;
inline constexpr std::uint32_t command_clear_writes = 1u << 2;
inline constexpr std::uint32_t command_end = 1u << 3;
inline constexpr std::uint32_t status_idle = 1u << 0;
inline constexpr std::uint32_t status_done = 1u << 1;
} // namespace sort_reg

struct SimOptions {
    double idle_probability = 0;         ///< chance per clock that the source holds tvalid low
    double backpressure_probability = 0; ///< chance per clock that the sink holds tready low
    std::uint64_t seed = 1;
    std::string trace_path;       ///< FST waveform file; empty: no tracing
    bool capture_monitor = false; ///< keep every referenced sample (the monitor port) for comparison with L1
    /// Line rate: frame k is offered no earlier than k * frame_period_clocks after the stream starts (0: as fast as
    /// the core takes it), as from an ADC. Input stalls then mean the core fell behind the line.
    std::uint64_t frame_period_clocks = 0;
};

/// What the harness counted.
struct CycleStats {
    std::uint64_t cycles = 0;     ///< clocks since the stream started
    std::uint64_t samples_in = 0; ///< s_axis transfers
    std::uint64_t first_sample_cycle = 0;
    std::uint64_t last_sample_cycle = 0;
    std::uint64_t input_stalls = 0;                   ///< clocks with tvalid high and tready low
    std::uint64_t events_out = 0;                     ///< m_axis transfers that were events
    std::vector<std::uint64_t> event_latency_cycles;  ///< per event: its m_axis transfer minus its sample's entry
    std::vector<std::uint64_t> event_latency_samples; ///< the sample (peak frame) of each of those events
    std::uint64_t spikes_out = 0;                     ///< m_axis_spike transfers (sorted spikes)
    std::vector<std::uint64_t> spike_latency_cycles;  ///< per sorted spike: its transfer minus its sample's entry
};

/// Thrown for parameters the core cannot hold (the message says which).
class UnsupportedParams : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One simulated core. Frames must be whole (n_channels samples each).
class DetectCoreSim {
public:
    virtual ~DetectCoreSim() = default;
    /// MAX_CHANNELS the model was verilated with.
    virtual int max_channels() const = 0;
    /// Uploads the parameters and starts a stream (START, then waits for the state clear).
    virtual void configure(const CoreParams& params) = 0;
    /// Streams n_frames frames; appends the events that left the core meanwhile.
    virtual void process(const std::int16_t* frames, std::size_t n_frames, std::vector<hw::SpikeEvent>& events) = 0;
    /// FLUSH: ends the stream and appends the remaining events (and, when sorting, sorts every waiting spike).
    virtual void finish(std::vector<hw::SpikeEvent>& events) = 0;
    /// Loads the sorting stage's tables (held meanwhile) and sorts every event the core sends from now on; a second
    /// call swaps the tables and discards the queued table writes, as L1's SortStageOutput::enable.
    /// keep_snippets: the stage also sends each spike's snippet.
    virtual void configure_sorting(const StageParams& params, bool keep_snippets) = 0;
    /// Queues table writes in the stage (each applies before the first spike at or after its sample).
    virtual void queue_table_writes(const std::vector<hw::TableWrite>& writes) = 0;
    /// Moves the sorted spikes received so far to `spikes` and, when kept, their snippets (per spike
    /// snippet_channels x (pre + 1 + post) values) to `snippets`.
    virtual void take_sorted(std::vector<hw::SortedSpike>& spikes, std::vector<std::int32_t>& snippets) = 0;
    /// Referenced samples seen on the monitor port, frame-major (when capture_monitor), since configure() or the last
    /// take_monitor().
    virtual const std::vector<std::int32_t>& monitor() const = 0;
    /// Moves the captured referenced samples to the end of `referenced` and, for every event handed out since the
    /// last call, the number of whole frames the monitor port had shown when the event left the core to the end of
    /// `event_frames`: the order in which a stage downstream of the core would see frames and events.
    virtual void take_monitor(std::vector<std::int32_t>& referenced, std::vector<std::uint64_t>& event_frames) = 0;
    /// Appends the artefacts the core reported since the last call (flagged m_axis transfers), in order.
    virtual void take_artifacts(std::vector<hw::ArtifactEvent>& out) = 0;
    virtual const CycleStats& stats() const = 0;
    virtual std::uint32_t read_register(std::uint32_t address) = 0;
    virtual void write_register(std::uint32_t address, std::uint32_t value) = 0;
};

/// Channel counts of the verilated models, smallest first.
std::vector<int> available_core_sizes();

/// Why params do not fit a core of max_channels channels (empty when they fit): register widths, windows.
std::string params_problem(const CoreParams& params, int max_channels);

/// Why sorting parameters do not fit the stage (empty when they fit).
std::string sort_params_problem(const StageParams& params, int n_channels);

/// The smallest verilated core with at least params.n_channels channels; throws UnsupportedParams when none
/// fits or the parameters exceed the register widths. min_channels forces a larger core (for measurements).
std::unique_ptr<DetectCoreSim> make_detect_core_sim(const CoreParams& params, const SimOptions& options = {},
                                                    int min_channels = 0);

} // namespace spikeline::rtl
