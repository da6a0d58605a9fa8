#pragma once
// C++ harness around the Verilated engine (hw_sim/rtl/spikeline_core.sv: the detection core and the sorting stage
// behind it): an AXI4-Lite master that uploads hw::DetectParams and hw::SortParams and streams table writes, an
// AXI4-Stream source of int16 frames and sinks of events, sorted spikes and snippets, with optional random idle and
// back-pressure insertion, cycle counting and FST tracing on request.
#include "spikeline/hw/artifact_rejection.hpp"
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/register_map.hpp"
#include "spikeline/hw/sorter.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace spikeline::rtl {

using CoreParams = hw::DetectParams<hw::DetectConfig>;
using StageParams = hw::SortParams<hw::SortConfig>;

// The register map is L1's (spikeline/hw/register_map.hpp): the kernels decode the same addresses.
namespace reg = hw::reg;
namespace sort_reg = hw::sort_reg;

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
