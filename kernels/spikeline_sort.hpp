#pragma once
/// @file spikeline_sort.hpp
/// The detect-and-sort kernel's interface, shared by the kernel top and the hosts that call it (C simulation, XRT).
#include "spikeline_detect.hpp"

#include "spikeline/hw/sorter.hpp"

#include <cstdint>

namespace spikeline {
namespace kernels {

using SortConfig = hw::SortConfig;
using SortParams = hw::SortParams<SortConfig>;

/// Argument indices of spikeline_sort, in signature order.
enum SortArg : int {
    kSortArgFrames = 0,     ///< m_axi: n_frames x n_channels int16, time-major
    kSortArgNFrames = 1,    ///< scalar
    kSortArgDetect = 2,     ///< m_axi: DetectParams, read when kControlReset is set
    kSortArgSort = 3,       ///< m_axi: SortParams (geometry, basis, classifier), read when kControlLoadSort is set
    kSortArgWrites = 4,     ///< m_axi: hw::TableWrite array (unit updates), queued before this call's frames
    kSortArgNWrites = 5,    ///< scalar: writes in it
    kSortArgSpikes = 6,     ///< m_axi: SortedSpike output array
    kSortArgMaxSpikes = 7,  ///< scalar: capacity of spikes
    kSortArgSpikeCount = 8, ///< m_axi: one uint32, spikes of this call (more than max_spikes: the rest were lost)
    kSortArgControl = 9,    ///< scalar: kControl* bits
    kSortArgCount = 10
};

constexpr DetectArgInfo kSortArgs[kSortArgCount] = {
    {"frames", true},    {"n_frames", false}, {"detect_params", true}, {"sort_params", true}, {"table_writes", true},
    {"n_writes", false}, {"spikes", true},    {"max_spikes", false},   {"spike_count", true}, {"control", false},
};

/// Loads a new classifier (recalibration) without touching the stream's state; implied by kControlReset.
constexpr std::uint32_t kControlLoadSort = 4;

} // namespace kernels
} // namespace spikeline

extern "C" void spikeline_sort(const std::int16_t* frames, std::uint32_t n_frames,
                               const spikeline::kernels::DetectParams* detect_params,
                               const spikeline::kernels::SortParams* sort_params,
                               const spikeline::hw::TableWrite* table_writes, std::uint32_t n_writes,
                               spikeline::hw::SortedSpike* spikes, std::uint32_t max_spikes, std::uint32_t* spike_count,
                               std::uint32_t control);
