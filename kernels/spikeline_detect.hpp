#pragma once
/// @file spikeline_detect.hpp
/// The detection kernel's interface, shared by the kernel top and the hosts that call it (C simulation, XRT).
#include "spikeline/hw/detect_config.hpp"

#include <cstdint>

namespace spikeline {
namespace kernels {

using DetectConfig = hw::DetectConfig;
using DetectParams = hw::DetectParams<DetectConfig>;

/// Argument indices of spikeline_detect, in signature order (xrt::kernel::set_arg takes them).
enum DetectArg : int {
    kArgFrames = 0,     ///< m_axi: n_frames x n_channels int16, time-major
    kArgNFrames = 1,    ///< scalar
    kArgParams = 2,     ///< m_axi: DetectParams, read when kControlReset is set
    kArgEvents = 3,     ///< m_axi: SpikeEvent output array
    kArgMaxEvents = 4,  ///< scalar: capacity of events
    kArgEventCount = 5, ///< m_axi: one uint32, events of this call (more than max_events: the rest were lost)
    kArgControl = 6,    ///< scalar: kControl* bits
    kDetectArgCount = 7
};

/// One argument as v++ describes it in the xclbin's metadata: the C parameter name, and whether it is a pointer into
/// card memory (m_axi) or a scalar register (s_axilite). The XRT host checks these before setting arguments by index.
struct DetectArgInfo {
    const char* name;
    bool pointer;
};

/// The signature of spikeline_detect below, by DetectArg index.
constexpr DetectArgInfo kDetectArgs[kDetectArgCount] = {
    {"frames", true},      {"n_frames", false},   {"params", true},   {"events", true},
    {"max_events", false}, {"event_count", true}, {"control", false},
};

/// Control bits.
constexpr std::uint32_t kControlReset = 1; ///< start of a stream: load the parameters, clear every state
constexpr std::uint32_t kControlFlush = 2; ///< end of a stream: emit what is pending after these frames

} // namespace kernels
} // namespace spikeline

extern "C" void spikeline_detect(const std::int16_t* frames, std::uint32_t n_frames,
                                 const spikeline::kernels::DetectParams* params, spikeline::hw::SpikeEvent* events,
                                 std::uint32_t max_events, std::uint32_t* event_count, std::uint32_t control);
