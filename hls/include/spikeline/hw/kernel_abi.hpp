#pragma once
/// @file kernel_abi.hpp
/// The one argument layout of the engine's XRT kernels: the HLS kernel `spikeline_sort` (kernels/) and the RTL kernel
/// `spikeline_rtl` (hw_sim/rtl/, packaged by kernels/rtl/) take the same arguments at the same indices, read the same
/// parameter program and write the same output image, so the host's xrt backend drives either through one code path.
/// docs/HARDWARE.md describes the register sequence and the memory traffic.
///
/// One kernel run (one ap_start):
///  1. if control has kControlReset: the engine's state is cleared (a new stream begins), with the detection
///     parameters of this run's program (the clear sets every noise estimate to noise_initial): the RTL kernel clears
///     before the program's first sorting-stage write (address >= sort_reg::base), or after the program if it has
///     none; register_program.hpp writes every detection parameter before any stage register;
///  2. the `program` (n_program_writes pairs of 32-bit words {address, value}, register_map.hpp) is applied in order:
///     parameters, and sorting-stage table writes staged and queued with their sample index;
///  3. the n_frames frames are processed;
///  4. if control has kControlFlush: what is pending is emitted (end of stream);
///  5. the output image is written: kOutputHeaderWords header words, then the records.
/// At most one transfer each way per run for the host: frames (and the program when it has writes) in, the output
/// image out (header and records in one buffer).
#include "spikeline/hw/sorter.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {
namespace abi {

/// Argument indices, in signature order (xrt::kernel::set_arg takes them).
enum KernelArg : int {
    kArgFrames = 0,         ///< m_axi (gmem_in): n_frames x n_channels int16, time-major
    kArgNFrames = 1,        ///< scalar u32
    kArgProgram = 2,        ///< m_axi (gmem_in): n_program_writes x {u32 address, u32 value}
    kArgNProgramWrites = 3, ///< scalar u32
    kArgOutput = 4,         ///< m_axi (gmem_out): u32 words, header then records
    kArgMaxRecords = 5,     ///< scalar u32: records the output buffer holds after its header
    kArgControl = 6,        ///< scalar u32: kControl* bits
    kArgState = 7,          ///< m_axi (gmem_state): the HLS kernel's state image of this compute unit; the RTL
                            ///< kernel keeps its state on chip and never accesses it
    kArgCount = 8
};

/// One argument as v++ records it in the xclbin's metadata: the C parameter (or kernel.xml) name, and whether it is
/// a pointer into card memory (m_axi) or a scalar register (s_axilite).
struct ArgInfo {
    const char* name;
    bool pointer;
};

constexpr ArgInfo kArgs[kArgCount] = {
    {"frames", true}, {"n_frames", false},    {"program", true},  {"n_program_writes", false},
    {"output", true}, {"max_records", false}, {"control", false}, {"state", true},
};

/// XRT's ap_ctrl_hs register offsets of the arguments in s_axi_control (both kernels): scalars take one 32-bit
/// register, pointers two (low word first). 0x00 control, 0x04 GIE, 0x08 IER, 0x0C ISR, as XRT expects.
constexpr std::uint32_t kArgOffsets[kArgCount] = {0x10, 0x1C, 0x24, 0x30, 0x38, 0x44, 0x4C, 0x54};

/// Words (u32) of the `state` buffer the host allocates for each compute unit: the HLS kernels' state images fit in it
/// (static_assert in kernels/spikeline_engine.hpp); the RTL kernel never reads it.
constexpr std::uint32_t kStateWords = 1u << 21;

/// Control bits.
constexpr std::uint32_t kControlReset = 1; ///< start of a stream: clear every state before the program
constexpr std::uint32_t kControlFlush = 2; ///< end of a stream: emit what is pending after these frames

/// Output header words (u32), at the start of the output buffer.
enum OutputHeader : int {
    kHeaderRecords = 0,       ///< records produced by this run (more than max_records: the rest were lost)
    kHeaderFramesLow = 1,     ///< frames processed since the stream began, low word
    kHeaderFramesHigh = 2,    ///< high word
    kHeaderDroppedEvents = 3, ///< detection events dropped by bounded work since the stream began
    kHeaderDroppedSort = 4,   ///< events the sorting stage dropped since the stream began
    kHeaderDroppedWrites = 5, ///< table writes dropped (queue full) since the stream began
    kHeaderArtifacts = 6,     ///< artefacts declared since the stream began
    kHeaderArtifactCands = 7, ///< candidates removed by artefact rejection since the stream began
    kOutputHeaderWords = 16   ///< one 64-byte beat; words 8-15 are zero
};

/// Record kinds (word kRecordKind).
constexpr std::uint32_t kRecordEvent = 0;    ///< detection event (sorting disabled): unit and features are zero/-1
constexpr std::uint32_t kRecordSpike = 1;    ///< sorted spike (sorting enabled)
constexpr std::uint32_t kRecordArtifact = 2; ///< artefact declared: channel = first channel of its group

/// Record layout: kRecordWords u32 words (128 bytes, two 64-byte beats) each.
enum RecordWord : int {
    kRecordKind = 0,
    kRecordSampleLow = 1,
    kRecordSampleHigh = 2,
    kRecordChannel = 3,
    kRecordAmplitude = 4, ///< int32 as two's complement
    kRecordUnit = 5,      ///< int32, -1 unsorted
    kRecordTemplate = 6,  ///< int32, -1 unsorted
    kRecordFeatures = 7,  ///< 24 int32 features (SortConfig::n_values), [p * snippet_channels + k]
    kRecordWords = 32     ///< word 31 is zero
};

/// Records of one run appear in the order each kind is produced; events/spikes are in the order L1 emits them, and
/// artefact records in the order they are declared. Interleaving between the two kinds is unspecified.
constexpr int kMaxFeatures = kRecordWords - kRecordFeatures - 1;
static_assert(SortConfig::n_values <= kMaxFeatures, "a record holds every feature");

/// The event, unit, template id and features of one record (kRecordWords words); its kind is words[kRecordKind].
inline SortedSpike read_record(const std::uint32_t* words) {
    SortedSpike spike{};
    spike.event.sample = (std::uint64_t{words[kRecordSampleHigh]} << 32) | words[kRecordSampleLow];
    spike.event.channel = static_cast<std::int32_t>(words[kRecordChannel]);
    spike.event.amplitude = static_cast<std::int32_t>(words[kRecordAmplitude]);
    spike.unit = static_cast<std::int32_t>(words[kRecordUnit]);
    spike.template_id = static_cast<std::int32_t>(words[kRecordTemplate]);
    for (int v = 0; v < SortConfig::n_values; ++v)
        spike.features[v] = static_cast<std::int32_t>(words[kRecordFeatures + v]);
    return spike;
}

} // namespace abi
} // namespace hw
} // namespace spikeline
