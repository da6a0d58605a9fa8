#pragma once
/// @file spikeline_engine.hpp
/// What both HLS kernel tops share (kernel_abi.hpp layout): the compute unit's state and its image in the `state`
/// buffer, the program load, the per-frame load / compute / store and the output image. One run:
///   1. load_state: the state image (u32 words, layout below) is copied on chip; parts of queues and lists are copied
///      only as far as they are occupied, per-channel arrays only for n_channels channels;
///   2. with kControlReset the stream's state is cleared; the program is applied (register_decode.hpp); with
///      kControlReset the noise trackers then start from the program's NOISE_INITIAL, as the core's START does
///      after its parameters were written;
///   3. per frame: read the frame (burst), detect (and sort), write the frame's records (burst); a DATAFLOW region;
///   4. with kControlFlush the stream ends; 5. the header is written and the state stored back (parameters and
///      tables only when the program or a table write changed them).
/// Nothing is static: every compute unit (each with its own state buffer) is independent.
#include "spikeline/hw/detector.hpp"
#include "spikeline/hw/kernel_abi.hpp"
#include "spikeline/hw/register_decode.hpp"
#include "spikeline/hw/sorter.hpp"

#include <cstdint>

namespace spikeline {
namespace kernels {

using DetectConfig = hw::DetectConfig;
using DetectParams = hw::DetectParams<DetectConfig>;
using SortConfig = hw::SortConfig;
using SortParams = hw::SortParams<SortConfig>;

/// The detection engine of one compute unit: parameters, state, and how many artefacts it has reported.
struct DetectEngine {
    DetectParams params;
    hw::DetectState<DetectConfig> state;
    std::uint64_t artifacts_reported;
};

/// The detection and sorting engine of one compute unit.
struct SortEngine {
    DetectEngine detect;
    SortParams params;
    hw::SortStageRegisters registers;
    hw::TableWriteQueue<SortConfig> writes;
    hw::SortState<SortConfig> state;
};

// ---------------------------------------------------------------------------------------------------------------
// The state image: every field in u32 words at a fixed offset (int64 as two words, low first; narrower integers one
// word each), in the order the transfer functions below visit them. Arrays keep their whole extent in the image;
// only their used part moves.

constexpr std::uint32_t kEventWords = 4;                        ///< SpikeEvent
constexpr std::uint32_t kEntryWords = 4 + SortConfig::n_values; ///< ClassifierEntry
constexpr std::uint32_t kTableWriteWords = 5 + kEntryWords;     ///< TableWrite
constexpr std::uint32_t kChannels = DetectConfig::max_channels;
constexpr std::uint32_t kGroups = DetectConfig::max_groups;

constexpr std::uint32_t kDetectParamsWords =
    1 + 3 * DetectConfig::n_sections + kChannels + kGroups + 1 + 12 + kGroups + 1 + 1 + DetectConfig::max_partners +
    kChannels * DetectConfig::max_partners + kChannels * DetectConfig::max_neighbours;
constexpr std::uint32_t kArtifactStateWords =
    5 * kGroups + DetectConfig::max_artifact_window * kGroups + 2 + 2 + 2 + 4 * kGroups;
constexpr std::uint32_t kDetectStateWords = 2 * (DetectConfig::n_sections + 1) * kChannels + 2 * kChannels +
                                            7 * kChannels + 4 + (kEventWords + 2) * DetectConfig::max_pending +
                                            kArtifactStateWords + 2;
/// Words of spikeline_detect's state buffer.
constexpr std::uint32_t kDetectImageWords = kDetectParamsWords + kDetectStateWords + 2;

constexpr std::uint32_t kSortParamsWords = 3 + kChannels * SortConfig::snippet_channels +
                                           SortConfig::n_features * SortConfig::max_snippet_samples + kChannels +
                                           kChannels * SortConfig::max_entries * kEntryWords;
constexpr std::uint32_t kSortRegistersWords = 1 + hw::SortStageRegisters::kStagedWords;
constexpr std::uint32_t kWriteQueueWords = 4 + SortConfig::max_table_writes * kTableWriteWords;
constexpr std::uint32_t kSortStateWords =
    SortConfig::ring_frames * kChannels + 4 + SortConfig::max_waiting * kEventWords;
/// Words of spikeline_sort's state buffer.
constexpr std::uint32_t kSortImageWords =
    kDetectImageWords + kSortParamsWords + kSortRegistersWords + kWriteQueueWords + kSortStateWords;
static_assert(kSortImageWords <= hw::abi::kStateWords && kDetectImageWords <= hw::abi::kStateWords,
              "the host allocates kernel_abi.hpp's kStateWords for the state image");

/// Copies between the engine and its image: one function serves both directions, the direction is the cursor's.
/// LOAD: word(w) reads the next image word into w; store: writes w there. skip(n) passes over n words.
template <bool LOAD> struct ImageCursor {
    std::uint32_t* image;
    std::uint32_t at;

    void word(std::uint32_t& w) {
        if (LOAD)
            w = image[at];
        else
            image[at] = w;
        ++at;
    }
    void skip(std::uint32_t n) { at += n; }
};

template <class CURSOR> void move_word(CURSOR& cursor, std::uint32_t& value) {
    cursor.word(value);
}
template <class CURSOR> void move_word(CURSOR& cursor, std::int32_t& value) {
    std::uint32_t w = static_cast<std::uint32_t>(value);
    cursor.word(w);
    value = static_cast<std::int32_t>(w);
}
template <class CURSOR> void move_word(CURSOR& cursor, std::int16_t& value) {
    std::uint32_t w = static_cast<std::uint32_t>(static_cast<std::int32_t>(value));
    cursor.word(w);
    value = static_cast<std::int16_t>(static_cast<std::int32_t>(w));
}
template <class CURSOR> void move_word(CURSOR& cursor, std::int8_t& value) {
    std::uint32_t w = static_cast<std::uint32_t>(static_cast<std::int32_t>(value));
    cursor.word(w);
    value = static_cast<std::int8_t>(static_cast<std::int32_t>(w));
}
template <class CURSOR> void move_word(CURSOR& cursor, std::uint8_t& value) {
    std::uint32_t w = value;
    cursor.word(w);
    value = static_cast<std::uint8_t>(w);
}
template <class CURSOR> void move_word(CURSOR& cursor, bool& value) {
    std::uint32_t w = value ? 1u : 0u;
    cursor.word(w);
    value = w != 0;
}
template <class CURSOR> void move_word(CURSOR& cursor, hw::Polarity& value) {
    std::uint32_t w = static_cast<std::uint32_t>(value);
    cursor.word(w);
    value = static_cast<hw::Polarity>(w);
}
/// A 64-bit value (signed or not) as two words, low first.
template <class CURSOR, class WIDE> void move_wide(CURSOR& cursor, WIDE& value) {
    static_assert(sizeof(WIDE) == 8, "move_wide moves 64-bit values");
    const std::uint64_t bits = static_cast<std::uint64_t>(value);
    std::uint32_t low = static_cast<std::uint32_t>(bits), high = static_cast<std::uint32_t>(bits >> 32);
    cursor.word(low);
    cursor.word(high);
    value = static_cast<WIDE>((std::uint64_t{high} << 32) | low);
}
template <class CURSOR> void move_event(CURSOR& cursor, hw::SpikeEvent& e) {
    move_wide(cursor, e.sample);
    std::int32_t channel_and_swing = e.channel | (e.swing << 16); // channels < 2^16
    move_word(cursor, channel_and_swing);
    e.channel = channel_and_swing & 0xffff;
    e.swing = channel_and_swing >> 16;
    move_word(cursor, e.amplitude);
}
template <class CURSOR> void move_entry(CURSOR& cursor, hw::ClassifierEntry& entry) {
    move_word(cursor, entry.unit);
    move_word(cursor, entry.template_id);
ENTRY_CENTROID:
    for (int v = 0; v < SortConfig::n_values; ++v) {
#pragma HLS PIPELINE II = 1
        move_word(cursor, entry.centroid[v]);
    }
    move_wide(cursor, entry.gate);
}
template <class CURSOR> void move_table_write(CURSOR& cursor, hw::TableWrite& write) {
    move_wide(cursor, write.sample);
    move_word(cursor, write.channel);
    move_word(cursor, write.slot);
    move_word(cursor, write.n_entries);
    move_entry(cursor, write.entry);
}
template <class CURSOR> void move_artifact(CURSOR& cursor, hw::ArtifactEvent& e) {
    move_wide(cursor, e.sample);
    move_word(cursor, e.group);
    move_word(cursor, e.crossings);
}

/// One array element of any moved type.
template <class CURSOR, class T> void move_element(CURSOR& cursor, T& value) {
    move_word(cursor, value);
}
template <class CURSOR> void move_element(CURSOR& cursor, hw::SpikeEvent& value) {
    move_event(cursor, value);
}
template <class CURSOR> void move_element(CURSOR& cursor, hw::ClassifierEntry& value) {
    move_entry(cursor, value);
}
template <class CURSOR> void move_element(CURSOR& cursor, hw::ArtifactEvent& value) {
    move_artifact(cursor, value);
}

/// The first `used` elements of an array of N (0 <= used <= N); the image keeps room for N.
template <class CURSOR, class T, int N> void move_array(CURSOR& cursor, T (&values)[N], int used, std::uint32_t words) {
MOVE_ARRAY:
    for (int i = 0; i < used; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 1024 avg = 384
#pragma HLS PIPELINE II = 1
        move_element(cursor, values[i]);
    }
    cursor.skip(static_cast<std::uint32_t>(N - used) * words);
}

/// A channel count within the engine's arrays (an image never written, or a program's 16-bit N_CHANNELS).
inline int clamp_channels(int n) {
    return n < 0 ? 0 : (n > DetectConfig::max_channels ? DetectConfig::max_channels : n);
}

template <class CURSOR> void move_detect_params(CURSOR& cursor, DetectParams& p) {
    const std::uint32_t start = cursor.at;
    move_word(cursor, p.n_channels); // first, so that a load knows how many channels follow
    p.n_channels = clamp_channels(p.n_channels);
    const int n = p.n_channels;
    for (int k = 0; k < DetectConfig::n_sections; ++k) {
        move_word(cursor, p.sections[k].gain);
        move_word(cursor, p.sections[k].a1);
        move_word(cursor, p.sections[k].a2);
    }
    move_array(cursor, p.group_of, n, 1);
    move_array(cursor, p.group_inverse_size, DetectConfig::max_groups, 1);
    move_word(cursor, p.reference_clip_gain);
    move_word(cursor, p.noise_step_fast);
    move_word(cursor, p.noise_step_slow);
    move_word(cursor, p.noise_initial);
    move_word(cursor, p.warmup_frames);
    move_word(cursor, p.threshold_gain);
    move_word(cursor, p.polarity);
    move_word(cursor, p.align_window);
    move_word(cursor, p.dead_time);
    move_word(cursor, p.dedup_window);
    move_word(cursor, p.shadow_window);
    move_word(cursor, p.shadow_ratio);
    move_word(cursor, p.artifact_window);
    move_array(cursor, p.artifact_limit, DetectConfig::max_groups, 1);
    move_word(cursor, p.artifact_blank);
    move_word(cursor, p.spatial_gate_gain);
    move_array(cursor, p.spatial_gain, DetectConfig::max_partners, 1);
PARTNER_ROWS:
    for (int ch = 0; ch < n; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
        move_array(cursor, p.partners[ch], DetectConfig::max_partners, 1);
    }
    cursor.skip(static_cast<std::uint32_t>(DetectConfig::max_channels - n) * DetectConfig::max_partners);
NEIGHBOUR_ROWS:
    for (int ch = 0; ch < n; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
        move_array(cursor, p.neighbours[ch], DetectConfig::max_neighbours, 1);
    }
    cursor.skip(static_cast<std::uint32_t>(DetectConfig::max_channels - n) * DetectConfig::max_neighbours);
    cursor.at = start + kDetectParamsWords;
}

template <class CURSOR> void move_detect_state(CURSOR& cursor, hw::DetectState<DetectConfig>& s, int n) {
    const std::uint32_t start = cursor.at;
BANDPASS_HISTORY:
    for (int k = 0; k <= DetectConfig::n_sections; ++k)
        for (int j = 0; j < 2; ++j)
            move_array(cursor, s.bandpass.history[k][j], n, 1);
    move_array(cursor, s.reference.clip[0], n, 1);
    move_array(cursor, s.reference.clip[1], n, 1);
    move_array(cursor, s.detector.noise, n, 1);
    move_array(cursor, s.detector.searching, n, 1);
    move_array(cursor, s.detector.count, n, 1);
    move_array(cursor, s.detector.best_pos, n, 1);
    move_array(cursor, s.detector.best_value, n, 1);
    move_array(cursor, s.detector.hold, n, 1);
    move_array(cursor, s.detector.opposite_run, n, 1);
    hw::DedupState<DetectConfig>& d = s.dedup;
    move_word(cursor, d.n_pending);
    move_word(cursor, d.frame_candidates);
    move_wide(cursor, d.dropped);
    move_array(cursor, d.pending, d.n_pending, kEventWords);
    move_array(cursor, d.decided, d.n_pending, 1);
    move_array(cursor, d.group, d.n_pending, 1);
    d.next_change = 0; // not in the image: unknown, the next frame end scans the list
    hw::ArtifactState<DetectConfig>& a = d.artifacts;
    move_array(cursor, a.frame_count, DetectConfig::max_groups, 1);
    move_array(cursor, a.window_sum, DetectConfig::max_groups, 1);
    move_array(cursor, a.blank_left, DetectConfig::max_groups, 1);
    move_array(cursor, a.active, DetectConfig::max_groups, 1);
    move_array(cursor, a.declared, DetectConfig::max_groups, 1);
ARTIFACT_HISTORY:
    for (int w = 0; w < DetectConfig::max_artifact_window; ++w)
        move_array(cursor, a.history[w], DetectConfig::max_groups, 1);
    move_word(cursor, a.slot);
    move_word(cursor, a.any_declared);
    move_wide(cursor, a.dropped_candidates);
    move_wide(cursor, a.count);
    move_array(cursor, a.log, DetectConfig::max_groups, kEventWords);
    move_wide(cursor, s.frame);
    cursor.at = start + kDetectStateWords;
}

/// The detection engine's image: parameters (moved only when `params` is set), then the stream's state and the
/// artefacts reported (moved only when `stream` is set: a new stream clears them instead).
template <class CURSOR> void move_detect_engine(CURSOR& cursor, DetectEngine& engine, bool params, bool stream) {
    if (params)
        move_detect_params(cursor, engine.params);
    else
        cursor.skip(kDetectParamsWords);
    if (stream) {
        move_detect_state(cursor, engine.state, engine.params.n_channels);
        move_wide(cursor, engine.artifacts_reported);
    } else {
        cursor.skip(kDetectStateWords + 2);
    }
}

template <class CURSOR> void move_sort_params(CURSOR& cursor, SortParams& p, int n) {
    const std::uint32_t start = cursor.at;
    move_word(cursor, p.n_channels);
    move_word(cursor, p.pre);
    move_word(cursor, p.post);
SNIPPET_CHANNEL_ROWS:
    for (int ch = 0; ch < n; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
        move_array(cursor, p.snippet_channels[ch], SortConfig::snippet_channels, 1);
    }
    cursor.skip(static_cast<std::uint32_t>(SortConfig::max_channels - n) * SortConfig::snippet_channels);
BASIS_ROWS:
    for (int f = 0; f < SortConfig::n_features; ++f)
        move_array(cursor, p.basis[f], SortConfig::max_snippet_samples, 1);
    move_array(cursor, p.n_entries, n, 1);
ENTRY_ROWS:
    for (int ch = 0; ch < n; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
        move_array(cursor, p.entries[ch], SortConfig::max_entries, kEntryWords);
    }
    cursor.at = start + kSortParamsWords;
}

template <class CURSOR> void move_write_queue(CURSOR& cursor, hw::TableWriteQueue<SortConfig>& q) {
    const std::uint32_t start = cursor.at;
    move_word(cursor, q.head);
    move_word(cursor, q.count);
    move_wide(cursor, q.dropped);
    const std::uint32_t base = cursor.at;
QUEUED_WRITES: // only the queued ones, where they sit in the ring
    for (int i = 0; i < q.count; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 16384 avg = 8
        const int slot = (q.head + i) % SortConfig::max_table_writes;
        cursor.at = base + static_cast<std::uint32_t>(slot) * kTableWriteWords;
        move_table_write(cursor, q.writes[slot]);
    }
    cursor.at = start + kWriteQueueWords;
}

template <class CURSOR> void move_sort_state(CURSOR& cursor, hw::SortState<SortConfig>& s, int n) {
    const std::uint32_t start = cursor.at;
RING_ROWS:
    for (int row = 0; row < SortConfig::ring_frames; ++row)
        move_array(cursor, s.ring[row], n, 1);
    move_word(cursor, s.head);
    move_word(cursor, s.n_waiting);
    move_wide(cursor, s.dropped);
    const std::uint32_t base = cursor.at;
WAITING_SPIKES:
    for (int i = 0; i < s.n_waiting; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 1024 avg = 4
        const int slot = (s.head + i) % SortConfig::max_waiting;
        cursor.at = base + static_cast<std::uint32_t>(slot) * kEventWords;
        move_event(cursor, s.waiting[slot]);
    }
    cursor.at = start + kSortStateWords;
}

/// The sorting engine's image: the detection engine's, then sorting parameters and tables (moved only when `tables`
/// is set), stage registers, table-write queue, ring and waiting spikes.
template <class CURSOR>
void move_sort_engine(CURSOR& cursor, SortEngine& engine, bool params, bool tables, bool stream) {
    move_detect_engine(cursor, engine.detect, params, stream);
    if (tables)
        move_sort_params(cursor, engine.params, engine.detect.params.n_channels);
    else
        cursor.skip(kSortParamsWords);
    move_word(cursor, engine.registers.control);
    move_array(cursor, engine.registers.staged, hw::SortStageRegisters::kStagedWords, 1);
    if (stream) {
        move_write_queue(cursor, engine.writes);
        move_sort_state(cursor, engine.state, engine.detect.params.n_channels);
    } else {
        cursor.skip(kWriteQueueWords + kSortStateWords);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Records

/// One output record before it is written as kRecordWords words.
struct OutputRecord {
    std::uint32_t kind;
    hw::SpikeEvent event;
    std::int32_t unit;
    std::int32_t template_id;
    std::int32_t features[SortConfig::n_values];
};

/// The records of one frame (or of the end of the stream): the most it can produce is a frame end's decisions, a
/// sorting stage that sorts every waiting spike, and an artefact per group, or the end of the stream's every pending
/// candidate; CAPACITY covers the kernel's case.
template <int CAPACITY> struct RecordBuffer {
    OutputRecord records[CAPACITY];
    int count;
};

template <int CAPACITY> void add_record(RecordBuffer<CAPACITY>& buffer, const OutputRecord& record) {
    if (buffer.count < CAPACITY) // never full: CAPACITY is the bound above
        buffer.records[buffer.count++] = record;
}

inline OutputRecord event_record(std::uint32_t kind, const hw::SpikeEvent& e) {
    OutputRecord r;
    r.kind = kind;
    r.event = e;
    r.unit = -1;
    r.template_id = -1;
RECORD_ZERO_FEATURES:
    for (int v = 0; v < SortConfig::n_values; ++v)
        r.features[v] = 0;
    return r;
}

inline OutputRecord spike_record(const hw::SortedSpike& spike) {
    OutputRecord r;
    r.kind = hw::abi::kRecordSpike;
    r.event = spike.event;
    r.unit = spike.unit;
    r.template_id = spike.template_id;
RECORD_FEATURES:
    for (int v = 0; v < SortConfig::n_values; ++v)
        r.features[v] = spike.features[v];
    return r;
}

/// Reports the artefacts logged since the last report (at most one per group per frame): channel = the group's first
/// channel, amplitude = the crossings counted.
template <int CAPACITY> void report_artifacts(DetectEngine& engine, RecordBuffer<CAPACITY>& buffer) {
    const hw::ArtifactState<DetectConfig>& artifacts = engine.state.dedup.artifacts;
REPORT_ARTIFACTS:
    for (int i = 0; i < DetectConfig::max_groups; ++i) {
        if (engine.artifacts_reported == artifacts.count)
            break;
        const hw::ArtifactEvent& a = artifacts.log[engine.artifacts_reported % DetectConfig::max_groups];
        int first = 0;
    FIRST_CHANNEL: // a rare event: one scan of the group table
        for (int ch = engine.params.n_channels - 1; ch >= 0; --ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
            if (engine.params.group_of[ch] == a.group)
                first = ch;
        }
        add_record(buffer, event_record(hw::abi::kRecordArtifact, hw::SpikeEvent{a.sample, first, a.crossings}));
        ++engine.artifacts_reported;
    }
}

/// Writes a buffer's records after the `written` ones already in the output (at most max_records; the count goes on).
template <int CAPACITY>
void write_records(const RecordBuffer<CAPACITY>& buffer, std::uint32_t* output, std::uint32_t max_records,
                   std::uint32_t& written) {
WRITE_RECORDS:
    for (int i = 0; i < buffer.count; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 1600 avg = 1
        if (written < max_records) {
            const OutputRecord& r = buffer.records[i];
            std::uint32_t words[hw::abi::kRecordWords];
#pragma HLS ARRAY_PARTITION variable = words complete
            words[hw::abi::kRecordKind] = r.kind;
            words[hw::abi::kRecordSampleLow] = static_cast<std::uint32_t>(r.event.sample);
            words[hw::abi::kRecordSampleHigh] = static_cast<std::uint32_t>(r.event.sample >> 32);
            words[hw::abi::kRecordChannel] = static_cast<std::uint32_t>(r.event.channel);
            words[hw::abi::kRecordAmplitude] = static_cast<std::uint32_t>(r.event.amplitude);
            words[hw::abi::kRecordUnit] = static_cast<std::uint32_t>(r.unit);
            words[hw::abi::kRecordTemplate] = static_cast<std::uint32_t>(r.template_id);
        RECORD_FEATURE_WORDS:
            for (int v = 0; v < hw::abi::kMaxFeatures; ++v)
                words[hw::abi::kRecordFeatures + v] =
                    v < SortConfig::n_values ? static_cast<std::uint32_t>(r.features[v]) : 0u;
            words[hw::abi::kRecordWords - 1] = 0;
            std::uint32_t* out =
                output + hw::abi::kOutputHeaderWords + static_cast<std::uint64_t>(written) * hw::abi::kRecordWords;
        RECORD_BURST: // two 64-byte beats
            for (int w = 0; w < hw::abi::kRecordWords; ++w) {
#pragma HLS PIPELINE II = 1
                out[w] = words[w];
            }
        }
        ++written;
    }
}

/// Reads frame f (n_channels samples) into the on-chip frame buffer: one burst.
inline void read_frame(const std::int16_t* frames, std::uint32_t f, int n_channels,
                       std::int16_t frame[DetectConfig::max_channels]) {
    const std::int16_t* in = frames + static_cast<std::uint64_t>(f) * static_cast<std::uint64_t>(n_channels);
READ_FRAME:
    for (int ch = 0; ch < n_channels; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
#pragma HLS PIPELINE II = 1
        frame[ch] = in[ch];
    }
}

/// The output header (kernel_abi.hpp).
inline void write_header(std::uint32_t* output, std::uint32_t records, const DetectEngine& detect,
                         std::uint64_t dropped_sort, std::uint64_t dropped_writes) {
    std::uint32_t header[hw::abi::kOutputHeaderWords];
#pragma HLS ARRAY_PARTITION variable = header complete
HEADER_ZERO:
    for (int w = 0; w < hw::abi::kOutputHeaderWords; ++w)
        header[w] = 0;
    header[hw::abi::kHeaderRecords] = records;
    header[hw::abi::kHeaderFramesLow] = static_cast<std::uint32_t>(detect.state.frame);
    header[hw::abi::kHeaderFramesHigh] = static_cast<std::uint32_t>(detect.state.frame >> 32);
    header[hw::abi::kHeaderDroppedEvents] = static_cast<std::uint32_t>(detect.state.dedup.dropped);
    header[hw::abi::kHeaderDroppedSort] = static_cast<std::uint32_t>(dropped_sort);
    header[hw::abi::kHeaderDroppedWrites] = static_cast<std::uint32_t>(dropped_writes);
    header[hw::abi::kHeaderArtifacts] = static_cast<std::uint32_t>(detect.state.dedup.artifacts.count);
    header[hw::abi::kHeaderArtifactCands] = static_cast<std::uint32_t>(detect.state.dedup.artifacts.dropped_candidates);
HEADER_BURST:
    for (int w = 0; w < hw::abi::kOutputHeaderWords; ++w) {
#pragma HLS PIPELINE II = 1
        output[w] = header[w];
    }
}

/// A new stream: everything the program does not set is cleared (the noise trackers start after the program).
inline void clear_detect_stream(DetectEngine& engine) {
    engine.state.bandpass = hw::BandpassState<DetectConfig>{};
    hw::reset_dedup(engine.state.dedup);
    engine.state.frame = 0;
    engine.artifacts_reported = 0;
}

// ---------------------------------------------------------------------------------------------------------------
// One run

/// Applies the program (n_writes pairs {address, value}) to the detection engine; writes to the sorting stage's
/// registers are ignored. Returns whether a parameter changed.
inline bool apply_detect_program(const std::uint32_t* program, std::uint32_t n_writes, DetectEngine& engine) {
    bool changed = false;
APPLY_DETECT_PROGRAM:
    for (std::uint32_t i = 0; i < n_writes; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 20000 avg = 16
#pragma HLS PIPELINE II = 1
        const std::uint32_t address = program[2 * static_cast<std::uint64_t>(i)];
        const std::uint32_t value = program[2 * static_cast<std::uint64_t>(i) + 1];
        if (address < hw::sort_reg::base)
            changed = hw::decode_detect_register(address, value, engine.params).detect_params || changed;
    }
    engine.params.n_channels = clamp_channels(engine.params.n_channels);
    return changed;
}

/// What a sorting program changed.
struct ProgramEffect {
    bool detect_params;
    bool sort_tables;
};

/// Applies the program to the detection and sorting engine (parameters, tables, stage registers, write queue).
inline ProgramEffect apply_sort_program(const std::uint32_t* program, std::uint32_t n_writes, SortEngine& engine) {
    ProgramEffect changed = {false, false};
APPLY_SORT_PROGRAM:
    for (std::uint32_t i = 0; i < n_writes; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 300000 avg = 64
#pragma HLS PIPELINE II = 1
        const std::uint32_t address = program[2 * static_cast<std::uint64_t>(i)];
        const std::uint32_t value = program[2 * static_cast<std::uint64_t>(i) + 1];
        const hw::RegisterEffect effect = hw::decode_register_write(address, value, engine.detect.params, engine.params,
                                                                    engine.registers, engine.writes);
        changed.detect_params = changed.detect_params || effect.detect_params;
        changed.sort_tables = changed.sort_tables || effect.sort_tables;
    }
    engine.detect.params.n_channels = clamp_channels(engine.detect.params.n_channels);
    engine.params.n_channels = clamp_channels(engine.params.n_channels);
    // pre + 1 + post <= max_snippet_samples is the host's to keep (hw_sim/README.md); a program that breaks it gets a
    // shorter window rather than writes outside the snippet.
    if (engine.params.pre > SortConfig::max_snippet_samples - 1)
        engine.params.pre = SortConfig::max_snippet_samples - 1;
    if (engine.params.pre + 1 + engine.params.post > SortConfig::max_snippet_samples)
        engine.params.post = SortConfig::max_snippet_samples - 1 - engine.params.pre;
    return changed;
}

/// Capacity of a run step's record buffer: a frame end's decisions or every pending candidate at the end of the
/// stream, an artefact per group, and (sorting) every waiting spike.
constexpr int kDetectStepRecords = DetectConfig::max_pending + DetectConfig::max_groups;
constexpr int kSortStepRecords = kDetectStepRecords + SortConfig::max_waiting;

/// Compute step of a frame: detection, its events and artefacts as records.
inline void detect_frame_records(DetectEngine& engine, const std::int16_t* frame,
                                 RecordBuffer<kDetectStepRecords>& records) {
    records.count = 0;
    hw::detect_one_frame(engine.state, engine.params, frame,
                         [&](const hw::SpikeEvent& e) { add_record(records, event_record(hw::abi::kRecordEvent, e)); });
    report_artifacts(engine, records);
}

/// The end of the stream: the pending events and artefacts as records.
inline void detect_end_records(DetectEngine& engine, RecordBuffer<kDetectStepRecords>& records) {
    records.count = 0;
    hw::detect_flush(engine.state, engine.params,
                     [&](const hw::SpikeEvent& e) { add_record(records, event_record(hw::abi::kRecordEvent, e)); });
    report_artifacts(engine, records);
}

/// One run of spikeline_detect on an on-chip engine (kernel_abi.hpp).
inline void run_detect(const std::int16_t* frames, std::uint32_t n_frames, const std::uint32_t* program,
                       std::uint32_t n_program_writes, std::uint32_t* output, std::uint32_t max_records,
                       std::uint32_t control, std::uint32_t* state, DetectEngine& engine) {
    const bool reset = (control & hw::abi::kControlReset) != 0;
    ImageCursor<true> load = {state, 0};
    move_detect_engine(load, engine, true, !reset);
    if (reset)
        clear_detect_stream(engine);
    const bool params_changed = apply_detect_program(program, n_program_writes, engine);
    if (reset)
        hw::reset_detector(engine.state.detector, engine.params);

    std::uint32_t written = 0;
    std::int16_t frame[DetectConfig::max_channels];
    RecordBuffer<kDetectStepRecords> records;
DETECT_RUN_FRAMES:
    for (std::uint32_t f = 0; f < n_frames; ++f) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 90000 avg = 30
#pragma HLS DATAFLOW
        read_frame(frames, f, engine.params.n_channels, frame);
        detect_frame_records(engine, frame, records);
        write_records(records, output, max_records, written);
    }
    if (control & hw::abi::kControlFlush) {
        detect_end_records(engine, records);
        write_records(records, output, max_records, written);
    }
    write_header(output, written, engine, 0, 0);
    ImageCursor<false> store = {state, 0};
    move_detect_engine(store, engine, reset || params_changed, true);
}

/// A new stream for the sorting stage: disabled until the program enables it (as after the core's reset), nothing
/// waits, nothing is queued, the ring holds zeros (as a new backend's).
inline void clear_sort_stream(SortEngine& engine) {
    clear_detect_stream(engine.detect);
    engine.registers = hw::SortStageRegisters{};
    hw::reset_sort(engine.state);
    engine.writes.head = 0;
    engine.writes.count = 0;
    engine.writes.dropped = 0;
CLEAR_RING:
    for (int row = 0; row < SortConfig::ring_frames; ++row)
        for (int ch = 0; ch < SortConfig::max_channels; ++ch) {
#pragma HLS PIPELINE II = 1
            engine.state.ring[row][ch] = 0;
        }
}

inline bool stage_enabled(const SortEngine& engine) {
    return (engine.registers.control & hw::sort_reg::control_enable) != 0;
}

/// Applies the queued table writes due at `sample`; notes whether the tables changed (they are stored back then).
inline void apply_due_writes(SortEngine& engine, std::uint64_t sample, bool& tables_changed) {
    const int queued = engine.writes.count;
    hw::apply_table_writes(engine.writes, engine.params, sample);
    tables_changed = tables_changed || engine.writes.count != queued;
}

/// Compute step of a frame: detection, then (stage enabled) the frame joins the ring, new events the waiting queue,
/// and the spikes whose post-peak samples are in are sorted; records: sorted spikes, or events (stage disabled), and
/// artefacts.
inline void sort_frame_records(SortEngine& engine, const std::int16_t* frame, RecordBuffer<kSortStepRecords>& records,
                               bool& tables_changed) {
    records.count = 0;
    const bool sorting = stage_enabled(engine);
    DetectEngine& detect = engine.detect;
    hw::detect_one_frame(detect.state, detect.params, frame, [&](const hw::SpikeEvent& e) {
        if (sorting)
            hw::sort_add(engine.state, e);
        else
            add_record(records, event_record(hw::abi::kRecordEvent, e));
    });
    report_artifacts(detect, records);
    if (!sorting)
        return;
    const std::uint64_t last = detect.state.frame - 1;
    hw::sort_push_frame(engine.state, engine.params, last, detect.state.referenced);
    hw::sort_advance(
        engine.state, engine.params, last,
        [&](const hw::SortedSpike& spike, const std::int32_t(*)[SortConfig::max_snippet_samples]) {
            add_record(records, spike_record(spike));
        },
        [&](std::uint64_t sample) { apply_due_writes(engine, sample, tables_changed); });
}

/// The end of the stream: pending events, then (stage enabled) every waiting spike sorted.
inline void sort_end_records(SortEngine& engine, RecordBuffer<kSortStepRecords>& records, bool& tables_changed) {
    records.count = 0;
    const bool sorting = stage_enabled(engine);
    DetectEngine& detect = engine.detect;
    hw::detect_flush(detect.state, detect.params, [&](const hw::SpikeEvent& e) {
        if (sorting)
            hw::sort_add(engine.state, e);
        else
            add_record(records, event_record(hw::abi::kRecordEvent, e));
    });
    report_artifacts(detect, records);
    if (sorting)
        hw::sort_flush(
            engine.state, engine.params, detect.state.frame,
            [&](const hw::SortedSpike& spike, const std::int32_t(*)[SortConfig::max_snippet_samples]) {
                add_record(records, spike_record(spike));
            },
            [&](std::uint64_t sample) { apply_due_writes(engine, sample, tables_changed); });
}

/// One run of spikeline_sort on an on-chip engine (kernel_abi.hpp). With the stage enabled (sort_reg::control bit 0)
/// detected events are sorted and leave as spikes, otherwise as events; the snippet and hold bits have no effect
/// here (no snippet output; the program is applied before the frames).
inline void run_sort(const std::int16_t* frames, std::uint32_t n_frames, const std::uint32_t* program,
                     std::uint32_t n_program_writes, std::uint32_t* output, std::uint32_t max_records,
                     std::uint32_t control, std::uint32_t* state, SortEngine& engine) {
    const bool reset = (control & hw::abi::kControlReset) != 0;
    ImageCursor<true> load = {state, 0};
    move_sort_engine(load, engine, true, true, !reset);
    if (reset)
        clear_sort_stream(engine);
    const ProgramEffect changed = apply_sort_program(program, n_program_writes, engine);
    if (reset)
        hw::reset_detector(engine.detect.state.detector, engine.detect.params);

    bool tables_changed = changed.sort_tables;
    std::uint32_t written = 0;
    std::int16_t frame[DetectConfig::max_channels];
    RecordBuffer<kSortStepRecords> records;
SORT_RUN_FRAMES:
    for (std::uint32_t f = 0; f < n_frames; ++f) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 90000 avg = 30
#pragma HLS DATAFLOW
        read_frame(frames, f, engine.detect.params.n_channels, frame);
        sort_frame_records(engine, frame, records, tables_changed);
        write_records(records, output, max_records, written);
    }
    const std::uint64_t frames_done = engine.detect.state.frame;
    if (stage_enabled(engine) && n_frames > 0 && frames_done > SortConfig::ring_frames)
        apply_due_writes(engine, frames_done - SortConfig::ring_frames, tables_changed); // every spike before is sorted
    if (control & hw::abi::kControlFlush) {
        sort_end_records(engine, records, tables_changed);
        write_records(records, output, max_records, written);
    }
    const DetectEngine& detect = engine.detect;
    write_header(output, written, detect, engine.state.dropped, engine.writes.dropped);
    ImageCursor<false> store = {state, 0};
    move_sort_engine(store, engine, reset || changed.detect_params, reset || tables_changed, true);
}

} // namespace kernels
} // namespace spikeline
