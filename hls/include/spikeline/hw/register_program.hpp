#pragma once
/// @file register_program.hpp
/// Parameters as register writes (register_map.hpp): what the Verilator harness writes on the core's AXI4-Lite port
/// and what the host puts in a kernel's `program` buffer (kernel_abi.hpp). Each function calls write(address, value)
/// once per register, in the order the engine needs them.
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/register_map.hpp"
#include "spikeline/hw/sorter.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

/// Every detection parameter (not the START that begins a stream).
template <class CONFIG_T, class WRITE> void program_detect_params(const DetectParams<CONFIG_T>& params, WRITE&& write) {
    write(reg::n_channels, static_cast<std::uint32_t>(params.n_channels));
PROGRAM_SECTIONS:
    for (int k = 0; k < CONFIG_T::n_sections; ++k) {
        const std::uint32_t base = reg::section_base + 12u * static_cast<std::uint32_t>(k);
        write(base, static_cast<std::uint32_t>(params.sections[k].gain));
        write(base + 4, static_cast<std::uint32_t>(params.sections[k].a1));
        write(base + 8, static_cast<std::uint32_t>(params.sections[k].a2));
    }
    write(reg::noise_step_fast, static_cast<std::uint32_t>(params.noise_step_fast));
    write(reg::noise_step_slow, static_cast<std::uint32_t>(params.noise_step_slow));
    write(reg::noise_initial, static_cast<std::uint32_t>(params.noise_initial));
    write(reg::warmup_frames, params.warmup_frames);
    write(reg::threshold_gain, static_cast<std::uint32_t>(params.threshold_gain));
    write(reg::polarity, static_cast<std::uint32_t>(params.polarity));
    write(reg::align_window, static_cast<std::uint32_t>(params.align_window));
    write(reg::dead_time, static_cast<std::uint32_t>(params.dead_time));
    write(reg::dedup_window, static_cast<std::uint32_t>(params.dedup_window));
    write(reg::shadow_window, static_cast<std::uint32_t>(params.shadow_window));
    write(reg::shadow_ratio, static_cast<std::uint32_t>(params.shadow_ratio));
    write(reg::artifact_window, static_cast<std::uint32_t>(params.artifact_window));
    write(reg::artifact_blank, static_cast<std::uint32_t>(params.artifact_blank));
    write(reg::spatial_gate_gain, static_cast<std::uint32_t>(params.spatial_gate_gain));
    write(reg::reference_clip_gain, static_cast<std::uint32_t>(params.reference_clip_gain));
PROGRAM_SPATIAL_GAINS:
    for (int k = 0; k < CONFIG_T::max_partners; ++k)
        write(reg::spatial_gain_base + 4u * static_cast<std::uint32_t>(k),
              static_cast<std::uint32_t>(params.spatial_gain[k]));
PROGRAM_GROUPS:
    for (int g = 0; g < CONFIG_T::max_groups; ++g) {
        write(reg::group_inverse_base + 4u * static_cast<std::uint32_t>(g),
              static_cast<std::uint32_t>(params.group_inverse_size[g]));
        write(reg::artifact_limit_base + 4u * static_cast<std::uint32_t>(g),
              static_cast<std::uint32_t>(params.artifact_limit[g]));
    }
PROGRAM_CHANNELS:
    for (int ch = 0; ch < params.n_channels; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
        const auto channel = static_cast<std::uint32_t>(ch);
        write(reg::group_of_base + 4u * channel, static_cast<std::uint32_t>(params.group_of[ch]) & 0xFFu);
        for (int k = 0; k < CONFIG_T::max_neighbours; ++k)
            write(reg::neighbour_base + 4u * (16u * channel + static_cast<std::uint32_t>(k)),
                  static_cast<std::uint32_t>(params.neighbours[ch][k]) & 0xFFFFu);
        if (params.spatial_gate_gain != 0) // the partners matter only with the rule on
            for (int k = 0; k < CONFIG_T::max_partners; ++k)
                write(reg::partner_base + 4u * (4u * channel + static_cast<std::uint32_t>(k)),
                      static_cast<std::uint32_t>(params.partners[ch][k]) & 0xFFFFu);
    }
    write(sort_reg::n_channels, static_cast<std::uint32_t>(params.n_channels));
}

/// The sorting stage's staging registers: a table write is staged word by word, then queued (applied at its sample)
/// or applied at once. A word already holding the value is not written again (most words of a table are zeros), so
/// one stager must see every staging write of a stream.
class TableWriteStager {
public:
    static constexpr int kWords = 9 + SortConfig::n_values;

    template <class WRITE> void stage(const TableWrite& table_write, WRITE&& write) {
        std::uint32_t words[kWords] = {};
        words[0] = static_cast<std::uint32_t>(table_write.sample);
        words[1] = static_cast<std::uint32_t>(table_write.sample >> 32);
        words[2] = static_cast<std::uint32_t>(table_write.channel);
        words[3] = static_cast<std::uint32_t>(table_write.slot) & 0xFFu;
        words[4] = static_cast<std::uint32_t>(table_write.n_entries);
        words[5] = static_cast<std::uint32_t>(table_write.entry.unit);
        words[6] = static_cast<std::uint32_t>(table_write.entry.template_id);
        words[7] = static_cast<std::uint32_t>(table_write.entry.gate);
        words[8] = static_cast<std::uint32_t>(static_cast<std::uint64_t>(table_write.entry.gate) >> 32);
        for (int v = 0; v < SortConfig::n_values; ++v)
            words[9 + v] = static_cast<std::uint32_t>(table_write.entry.centroid[v]);
        for (int w = 0; w < kWords; ++w) {
            if (known_ && staged_[w] == words[w])
                continue;
            const std::uint32_t address = w < 9 ? sort_reg::staged_write + 4u * static_cast<std::uint32_t>(w)
                                                : sort_reg::staged_centroid + 4u * static_cast<std::uint32_t>(w - 9);
            write(address, words[w]);
            staged_[w] = words[w];
        }
        known_ = true;
    }

    /// The staging registers' contents are unknown again (a new engine or stream).
    void forget() { known_ = false; }

private:
    std::uint32_t staged_[kWords] = {};
    bool known_ = false;
};

/// A table write queued for its sample.
template <class WRITE>
void program_table_write(TableWriteStager& stager, const TableWrite& table_write, WRITE&& write) {
    stager.stage(table_write, write);
    write(sort_reg::command, sort_reg::command_queue);
}

/// A whole classifier (basis, snippet channels, every table slot, applied at once) for n_channels channels; the stage
/// must be held (sort_reg::control_hold) and idle while it is written. The write queue is cleared after it.
template <class CONFIG_T, class WRITE>
void program_sort_params(TableWriteStager& stager, const SortParams<CONFIG_T>& params, int n_channels, WRITE&& write) {
    write(sort_reg::pre, static_cast<std::uint32_t>(params.pre));
    write(sort_reg::post, static_cast<std::uint32_t>(params.post));
PROGRAM_BASIS:
    for (int p = 0; p < CONFIG_T::n_features; ++p)
        for (int t = 0; t < CONFIG_T::max_snippet_samples; ++t)
            write(sort_reg::basis_base + 4u * static_cast<std::uint32_t>(p * CONFIG_T::max_snippet_samples + t),
                  static_cast<std::uint32_t>(params.basis[p][t]) & 0xFFFFu);
PROGRAM_SNIPPET_CHANNELS:
    for (int ch = 0; ch < n_channels; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
        for (int k = 0; k < CONFIG_T::snippet_channels; ++k)
            write(sort_reg::snippet_channel_base + 4u * static_cast<std::uint32_t>(CONFIG_T::snippet_channels * ch + k),
                  static_cast<std::uint32_t>(params.snippet_channels[ch][k]) & 0xFFFFu);
    }
PROGRAM_ENTRIES: // every slot, as L1 copies the whole table
    for (int ch = 0; ch < n_channels; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
        for (int slot = 0; slot < CONFIG_T::max_entries; ++slot) {
            stager.stage({0, ch, slot, params.n_entries[ch], params.entries[ch][slot]}, write);
            write(sort_reg::command, sort_reg::command_apply);
        }
    }
    write(sort_reg::command, sort_reg::command_clear_writes);
}

} // namespace hw
} // namespace spikeline
