#pragma once
/// @file spikeline_sort.hpp
/// The detect-and-sort kernel spikeline_sort: the argument layout of kernel_abi.hpp, detection and the sorting stage
/// (sorted spikes as kRecordSpike while sort_reg::control's enable bit is set, events otherwise, and artefacts). Its
/// state buffer holds kSortImageWords u32 words.
#include "spikeline_detect.hpp"

#include <cstdint>

namespace spikeline {
namespace kernels {

// The previous argument layout of spikeline_sort, kept only so that the xrt backend builds until it moves to
// kernel_abi.hpp (issue 18 item 4); the kernel no longer takes it.
enum SortArg : int {
    kSortArgFrames = 0,
    kSortArgNFrames = 1,
    kSortArgDetect = 2,
    kSortArgSort = 3,
    kSortArgWrites = 4,
    kSortArgNWrites = 5,
    kSortArgSpikes = 6,
    kSortArgMaxSpikes = 7,
    kSortArgSpikeCount = 8,
    kSortArgControl = 9,
    kSortArgCount = 10
};
constexpr DetectArgInfo kSortArgs[kSortArgCount] = {
    {"frames", true},    {"n_frames", false}, {"detect_params", true}, {"sort_params", true}, {"table_writes", true},
    {"n_writes", false}, {"spikes", true},    {"max_spikes", false},   {"spike_count", true}, {"control", false},
};
constexpr std::uint32_t kControlLoadSort = 4;

} // namespace kernels
} // namespace spikeline

extern "C" void spikeline_sort(const std::int16_t* frames, std::uint32_t n_frames, const std::uint32_t* program,
                               std::uint32_t n_program_writes, std::uint32_t* output, std::uint32_t max_records,
                               std::uint32_t control, std::uint32_t* state);
