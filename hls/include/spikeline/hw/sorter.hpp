#pragma once
/// @file sorter.hpp
/// The sorting stage after detection: for every detected spike, a multi-channel snippet around its aligned peak is
/// taken from a ring of referenced (band-passed, re-referenced) frames, projected onto a temporal principal-component
/// basis per channel (the features), and classified by the nearest centroid among the classifier entries registered
/// on the spike's peak channel, with a per-entry distance gate.
///
/// Snippet of an event (sample t, channel c): rows k = 0..snippet_channels-1 are the channels snippet_channels[c][k]
/// (c first, then its nearest contacts; -1 rows are zero), columns s = 0..pre+post are samples t-pre .. t+post.
/// Features: f[p][k] = round(sum_s basis[p][s] * snippet[k][s] / 2^basis_frac_bits), p < n_features.
/// Distance to an entry: sum over (p, k) of (f[p][k] - centroid[p][k])^2 in 64 bits.
/// Label: the entry with the smallest distance not above its gate; ties go to the lower entry index. No entry within
/// its gate: unit = -1 (unsorted).
/// A spike is sorted once frame t + post has been referenced; spikes leave in the order detection emitted them
/// (sample order).
#include "spikeline/hw/ap_int_shim.hpp"
#include "spikeline/hw/detect_config.hpp"
#include "spikeline/hw/fixed_point.hpp"

#include <cstdint>

namespace spikeline {
namespace hw {

/// Default compile-time configuration of the sorting stage.
struct SortConfig {
    static constexpr int max_channels = DetectConfig::max_channels;
    static constexpr int snippet_channels = 8;     ///< peak channel and its nearest contacts
    static constexpr int max_snippet_samples = 64; ///< pre + 1 + post
    static constexpr int n_features = 3;           ///< temporal components per channel
    static constexpr int basis_frac_bits = 14;     ///< basis in signed Q1.14 (16 bits)
    static constexpr int max_entries = 8;          ///< classifier entries per peak channel
    static constexpr int ring_frames = 256;        ///< referenced frames kept; a power of two
    static constexpr int max_waiting = 1024;       ///< detected spikes waiting for their post-peak samples
    static constexpr int max_table_writes = 16384; ///< table writes waiting for their sample (two whole tables)
    static constexpr int n_values = n_features * snippet_channels;
};

/// One classifier entry: a cluster of the calibration seen on one peak channel.
struct ClassifierEntry {
    std::int32_t unit;                           ///< unit id reported for a match
    std::int32_t template_id;                    ///< the entry's id (a Phy template)
    std::int32_t centroid[SortConfig::n_values]; ///< features, [p * snippet_channels + k]
    std::int64_t gate;                           ///< largest distance still accepted
};

/// Run-time parameters uploaded by the host after calibration.
template <class CONFIG_T> struct SortParams {
    int n_channels = 0;
    int pre = 15;                                                                           ///< samples before the peak
    int post = 30;                                                                          ///< samples after the peak
    std::int16_t snippet_channels[CONFIG_T::max_channels][CONFIG_T::snippet_channels] = {}; ///< -1 padded
    std::int16_t basis[CONFIG_T::n_features][CONFIG_T::max_snippet_samples] = {};
    std::uint8_t n_entries[CONFIG_T::max_channels] = {};
    ClassifierEntry entries[CONFIG_T::max_channels][CONFIG_T::max_entries] = {};
};

/// One write of the classifier table (the host's unit updates, e.g. units following the probe's motion): entry
/// `slot` of `channel` becomes `entry` (slot < 0: no entry written) and the channel then has `n_entries` entries.
/// A write applies to every spike whose sample is >= `sample` and to none before it, so labels do not depend on
/// when a backend sorts a spike, only on the input and the stream of writes.
struct TableWrite {
    std::uint64_t sample;
    std::int32_t channel;
    std::int32_t slot;
    std::int32_t n_entries;
    ClassifierEntry entry;
};

template <class CONFIG_T> void apply_table_write(SortParams<CONFIG_T>& params, const TableWrite& write) {
    if (write.slot >= 0)
        params.entries[write.channel][write.slot] = write.entry;
    params.n_entries[write.channel] = static_cast<std::uint8_t>(write.n_entries);
}

/// Table writes waiting for their sample, in the order they were queued (non-decreasing samples).
template <class CONFIG_T> struct TableWriteQueue {
    TableWrite writes[CONFIG_T::max_table_writes];
    int head = 0;
    int count = 0;
    std::uint64_t dropped = 0; ///< writes lost because the queue was full
};

template <class CONFIG_T> void queue_table_write(TableWriteQueue<CONFIG_T>& queue, const TableWrite& write) {
    if (queue.count == CONFIG_T::max_table_writes) {
        ++queue.dropped;
        return;
    }
    queue.writes[(queue.head + queue.count) % CONFIG_T::max_table_writes] = write;
    ++queue.count;
}

/// Applies the queued writes whose sample is <= sample: before sorting a spike of that sample, or once every spike
/// before it has been sorted.
template <class CONFIG_T>
void apply_table_writes(TableWriteQueue<CONFIG_T>& queue, SortParams<CONFIG_T>& params, std::uint64_t sample) {
APPLY_WRITES: // at most every queued write
    for (int i = 0; i < CONFIG_T::max_table_writes; ++i) {
        if (queue.count == 0 || queue.writes[queue.head].sample > sample)
            break;
        apply_table_write(params, queue.writes[queue.head]);
        queue.head = (queue.head + 1) % CONFIG_T::max_table_writes;
        --queue.count;
    }
}

/// A sorted spike: the detection event, its features and its label.
struct SortedSpike {
    SpikeEvent event;
    std::int32_t unit;        ///< -1: unsorted
    std::int32_t template_id; ///< -1: unsorted
    std::int32_t features[SortConfig::n_values];
};

/// Copies the snippet of event e (rows snippet_channels, columns pre + 1 + post) out of a ring of referenced frames:
/// frame t is row t % ring_frames of `ring`, rows `stride` values apart. Samples before frame 0 read as 0.
template <class CONFIG_T>
void extract_snippet(const SortParams<CONFIG_T>& params, const std::int32_t* ring, int ring_frames, int stride,
                     const SpikeEvent& e,
                     std::int32_t snippet[CONFIG_T::snippet_channels][CONFIG_T::max_snippet_samples]) {
    const int width = params.pre + 1 + params.post;
    // Row of frame e.sample - pre, as a residue (the frame number is negative before the recording's start): one
    // division per snippet, not one per sample (software backends pass ring sizes that are not powers of two).
    const auto frames = static_cast<std::uint64_t>(ring_frames);
    const int first_row =
        static_cast<int>((e.sample % frames + frames - static_cast<std::uint64_t>(params.pre) % frames) % frames);
SNIPPET_ROWS:
    for (int k = 0; k < CONFIG_T::snippet_channels; ++k) {
        const int ch = params.snippet_channels[e.channel][k];
        int row = first_row;
    SNIPPET_SAMPLES:
        for (int s = 0; s < width; ++s) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64 avg = 46
#pragma HLS PIPELINE II = 1
            const bool before_start = e.sample + static_cast<std::uint64_t>(s) < static_cast<std::uint64_t>(params.pre);
            snippet[k][s] = ch < 0 || before_start ? 0 : ring[static_cast<std::size_t>(row) * stride + ch];
            row = row + 1 == ring_frames ? 0 : row + 1;
        }
    }
}

/// Projects each snippet row onto the temporal basis.
template <class CONFIG_T>
void compute_features(const SortParams<CONFIG_T>& params,
                      const std::int32_t snippet[CONFIG_T::snippet_channels][CONFIG_T::max_snippet_samples],
                      std::int32_t features[CONFIG_T::n_values]) {
    const int width = params.pre + 1 + params.post;
FEATURE_COMPONENTS:
    for (int p = 0; p < CONFIG_T::n_features; ++p) {
    FEATURE_ROWS:
        for (int k = 0; k < CONFIG_T::snippet_channels; ++k) {
            std::int64_t sum = 0;
        FEATURE_MAC:
            for (int s = 0; s < width; ++s) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64 avg = 46
#pragma HLS PIPELINE II = 1
                // referenced samples are saturated to sample_bits: a 16 x 21 product, one DSP
                sum += ap_int<16>(params.basis[p][s]) * ap_int<DetectConfig::sample_bits>(snippet[k][s]);
            }
            features[p * CONFIG_T::snippet_channels + k] =
                static_cast<std::int32_t>(round_shift(sum, CONFIG_T::basis_frac_bits));
        }
    }
}

/// Squared distance between features and an entry's centroid.
template <class CONFIG_T>
std::int64_t feature_distance(const std::int32_t features[CONFIG_T::n_values], const ClassifierEntry& entry) {
    std::int64_t sum = 0;
DISTANCE:
    for (int i = 0; i < CONFIG_T::n_values; ++i) {
#pragma HLS PIPELINE II = 1
        const std::int64_t d = std::int64_t{features[i]} - entry.centroid[i];
        sum += d * d;
    }
    return sum;
}

/// Labels a spike on `channel` from its features.
template <class CONFIG_T>
void classify(const SortParams<CONFIG_T>& params, int channel, const std::int32_t features[CONFIG_T::n_values],
              std::int32_t& unit, std::int32_t& template_id) {
    unit = -1;
    template_id = -1;
    std::int64_t best = 0;
CLASSIFY_ENTRIES:
    for (int i = 0; i < params.n_entries[channel]; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 8 avg = 3
        const ClassifierEntry& entry = params.entries[channel][i];
        const std::int64_t d = feature_distance<CONFIG_T>(features, entry);
        if (d <= entry.gate && (template_id < 0 || d < best)) {
            best = d;
            unit = entry.unit;
            template_id = entry.template_id;
        }
    }
}

/// Snippet, features and label of one event; the snippet is also returned for calibration.
template <class CONFIG_T>
void sort_event(const SortParams<CONFIG_T>& params, const std::int32_t* ring, int ring_frames, int stride,
                const SpikeEvent& e, SortedSpike& out,
                std::int32_t snippet[CONFIG_T::snippet_channels][CONFIG_T::max_snippet_samples]) {
    extract_snippet(params, ring, ring_frames, stride, e, snippet);
    out.event = e;
    compute_features(params, snippet, out.features);
    classify(params, e.channel, out.features, out.unit, out.template_id);
}

/// The stage's memory: the ring of referenced frames and the spikes waiting for their post-peak samples.
template <class CONFIG_T> struct SortState {
    std::int32_t ring[CONFIG_T::ring_frames][CONFIG_T::max_channels] = {};
    SpikeEvent waiting[CONFIG_T::max_waiting] = {};
    int head = 0; ///< oldest waiting spike
    int n_waiting = 0;
    std::uint64_t dropped = 0; ///< spikes lost because the waiting queue was full
};

template <class CONFIG_T> void reset_sort(SortState<CONFIG_T>& state) {
    state.head = 0;
    state.n_waiting = 0;
    state.dropped = 0;
}

/// Stores referenced frame `frame` (n_channels values) in the ring.
template <class CONFIG_T>
void sort_push_frame(SortState<CONFIG_T>& state, const SortParams<CONFIG_T>& params, std::uint64_t frame,
                     const std::int32_t* referenced) {
    std::int32_t* row = state.ring[frame % CONFIG_T::ring_frames];
RING_WRITE:
    for (int ch = 0; ch < params.n_channels; ++ch) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024 avg = 384
#pragma HLS PIPELINE II = 1
        row[ch] = referenced[ch];
    }
}

/// Queues a detected spike (dropped and counted when the queue is full).
template <class CONFIG_T> void sort_add(SortState<CONFIG_T>& state, const SpikeEvent& e) {
    if (state.n_waiting == CONFIG_T::max_waiting) {
        ++state.dropped;
        return;
    }
    state.waiting[(state.head + state.n_waiting) % CONFIG_T::max_waiting] = e;
    ++state.n_waiting;
}

/// Sorts the waiting spikes whose samples are all in the ring once frame `frame` has been pushed, in arrival order.
/// Calls before_spike(sample) first (where the owner of params applies the table writes due at that sample), then
/// emit(const SortedSpike&, snippet).
template <class CONFIG_T, class EMIT, class BEFORE>
void sort_advance(SortState<CONFIG_T>& state, const SortParams<CONFIG_T>& params, std::uint64_t frame, EMIT&& emit,
                  BEFORE&& before_spike) {
    std::int32_t snippet[CONFIG_T::snippet_channels][CONFIG_T::max_snippet_samples];
SORT_READY: // at most every waiting spike
    for (int i = 0; i < CONFIG_T::max_waiting; ++i) {
        if (state.n_waiting == 0)
            break;
        const SpikeEvent& e = state.waiting[state.head];
        if (e.sample + static_cast<std::uint64_t>(params.post) > frame)
            break;
        before_spike(e.sample);
        SortedSpike out;
        sort_event(params, &state.ring[0][0], CONFIG_T::ring_frames, CONFIG_T::max_channels, e, out, snippet);
        emit(out, snippet);
        state.head = (state.head + 1) % CONFIG_T::max_waiting;
        --state.n_waiting;
    }
}

template <class CONFIG_T, class EMIT>
void sort_advance(SortState<CONFIG_T>& state, const SortParams<CONFIG_T>& params, std::uint64_t frame, EMIT&& emit) {
    sort_advance(state, params, frame, emit, [](std::uint64_t) {});
}

/// End of stream after `n_frames` frames: samples past the end read as 0; sorts every waiting spike.
template <class CONFIG_T, class EMIT, class BEFORE>
void sort_flush(SortState<CONFIG_T>& state, const SortParams<CONFIG_T>& params, std::uint64_t n_frames, EMIT&& emit,
                BEFORE&& before_spike) {
    static const std::int32_t zeros[CONFIG_T::max_channels] = {};
SORT_FLUSH:
    for (int i = 0; i < params.post; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 63 avg = 30
        sort_push_frame(state, params, n_frames + static_cast<std::uint64_t>(i), zeros);
    }
    sort_advance(state, params, n_frames + static_cast<std::uint64_t>(params.post), emit, before_spike);
}

template <class CONFIG_T, class EMIT>
void sort_flush(SortState<CONFIG_T>& state, const SortParams<CONFIG_T>& params, std::uint64_t n_frames, EMIT&& emit) {
    sort_flush(state, params, n_frames, emit, [](std::uint64_t) {});
}

} // namespace hw
} // namespace spikeline
