#pragma once
/// @file kernel_driver.hpp
/// The host side of one compute unit of spikeline's kernels (hls/include/spikeline/hw/kernel_abi.hpp), whatever
/// executes the runs: frames staged into chunks, the parameter program built with register_program.hpp, the output
/// image decoded. The execution itself is a RunEngine: XRT buffer sets on a card (xrt_backend.cpp), or the kernel's C
/// function called directly (DirectRunEngine, for C simulation).
#include "backend/backend.hpp"
#include "spikeline/hw/kernel_abi.hpp"
#include "spikeline/hw/register_program.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace spikeline {
namespace fpga {

/// One kernel run with the kernel's own C signature (kernel_abi.hpp), e.g. the HLS kernel called in C simulation.
using KernelExecutor = std::function<void(
    const std::int16_t* frames, std::uint32_t n_frames, const std::uint32_t* program, std::uint32_t n_program_writes,
    std::uint32_t* output, std::uint32_t max_records, std::uint32_t control, void* state)>;

/// The header of an output image (kernel_abi.hpp OutputHeader); every counter but records runs since the stream
/// began.
struct OutputCounters {
    std::uint32_t records = 0; ///< produced by the run (more than max_records: the rest were lost)
    std::uint64_t frames = 0;
    std::uint32_t dropped_events = 0;
    std::uint32_t dropped_sort = 0;
    std::uint32_t dropped_writes = 0;
    std::uint32_t artifacts = 0;
    std::uint32_t artifact_candidates = 0;
};

/// What output images held, appended run after run.
struct DecodedOutput {
    OutputCounters last;                      ///< the latest run's header
    std::uint64_t records_lost = 0;           ///< records beyond max_records, over all runs
    std::vector<hw::SpikeEvent> events;       ///< every event, and the event of every sorted spike
    std::vector<hw::SortedSpike> spikes;      ///< kRecordSpike records
    std::vector<hw::ArtifactEvent> artifacts; ///< kRecordArtifact records
};

/// Appends the records of one output image to `out`. `image_words` is the buffer's length (header and max_records
/// records); `group_of` gives the reference group of each of the n_channels channels (artefact records name the first
/// channel of their group). `max_plausible_records` bounds what the run could have produced. Throws InputError when
/// the image is shorter than its header and records, when its count exceeds max_plausible_records, or when a record
/// has an unknown kind or a channel outside the stream.
void decode_output(const std::uint32_t* image, std::size_t image_words, std::uint32_t max_records,
                   std::uint64_t max_plausible_records, const std::int16_t* group_of, int n_channels,
                   DecodedOutput& out);

/// The most records a run of n_frames frames can write: bounded work per frame (DetectConfig::max_frame_decisions
/// events per frame end, at most one artefact per group and frame) plus what a flush drains (the pending
/// de-duplication list and the spikes waiting for their post-peak samples).
std::uint64_t max_records_of_run(std::uint64_t n_frames);

/// The records an output buffer holds by default for chunks of chunk_frames: every event bounded work lets a frame
/// end decide, one artefact per group, and a flush's drain. Only artefacts on every group in most frames could
/// overflow it (then records_lost counts them); the image is read back whole, so larger buffers cost transfer time.
std::uint32_t default_max_records(std::uint64_t chunk_frames);

/// The parameter program of one stream on one compute unit: register writes queued in call order, the detection
/// parameters placed first in the stream's first run (with kControlReset). One TableWriteStager per stream, so staged
/// words the engine already holds are not written again.
class StreamProgram {
public:
    explicit StreamProgram(std::shared_ptr<const HwParams> params);

    /// The classifier (the stage is held while its tables change, then enabled). Kept for a new stream.
    void set_sorting(std::shared_ptr<const HwSortParams> params);
    /// Unit updates, each queued in the engine for its sample.
    void queue_table_writes(const std::vector<hw::TableWrite>& writes);
    /// Moves the writes of the next run into `words` ({address, value} pairs) and returns its control bits.
    std::uint32_t take_run(std::vector<std::uint32_t>& words, bool flush);
    /// A new stream begins: the next run clears the engine and carries the detection parameters and the classifier
    /// again; unsent table writes are dropped (their samples belong to the old stream).
    void restart();
    bool sorting() const { return sort_params_ != nullptr; }
    const HwParams& params() const { return *params_; }

private:
    void write(std::uint32_t address, std::uint32_t value);
    void write_sort_params();

    std::shared_ptr<const HwParams> params_;
    std::shared_ptr<const HwSortParams> sort_params_;
    hw::TableWriteStager stager_;
    std::vector<std::uint32_t> pending_;   ///< pairs queued since the last run
    std::vector<hw::TableWrite> deferred_; ///< queued before a new stream's first run
    bool new_stream_ = true;
};

/// Arguments of one run besides the buffers.
struct RunArgs {
    std::uint32_t n_frames = 0;
    std::uint32_t n_program_writes = 0;
    std::uint32_t control = 0;
};

/// Why a run did not complete; the driver resets and reports it as an InputError.
class RunNotFinished : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Executes runs for one compute unit on `slots()` sets of buffers (one run in flight per set). The driver writes the
/// frames and program into host memory the engine provides, starts the run, and reads the output image after wait().
class RunEngine {
public:
    virtual ~RunEngine() = default;
    virtual std::size_t slots() const = 0;
    /// Host memory for the frames of a chunk (chunk_frames x n_channels int16).
    virtual std::int16_t* frames(std::size_t slot) = 0;
    /// Host memory for `writes` program writes (2 words each); valid until the next call for this slot.
    virtual std::uint32_t* program(std::size_t slot, std::size_t writes) = 0;
    virtual void start(std::size_t slot, const RunArgs& args) = 0;
    /// True when the run of `slot` has completed (wait() will not block).
    virtual bool finished(std::size_t slot) = 0;
    /// Waits for the run of `slot` and returns its output image (output_words() words). Throws RunNotFinished when it
    /// did not complete (timeout, or failed on the card).
    virtual const std::uint32_t* wait(std::size_t slot) = 0;
    virtual std::size_t output_words() const = 0;
    virtual std::uint32_t max_records() const = 0;
    /// After RunNotFinished: every run still in flight is aborted or waited out and its buffers dropped, so every
    /// slot is free again. Returns what was done, for the error message.
    virtual std::string reset(const std::vector<std::size_t>& in_flight) = 0;
};

/// The kernel's C function as the engine: runs execute synchronously in start(), one state buffer per engine (one
/// compute unit).
class DirectRunEngine final : public RunEngine {
public:
    DirectRunEngine(KernelExecutor execute, std::size_t chunk_frames, int n_channels, std::uint32_t max_records,
                    std::size_t state_bytes);
    std::size_t slots() const override { return 1; }
    std::int16_t* frames(std::size_t) override { return frames_.data(); }
    std::uint32_t* program(std::size_t, std::size_t writes) override;
    void start(std::size_t slot, const RunArgs& args) override;
    bool finished(std::size_t) override { return true; }
    const std::uint32_t* wait(std::size_t) override { return output_.data(); }
    std::size_t output_words() const override { return output_.size(); }
    std::uint32_t max_records() const override { return max_records_; }
    std::string reset(const std::vector<std::size_t>&) override { return "nothing was in flight"; }

private:
    KernelExecutor execute_;
    std::uint32_t max_records_;
    std::vector<std::int16_t> frames_;
    std::vector<std::uint32_t> program_;
    std::vector<std::uint32_t> output_;
    std::vector<std::uint64_t> state_; ///< 8-byte aligned
};

/// One compute unit's stream: frames of a channel block staged into chunks of chunk_frames, one run per chunk
/// through the engine (several in flight when it has several slots), output images decoded in run order.
class KernelDriver {
public:
    /// `params` describe the block of params->n_channels channels from channel_offset of each frame that this compute
    /// unit processes; channel_offset is added to every decoded channel, so the output names the frame's channels.
    KernelDriver(std::unique_ptr<RunEngine> engine, std::shared_ptr<const HwParams> params, std::size_t chunk_frames,
                 int channel_offset);

    /// Stages n_frames frames of `stride` channels (this driver's block starts at its channel offset); runs every
    /// full chunk and decodes the runs that have finished. Throws RunNotFinished after resetting (see restart()).
    void process(const std::int16_t* frames, std::size_t n_frames, int stride);
    /// Runs the partial chunk with kControlFlush and collects every run; the next process() begins a new stream.
    void finish();
    /// Drops everything staged and in flight (aborting runs) and begins a new stream; returns what the engine did.
    std::string restart();

    StreamProgram& program() { return program_; }
    DecodedOutput& output() { return output_; }
    const RunEngine& engine() const { return *engine_; }
    std::uint64_t runs_started() const { return runs_started_; }
    std::uint64_t runs_collected() const { return runs_collected_; }
    std::uint64_t program_writes_sent() const { return program_writes_sent_; }

private:
    void submit(bool flush);
    void collect();

    std::unique_ptr<RunEngine> engine_;
    StreamProgram program_;
    std::size_t chunk_frames_;
    int channel_offset_;
    int n_channels_;
    std::size_t slot_ = 0;          ///< the slot being filled
    std::size_t staged_frames_ = 0; ///< in slot_
    std::uint64_t stream_frames_ = 0;
    std::deque<std::pair<std::size_t, std::uint32_t>> in_flight_; ///< slot, frames of the run
    std::vector<std::uint32_t> words_;
    DecodedOutput output_;
    std::uint64_t runs_started_ = 0;
    std::uint64_t runs_collected_ = 0;
    std::uint64_t program_writes_sent_ = 0;
};

} // namespace fpga
} // namespace spikeline
