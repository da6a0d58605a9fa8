#pragma once
/// @file register_map.hpp
/// The engine's register map (byte addresses): the RTL core's AXI4-Lite port (hw_sim/rtl/spikeline_core.sv) decodes
/// it, and the kernels' parameter programs (kernel_abi.hpp) are lists of writes to it, so the HLS kernels, the RTL
/// kernel and the Verilator harness are configured by the same words. hw_sim/README.md documents every field.
#include <cstdint>

namespace spikeline {
namespace hw {

/// Register map of the core (byte addresses on s_axil); hw_sim/README.md documents every field.
namespace reg {
constexpr std::uint32_t control = 0x000; ///< W: bit 0 START (clear state, begin a stream), bit 1 FLUSH
constexpr std::uint32_t status = 0x004;  ///< R: bit 0 clearing, 1 stream done, 2 framing error, 3 active
constexpr std::uint32_t max_channels = 0x008;
constexpr std::uint32_t max_groups = 0x00C;
constexpr std::uint32_t n_channels = 0x010;
constexpr std::uint32_t pending_depth = 0x014;
constexpr std::uint32_t max_frame_candidates = 0x018;
constexpr std::uint32_t max_frame_decisions = 0x01C;
constexpr std::uint32_t section_base = 0x020; ///< + 12 k: gain, a1, a2 of section k
constexpr std::uint32_t noise_step_fast = 0x040;
constexpr std::uint32_t noise_step_slow = 0x044;
constexpr std::uint32_t noise_initial = 0x048;
constexpr std::uint32_t warmup_frames = 0x04C;
constexpr std::uint32_t threshold_gain = 0x050;
constexpr std::uint32_t polarity = 0x054;
constexpr std::uint32_t align_window = 0x058;
constexpr std::uint32_t dead_time = 0x05C;
constexpr std::uint32_t dedup_window = 0x060;
constexpr std::uint32_t shadow_window = 0x064;
constexpr std::uint32_t shadow_ratio = 0x068;
constexpr std::uint32_t artifact_window = 0x06C;
constexpr std::uint32_t artifact_blank = 0x070;
constexpr std::uint32_t spatial_gate_gain = 0x074;
constexpr std::uint32_t reference_clip_gain = 0x078;
constexpr std::uint32_t spatial_gain_base = 0x0A0; ///< + 4 (n - 1): the gain for n partners
constexpr std::uint32_t frames_low = 0x080;
constexpr std::uint32_t frames_high = 0x084;
constexpr std::uint32_t dropped = 0x088;
constexpr std::uint32_t events_out = 0x08C; ///< m_axis transfers: events and artefacts
constexpr std::uint32_t artifacts = 0x090;
constexpr std::uint32_t artifact_candidates = 0x094;
constexpr std::uint32_t group_inverse_base = 0x01000;  ///< + 4 g
constexpr std::uint32_t artifact_limit_base = 0x02000; ///< + 4 g
constexpr std::uint32_t group_of_base = 0x10000;       ///< + 4 channel
constexpr std::uint32_t neighbour_base = 0x40000;      ///< + 4 (16 channel + k)
constexpr std::uint32_t partner_base = 0x50000;        ///< + 4 (4 channel + k)
constexpr std::uint32_t control_start = 1u << 0;
constexpr std::uint32_t control_flush = 1u << 1;
constexpr std::uint32_t status_clearing = 1u << 0;
constexpr std::uint32_t status_done = 1u << 1;
constexpr std::uint32_t status_framing_error = 1u << 2;
constexpr std::uint32_t status_active = 1u << 3;
constexpr std::uint32_t status_quiet = 1u << 4; ///< every frame taken in is decided and its events have left
} // namespace reg

/// Register map of the sorting stage (byte addresses on s_axil, from 0x100000; hw_sim/README.md).
namespace sort_reg {
constexpr std::uint32_t base = 0x100000;
constexpr std::uint32_t control = base + 0x000; ///< RW: bit 0 enable, 1 hold, 2 snippets
constexpr std::uint32_t command = base + 0x004; ///< W: bit 0 queue staged write, 1 apply it now, 2 clear
                                                ///< the write queue, 3 end of stream
constexpr std::uint32_t status = base + 0x008;  ///< R: bit 0 idle, 1 done
constexpr std::uint32_t n_channels = base + 0x00C;
constexpr std::uint32_t pre = base + 0x010;
constexpr std::uint32_t post = base + 0x014;
constexpr std::uint32_t frames_low = base + 0x018;
constexpr std::uint32_t dropped_events = base + 0x020;
constexpr std::uint32_t dropped_writes = base + 0x024;
constexpr std::uint32_t queued_writes = base + 0x028;
constexpr std::uint32_t sorted = base + 0x02C;
constexpr std::uint32_t staged_write = base + 0x100; ///< 33 words: sample (2), channel, slot, n_entries, unit,
                                                     ///< template id, gate (2); centroid from + 0x80
constexpr std::uint32_t staged_centroid = base + 0x180;
constexpr std::uint32_t basis_base = base + 0x400;             ///< + 4 (64 p + s)
constexpr std::uint32_t snippet_channel_base = base + 0x10000; ///< + 4 (8 channel + k)
constexpr std::uint32_t control_enable = 1u << 0;
constexpr std::uint32_t control_hold = 1u << 1;
constexpr std::uint32_t control_snippets = 1u << 2;
constexpr std::uint32_t command_queue = 1u << 0;
constexpr std::uint32_t command_apply = 1u << 1;
constexpr std::uint32_t command_clear_writes = 1u << 2;
constexpr std::uint32_t command_end = 1u << 3;
constexpr std::uint32_t status_idle = 1u << 0;
constexpr std::uint32_t status_done = 1u << 1;
constexpr std::uint32_t status_caught_up = 1u << 2; ///< every spike the referenced frames allow is sorted and sent
} // namespace sort_reg

} // namespace hw
} // namespace spikeline
