#pragma once
// The FPGA backend: one of spikeline's kernels (spikeline_rtl, spikeline_sort or spikeline_detect: the argument layout
// of hls/include/spikeline/hw/kernel_abi.hpp) on an Alveo card through XRT's native C++ API, on one or more compute
// units. Host logic (staging, parameter program, output decoding) is fpga::KernelDriver's.
#include "backend/backend.hpp"
#include "spikeline/hw/kernel_abi.hpp"

#include <ert.h> // ert_cmd_state

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace spikeline {

struct XrtOptions {
    std::filesystem::path xclbin; ///< built by kernels/Makefile (or the generated metadata-only file under noop)
    unsigned device_index = 0;
    /// spikeline_rtl, spikeline_sort or spikeline_detect; empty: the one of them the xclbin holds (the one that
    /// sorts, when sorting), an error when that leaves a choice.
    std::string kernel;
    /// Compute units of the kernel to use (0: every one in the xclbin). Each runs its own block of channels, split at
    /// shank boundaries, with its own state buffer.
    int compute_units = 1;
    double chunk_ms = 1.0;   ///< frames per kernel run: the latency of a chunk
    int buffer_sets = 2;     ///< per compute unit; 2: double buffering, 3: triple
    double timeout_s = 10.0; ///< a run that takes longer resets the backend and is an error
    /// Records each run's output image holds (0: fpga::default_max_records for the chunk).
    int max_events_per_chunk = 0;
    /// Bytes of each compute unit's state buffer: at least the HLS kernel's state image (kernels/spikeline_sort.hpp);
    /// the RTL kernel keeps its state on chip and never reads it.
    std::size_t state_bytes = std::size_t{hw::abi::kStateWords} * 4;
    /// The stream needs the sorting stage (spikeline_rtl or spikeline_sort); enable_sorting() then uploads the
    /// classifier. Snippets are not returned: calibration runs on the host's CPU backend.
    bool sorting = false;
};

/// What one compute unit did, for tests and the outputs' stats.
struct XrtComputeUnitStats {
    std::string name;      ///< "spikeline_sort:spikeline_sort_2"
    int first_channel = 0; ///< its block of channels
    int n_channels = 0;
    std::uint64_t runs_started = 0;     ///< since the backend was made
    std::uint64_t runs_completed = 0;   ///< completed and decoded
    std::uint64_t program_writes = 0;   ///< register writes sent
    std::uint64_t records_lost = 0;     ///< beyond max_events_per_chunk
    std::uint32_t dropped_events = 0;   ///< by the kernel's bounded work, this stream (output header)
    std::uint32_t dropped_sort = 0;     ///< by the sorting stage, this stream
    std::uint32_t dropped_writes = 0;   ///< table writes, this stream
    std::vector<int> memory_groups;     ///< of frames, program, output, state (kernel_abi.hpp order of pointers)
    const void* state_buffer = nullptr; ///< identity of its state buffer object (host mapping)
    std::uint64_t resets = 0;           ///< streams abandoned after a run did not finish
};

/// The XRT backend with its per-compute-unit facts.
class XrtBackend : public Backend {
public:
    /// The kernel chosen from the xclbin.
    virtual std::string kernel_name() const = 0;
    virtual std::vector<XrtComputeUnitStats> compute_unit_stats() const = 0;
};

/// Opens the device, loads the xclbin, chooses the kernel and checks its arguments against kernel_abi.hpp. Throws
/// InputError with what to do when there is no device, the xclbin is missing or lacks a usable kernel, the kernel's
/// interface differs, or the channels cannot be split over the compute units. A run that does not finish within
/// timeout_s resets the backend (runs in flight aborted, buffers dropped) and throws InputError; the next process()
/// call begins a new stream. After finish() the backend also takes a new stream.
std::unique_ptr<XrtBackend> make_xrt_backend(const HwParams& params, double sample_rate, const XrtOptions& options);

/// Why a kernel run did not complete, from the state xrt::run::wait(timeout) returned: still queued or running after
/// timeout_s (a timeout), or failed on the card.
std::string unfinished_run_message(const std::string& kernel_name, ert_cmd_state state, double timeout_s);

/// Splits n_channels into `parts` contiguous blocks of whole reference groups with no de-duplication neighbour
/// across blocks, as even as possible; returns the first channel of each block. Throws InputError when impossible.
std::vector<int> split_channels(const HwParams& params, int parts);

} // namespace spikeline
