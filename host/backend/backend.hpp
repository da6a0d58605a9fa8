#pragma once
// The interface every execution backend implements (cpu today; verilator and xrt later). A backend consumes
// interleaved int16 frames in blocks of any size and produces the same events for the same input whatever the
// block sizes: the L1 contract.
#include "backend/detect_settings.hpp"
#include "spikeline/hw/artifact_rejection.hpp"
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/sorter.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace spikeline {

using SpikeEvent = hw::SpikeEvent;
using HwSortConfig = hw::SortConfig;
using HwSortParams = hw::SortParams<HwSortConfig>;

/// What the sorting stage produced since the last take_sorted(): spikes in sample order and, when asked for,
/// their snippets (per spike snippet_channels x (pre + 1 + post) values, Q4 input LSB).
struct SortOutput {
    std::vector<hw::SortedSpike> spikes;
    std::vector<std::int32_t> snippets;
};

/// Wall time spent per stage, for benchmarks.
struct StageSeconds {
    double bandpass = 0; ///< band-pass filter and reference sums
    double detect = 0;   ///< reference subtraction, noise tracker, threshold, alignment
    double dedup = 0;    ///< de-duplication
};

/// Cycle facts of an RTL run (the verilator backend), for the outputs' `rtl` section (docs/FORMATS.md).
struct RtlCycleFacts {
    double clock_mhz = 0;                 ///< clock assumed to convert clocks to time
    std::uint64_t clocks = 0;             ///< since the stream started
    std::uint64_t samples_in = 0;         ///< input transfers
    double samples_per_clock = 0;         ///< samples in / clocks from the first to the last input transfer
    std::uint64_t input_stall_clocks = 0; ///< clocks the source offered a sample and the core refused it
    bool sorted = false;                  ///< latencies are to the sorted spike (else to the detection event)
    std::uint64_t latency_events = 0;     ///< how many latencies were measured
    std::uint64_t latency_median = 0;     ///< clocks from the sample's entry to its event
    std::uint64_t latency_p99 = 0;
    std::uint64_t latency_max = 0;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    /// Processes n_frames frames (n_frames * n_channels int16, time-major); appends final events to events.
    virtual void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) = 0;
    /// End of stream: appends the remaining events. The backend may not be used afterwards.
    virtual void finish(std::vector<SpikeEvent>& events) = 0;
    virtual StageSeconds stage_seconds() const { return {}; }
    /// Candidates or events lost to a full queue or output buffer (0 on sane data).
    virtual std::uint64_t lost_events() const = 0;
    /// Appends the artefacts found since the last call (hw/artifact_rejection.hpp), in order. Backends without
    /// artefact rejection append nothing.
    virtual void take_artifacts(std::vector<hw::ArtifactEvent>& out);
    /// Candidates dropped as artefacts so far.
    virtual std::uint64_t artifact_candidates() const { return 0; }

    /// Runs the sorting stage with these parameters on every spike sorted from the next process() call on (the
    /// first call before any data; later calls swap the calibration). keep_snippets: also return the snippets.
    /// Throws InputError on backends without the stage.
    virtual void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets);
    /// Appends the spikes sorted so far (and their snippets) to out.
    virtual void take_sorted(SortOutput& out);
    /// Queues writes of the classifier table (unit updates) after enable_sorting. Each applies to every spike whose
    /// sample is >= its sample, so labels depend only on the input and the writes, not on when spikes are sorted.
    /// Samples must not decrease and must not precede the frames already processed. Throws InputError on backends
    /// that cannot apply them.
    virtual void queue_table_writes(const std::vector<hw::TableWrite>& writes);
    /// Clock counts and latencies of a simulated RTL run; empty for software backends.
    virtual std::optional<RtlCycleFacts> rtl_cycle_facts() const { return std::nullopt; }
};

/// Appends the artefacts `state` logged since `taken` of them were taken, and advances `taken`. Throws
/// std::logic_error when some were overwritten (the log holds one frame's worth: read it after every frame).
template <class CONFIG_T>
void take_logged_artifacts(const hw::ArtifactState<CONFIG_T>& state, std::uint64_t& taken,
                           std::vector<hw::ArtifactEvent>& out);

/// Throws std::logic_error unless the writes fit a table of n_channels and come in sample order, none before
/// processed_frames nor before the last write already queued (0: none): what queue_table_writes requires.
void check_table_writes(const std::vector<hw::TableWrite>& writes, int n_channels, std::uint64_t processed_frames,
                        std::uint64_t last_queued);

struct BackendOptions {
    /// "cpu", "reference" (the plain single-threaded L1 loop), "verilator" (the RTL) or "opencl"
    std::string name = "cpu";
    int threads = 1;
    int opencl_platform = 0; ///< opencl: platform and device indices (spikeline devices)
    int opencl_device = 0;
};

/// Creates a backend; throws InputError for an unknown name or an invalid option.
std::unique_ptr<Backend> make_backend(const BackendOptions& options, const HwParams& params);

/// The plain L1 detector, frame by frame on one thread: the golden model the other backends are tested against.
std::unique_ptr<Backend> make_reference_backend(const HwParams& params);

/// The vectorised, multithreaded CPU backend.
std::unique_ptr<Backend> make_cpu_backend(const HwParams& params, int threads);

/// Wraps a backend so that it sees zeros on `channels` (excluded channels: with no signal and a noise estimate of 0
/// they never cross a threshold). The caller's frames are not modified.
std::unique_ptr<Backend> with_channels_zeroed(std::unique_ptr<Backend> inner, int n_channels,
                                              std::vector<int> channels);

/// The SystemVerilog core simulated by Verilator (hw_sim); throws InputError when the recording has more channels
/// than the largest verilated core or settings exceed its registers.
std::unique_ptr<Backend> make_verilator_backend(const HwParams& params);

} // namespace spikeline
