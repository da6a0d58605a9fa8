#pragma once
/// @file register_decode.hpp
/// The kernels' side of register_program.hpp: one {address, value} write of register_map.hpp applied to the on-chip
/// parameters, the sorting stage's registers and its table-write queue, as the RTL core decodes it
/// (hw_sim/rtl/spikeline_detect_core.sv, spikeline_sort_stage.sv; hw_sim/README.md): each field keeps the bits its
/// register has (signed fields sign-extend from their top bit), read-only and unknown addresses are ignored, a
/// staged table write is queued (COMMAND bit 0), applied at once (bit 1) or the queue cleared (bit 2).
#include "spikeline/hw/ap_int_shim.hpp"
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/register_map.hpp"
#include "spikeline/hw/sorter.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

/// The sorting stage's registers that are neither parameters nor tables: CONTROL and the staged table write.
struct SortStageRegisters {
    static constexpr int kStagedWords = 9 + SortConfig::n_values; ///< as TableWriteStager::kWords
    std::uint32_t control = 0;                                    ///< sort_reg::control_* bits
    std::uint32_t staged[kStagedWords] =
        {}; ///< sample (2), channel, slot, n_entries, unit, template, gate (2), centroid
};

/// What a write asked of the stream, for the kernel to act on: the core's CONTROL (START, FLUSH) and the stage's
/// end-of-stream command are the kernel's `control` argument in the kernel ABI, so the kernels only report them.
struct RegisterEffect {
    bool start = false;
    bool flush = false;
    bool end = false;
    bool detect_params = false; ///< a detection parameter changed
    bool sort_tables = false;   ///< the sorting parameters or a table changed
};

/// The staged write as a TableWrite, with the registers' widths (slot 8 bits signed: -1 writes no entry).
inline TableWrite staged_table_write(const SortStageRegisters& registers) {
    const std::uint32_t* w = registers.staged;
    TableWrite write;
    write.sample = (std::uint64_t{w[1]} << 32) | w[0];
    write.channel = ap_uint<16>(w[2]).to_int();
    write.slot = ap_int<8>(w[3]).to_int();
    write.n_entries = ap_uint<8>(w[4]).to_int();
    write.entry.unit = static_cast<std::int32_t>(w[5]);
    write.entry.template_id = static_cast<std::int32_t>(w[6]);
    write.entry.gate = static_cast<std::int64_t>((std::uint64_t{w[8]} << 32) | w[7]);
STAGED_CENTROID:
    for (int v = 0; v < SortConfig::n_values; ++v)
        write.entry.centroid[v] = static_cast<std::int32_t>(w[9 + v]);
    return write;
}

/// Applies one write of the core's register map (below sort_reg::base) to the detection parameters.
template <class CONFIG_T>
RegisterEffect decode_detect_register(std::uint32_t address, std::uint32_t value, DetectParams<CONFIG_T>& params) {
    RegisterEffect effect;
    effect.detect_params = true; // unless the address turns out read-only or outside a table
    const std::uint32_t word = address >> 2;
    if (address >= reg::partner_base) {
        const std::uint32_t index = word - (reg::partner_base >> 2);
        const std::uint32_t per_channel = static_cast<std::uint32_t>(CONFIG_T::max_partners);
        effect.detect_params = index < per_channel * static_cast<std::uint32_t>(CONFIG_T::max_channels);
        if (effect.detect_params)
            params.partners[index / per_channel][index % per_channel] =
                static_cast<std::int16_t>(ap_int<16>(value).to_int());
        return effect;
    }
    if (address >= reg::neighbour_base) {
        const std::uint32_t index = word - (reg::neighbour_base >> 2);
        const std::uint32_t per_channel = static_cast<std::uint32_t>(CONFIG_T::max_neighbours);
        effect.detect_params = index < per_channel * static_cast<std::uint32_t>(CONFIG_T::max_channels);
        if (effect.detect_params)
            params.neighbours[index / per_channel][index % per_channel] =
                static_cast<std::int16_t>(ap_int<16>(value).to_int());
        return effect;
    }
    if (address >= reg::group_of_base) {
        const std::uint32_t channel = word - (reg::group_of_base >> 2);
        effect.detect_params = channel < static_cast<std::uint32_t>(CONFIG_T::max_channels);
        if (effect.detect_params)
            params.group_of[channel] = static_cast<std::int16_t>(ap_int<8>(value).to_int());
        return effect;
    }
    if (address >= reg::artifact_limit_base) {
        const std::uint32_t group = word - (reg::artifact_limit_base >> 2);
        effect.detect_params = group < static_cast<std::uint32_t>(CONFIG_T::max_groups);
        if (effect.detect_params)
            params.artifact_limit[group] = ap_uint<16>(value).to_int();
        return effect;
    }
    if (address >= reg::group_inverse_base) {
        const std::uint32_t group = word - (reg::group_inverse_base >> 2);
        effect.detect_params = group < static_cast<std::uint32_t>(CONFIG_T::max_groups);
        if (effect.detect_params)
            params.group_inverse_size[group] = ap_uint<17>(value).to_int();
        return effect;
    }
    if (address >= reg::section_base && address < reg::section_base + 12u * CONFIG_T::n_sections) {
        const std::uint32_t offset = address - reg::section_base;
        BiquadQ& section = params.sections[offset / 12];
        const std::int32_t coefficient = ap_int<CONFIG_T::coef_bits>(value).to_int();
        if (offset % 12 == 0)
            section.gain = coefficient;
        else if (offset % 12 == 4)
            section.a1 = coefficient;
        else if (offset % 12 == 8)
            section.a2 = coefficient;
        return effect;
    }
    switch (address) {
    case reg::control:
        effect.detect_params = false;
        effect.start = (value & reg::control_start) != 0;
        effect.flush = (value & reg::control_flush) != 0;
        break;
    case reg::n_channels:
        params.n_channels = ap_uint<16>(value).to_int();
        break;
    case reg::noise_step_fast:
        params.noise_step_fast = ap_uint<23>(value).to_int();
        break;
    case reg::noise_step_slow:
        params.noise_step_slow = ap_uint<23>(value).to_int();
        break;
    case reg::noise_initial:
        params.noise_initial = ap_uint<23>(value).to_int();
        break;
    case reg::warmup_frames:
        params.warmup_frames = value;
        break;
    case reg::threshold_gain:
        params.threshold_gain = ap_uint<16>(value).to_int();
        break;
    case reg::polarity: {
        const int polarity = ap_uint<2>(value).to_int();
        params.polarity = polarity == 0 ? Polarity::negative : (polarity == 1 ? Polarity::positive : Polarity::both);
        break;
    }
    case reg::align_window:
        params.align_window = ap_uint<7>(value).to_int();
        break;
    case reg::dead_time:
        params.dead_time = ap_uint<16>(value).to_int();
        break;
    case reg::dedup_window:
        params.dedup_window = ap_uint<7>(value).to_int();
        break;
    case reg::shadow_window:
        params.shadow_window = ap_uint<8>(value).to_int();
        break;
    case reg::shadow_ratio:
        params.shadow_ratio = ap_uint<9>(value).to_int();
        break;
    case reg::artifact_window:
        params.artifact_window = ap_uint<5>(value).to_int();
        break;
    case reg::artifact_blank:
        params.artifact_blank = ap_uint<16>(value).to_int();
        break;
    case reg::spatial_gate_gain:
        params.spatial_gate_gain = ap_uint<16>(value).to_int();
        break;
    case reg::reference_clip_gain:
        params.reference_clip_gain = ap_uint<16>(value).to_int();
        break;
    case reg::spatial_gain_base:
    case reg::spatial_gain_base + 4:
    case reg::spatial_gain_base + 8:
    case reg::spatial_gain_base + 12:
        static_assert(CONFIG_T::max_partners == 4, "one case per partner count");
        params.spatial_gain[(address - reg::spatial_gain_base) >> 2] = ap_uint<16>(value).to_int();
        break;
    default: // read-only or unused
        effect.detect_params = false;
        break;
    }
    return effect;
}

/// Applies one write of the sorting stage's register map (from sort_reg::base) to the sorting parameters, the stage's
/// registers and the table-write queue.
template <class CONFIG_T>
RegisterEffect decode_sort_register(std::uint32_t address, std::uint32_t value, SortParams<CONFIG_T>& params,
                                    SortStageRegisters& registers, TableWriteQueue<CONFIG_T>& queue) {
    static_assert(SortStageRegisters::kStagedWords == 9 + CONFIG_T::n_values, "staged words follow the config");
    RegisterEffect effect;
    const std::uint32_t offset = address - sort_reg::base;
    const std::uint32_t word = offset >> 2;
    if (address >= sort_reg::snippet_channel_base) {
        const std::uint32_t index = (address - sort_reg::snippet_channel_base) >> 2;
        const std::uint32_t rows = static_cast<std::uint32_t>(CONFIG_T::snippet_channels);
        if (index < rows * static_cast<std::uint32_t>(CONFIG_T::max_channels)) {
            params.snippet_channels[index / rows][index % rows] = static_cast<std::int16_t>(ap_int<16>(value).to_int());
            effect.sort_tables = true;
        }
        return effect;
    }
    if (address >= sort_reg::basis_base) {
        const std::uint32_t index = (address - sort_reg::basis_base) >> 2;
        const std::uint32_t samples = static_cast<std::uint32_t>(CONFIG_T::max_snippet_samples);
        if (index < samples * static_cast<std::uint32_t>(CONFIG_T::n_features)) {
            params.basis[index / samples][index % samples] = static_cast<std::int16_t>(ap_int<16>(value).to_int());
            effect.sort_tables = true;
        }
        return effect;
    }
    if (address >= sort_reg::staged_write && address < sort_reg::staged_centroid + 4u * CONFIG_T::n_values) {
        const std::uint32_t staged = (address - sort_reg::staged_write) >> 2;
        if (staged < 9)
            registers.staged[staged] = value;
        else if (address >= sort_reg::staged_centroid)
            registers.staged[9 + ((address - sort_reg::staged_centroid) >> 2)] = value;
        return effect;
    }
    switch (word) {
    case (sort_reg::control - sort_reg::base) >> 2:
        registers.control = ap_uint<3>(value).to_uint();
        break;
    case (sort_reg::command - sort_reg::base) >> 2:
        if (value & sort_reg::command_queue)
            queue_table_write(queue, staged_table_write(registers));
        if (value & sort_reg::command_apply) {
            apply_table_write(params, staged_table_write(registers));
            effect.sort_tables = true;
        }
        if (value & sort_reg::command_clear_writes) {
            queue.head = 0;
            queue.count = 0;
        }
        effect.end = (value & sort_reg::command_end) != 0;
        break;
    case (sort_reg::n_channels - sort_reg::base) >> 2:
        params.n_channels = ap_uint<16>(value).to_int();
        effect.sort_tables = true;
        break;
    case (sort_reg::pre - sort_reg::base) >> 2:
        params.pre = ap_uint<6>(value).to_int();
        effect.sort_tables = true;
        break;
    case (sort_reg::post - sort_reg::base) >> 2:
        params.post = ap_uint<6>(value).to_int();
        effect.sort_tables = true;
        break;
    default: // read-only or unused
        break;
    }
    return effect;
}

/// One write of the whole register map: below sort_reg::base the core's, from it the sorting stage's.
template <class DETECT_T, class SORT_T>
RegisterEffect decode_register_write(std::uint32_t address, std::uint32_t value, DetectParams<DETECT_T>& detect,
                                     SortParams<SORT_T>& sort, SortStageRegisters& registers,
                                     TableWriteQueue<SORT_T>& queue) {
    if (address >= sort_reg::base)
        return decode_sort_register(address, value, sort, registers, queue);
    return decode_detect_register(address, value, detect);
}

} // namespace hw
} // namespace spikeline
