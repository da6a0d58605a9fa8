#pragma once
/// @file spikeline_sort.hpp
/// The detect-and-sort kernel spikeline_sort: the argument layout of kernel_abi.hpp, detection and the sorting stage
/// (sorted spikes as kRecordSpike while sort_reg::control's enable bit is set, events otherwise, and artefacts). Its
/// state buffer holds kSortImageWords u32 words.
#include "spikeline_detect.hpp"

#include <cstdint>

extern "C" void spikeline_sort(const std::int16_t* frames, std::uint32_t n_frames, const std::uint32_t* program,
                               std::uint32_t n_program_writes, std::uint32_t* output, std::uint32_t max_records,
                               std::uint32_t control, std::uint32_t* state);
