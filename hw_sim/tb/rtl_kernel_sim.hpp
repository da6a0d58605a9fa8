#pragma once
// Co-simulation of the RTL kernel (hw_sim/rtl/spikeline_rtl.sv) as XRT would run it on a card: card memory behind
// the kernel's two AXI4 masters (a byte-addressed memory with random latency and back-pressure on every channel,
// checking every burst against the AXI4 rules), and a driver that performs XRT's ap_ctrl_hs register sequence.
// The argument layout and the output image are hls/include/spikeline/hw/kernel_abi.hpp's.
#include "spikeline/hw/kernel_abi.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

namespace spikeline::rtl {

/// The card memory's behaviour.
struct MemoryTiming {
    unsigned read_latency_min = 1; ///< clocks from a burst's address to its first data beat, drawn per burst
    unsigned read_latency_max = 1;
    unsigned write_latency_min = 1; ///< clocks from a burst's last data beat to its response
    unsigned write_latency_max = 1;
    double backpressure = 0; ///< chance per clock that the memory holds a ready (or, for data it sends, valid) low
    std::uint64_t seed = 1;
};

/// What the memory saw during one run.
struct MemoryStats {
    std::uint64_t read_bursts = 0;
    std::uint64_t read_beats = 0;
    std::uint64_t write_bursts = 0;
    std::uint64_t write_beats = 0;
    unsigned max_reads_outstanding = 0; ///< bursts accepted and not yet fully answered, at most
};

/// A run's timing, from the kernel's profiling registers.
struct KernelRunStats {
    std::uint64_t clocks = 0;        ///< ap_start written to ap_done seen (the driver's view)
    std::uint32_t run_cycles = 0;    ///< the kernel's count: ap_start taken to ap_done
    std::uint32_t stream_cycles = 0; ///< from the run's first sample into the engine to its last
    std::uint64_t samples = 0;       ///< n_frames x n_channels
    MemoryStats memory;
};

/// Thrown when the kernel breaks the AXI4 rules or the protocol (the message says how).
class KernelProtocolError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The kernel's arguments, as xrt::run::set_arg gives them.
struct KernelArgs {
    std::uint64_t frames = 0;
    std::uint32_t n_frames = 0;
    std::uint64_t program = 0;
    std::uint32_t n_program_writes = 0;
    std::uint64_t output = 0;
    std::uint32_t max_records = 0;
    std::uint32_t control = 0;
    std::uint64_t state = 0;
};

/// One verilated kernel with its card memory.
class RtlKernelSim {
public:
    virtual ~RtlKernelSim() = default;
    virtual int max_channels() const = 0;
    /// A buffer of `bytes` in card memory, 4 KiB aligned (as XRT allocates), zero-filled.
    virtual std::uint64_t allocate(std::size_t bytes) = 0;
    virtual void write_memory(std::uint64_t address, const void* data, std::size_t bytes) = 0;
    virtual void read_memory(std::uint64_t address, void* data, std::size_t bytes) = 0;
    /// Any burst touching [address, address + bytes) is a KernelProtocolError (the `state` buffer).
    virtual void forbid(std::uint64_t address, std::size_t bytes) = 0;
    /// s_axi_control accesses (byte offsets).
    virtual std::uint32_t read_control(std::uint32_t offset) = 0;
    virtual void write_control(std::uint32_t offset, std::uint32_t value) = 0;
    virtual bool interrupt() const = 0;
    /// Clocks the kernel without touching its inputs.
    virtual void idle(std::uint64_t clocks) = 0;
    /// XRT's sequence for one run: the arguments (pointers low word first), GIE and IER (ap_done), ap_start; then the
    /// interrupt (or, with use_interrupt false, ap_done polled at 0x00), and the ISR cleared by writing its bit.
    virtual KernelRunStats run(const KernelArgs& args, bool use_interrupt = true) = 0;
};

/// The verilated sizes (MAX_CHANNELS), smallest first.
std::vector<int> available_kernel_sizes();

/// The smallest verilated kernel with at least `channels` channels (std::invalid_argument when none).
std::unique_ptr<RtlKernelSim> make_rtl_kernel_sim(int channels, const MemoryTiming& timing = {});

/// One record of the output image (kernel_abi.hpp RecordWord).
struct KernelRecord {
    std::uint32_t kind = 0;
    std::uint64_t sample = 0;
    std::int32_t channel = 0;
    std::int32_t amplitude = 0;
    std::int32_t unit = -1;
    std::int32_t template_id = -1;
    std::int32_t features[hw::abi::kMaxFeatures] = {};
    std::uint32_t last_word = 0; ///< word 31, zero
};

/// A run's output image, decoded.
struct KernelOutput {
    std::uint32_t header[hw::abi::kOutputHeaderWords] = {};
    std::vector<KernelRecord> records; ///< the records written: min(header records, max_records)
    KernelRunStats stats;
};

/// A card buffer that grows when a run needs more.
struct CardBuffer {
    std::uint64_t address = 0;
    std::size_t capacity = 0;
};

/// A run as the host's xrt backend makes it: the program and the frames copied into card buffers, the run, the
/// output image read back and decoded.
class RtlKernelDriver {
public:
    explicit RtlKernelDriver(std::unique_ptr<RtlKernelSim> kernel) : kernel_(std::move(kernel)) {}
    /// program: {address, value} pairs flattened; frames: n_frames x n_channels samples.
    KernelOutput run(const std::vector<std::uint32_t>& program, const std::int16_t* frames, std::size_t n_frames,
                     int n_channels, std::uint32_t control, std::uint32_t max_records, bool use_interrupt = true);
    RtlKernelSim& kernel() { return *kernel_; }

private:
    std::unique_ptr<RtlKernelSim> kernel_;
    CardBuffer frames_, program_, output_, state_;
};

} // namespace spikeline::rtl
