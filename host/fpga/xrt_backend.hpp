#pragma once
// The FPGA backend: the spikeline_detect kernel (or spikeline_sort, detection + sorting) on an Alveo card through
// XRT's native C++ API.
#include "backend/backend.hpp"

#include <ert.h> // ert_cmd_state

#include <filesystem>
#include <memory>
#include <string>

namespace spikeline {

struct XrtOptions {
    std::filesystem::path xclbin; ///< built by kernels/Makefile (or the generated metadata-only file under noop)
    unsigned device_index = 0;
    double chunk_ms = 1.0;   ///< frames per kernel run: the latency of a chunk
    int buffer_sets = 2;     ///< 2: double buffering, 3: triple
    double timeout_s = 10.0; ///< a run that takes longer is an error
    int max_events_per_chunk = 65536;
    /// Run the spikeline_sort kernel (detection + sorting stage) instead of spikeline_detect; enable_sorting() then
    /// uploads the classifier. Snippets are not returned: calibration runs on the host's CPU backend.
    bool sorting = false;
};

/// Opens the device, loads the xclbin and checks the kernel's arguments. Throws InputError with what to do when
/// there is no device, the xclbin is missing or lacks the kernel (spikeline_detect, or spikeline_sort when
/// options.sorting), or the kernel's interface differs.
std::unique_ptr<Backend> make_xrt_backend(const HwParams& params, double sample_rate, const XrtOptions& options);

/// Why a kernel run did not complete, from the state xrt::run::wait(timeout) returned: still queued or running after
/// timeout_s (a timeout), or failed on the card. The backend throws it as an InputError.
std::string unfinished_run_message(const std::string& kernel_name, ert_cmd_state state, double timeout_s);

} // namespace spikeline
