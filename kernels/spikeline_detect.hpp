#pragma once
/// @file spikeline_detect.hpp
/// The detection kernel spikeline_detect: the argument layout of kernel_abi.hpp (both HLS kernels and the RTL kernel
/// share it), detection only: writes to the sorting stage's registers are ignored and its records are events
/// (kRecordEvent) and artefacts (kRecordArtifact). Its state buffer holds kDetectImageWords u32 words.
#include "spikeline_engine.hpp"

#include <cstdint>

namespace spikeline {
namespace kernels {

/// Control bits of kernel_abi.hpp.
constexpr std::uint32_t kControlReset = hw::abi::kControlReset;
constexpr std::uint32_t kControlFlush = hw::abi::kControlFlush;

} // namespace kernels
} // namespace spikeline

extern "C" void spikeline_detect(const std::int16_t* frames, std::uint32_t n_frames, const std::uint32_t* program,
                                 std::uint32_t n_program_writes, std::uint32_t* output, std::uint32_t max_records,
                                 std::uint32_t control, std::uint32_t* state);
