#pragma once
// What the detector sees where the link lost data. Zeros would put a step of the signal's offset (and LFP) into the
// band-pass, which rings and fires for milliseconds, and would pull the noise trackers down; the fill instead mirrors
// the last frames received (same noise level and spectrum) and bends them linearly to meet the first frame after the
// gap, so both edges are continuous. Events in the fill are never real: the pipeline drops them (GapBlanking).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

namespace spikeline::stream {

class GapFiller {
public:
    /// history_frames: how many of the latest frames a fill mirrors (>= 1).
    GapFiller(std::size_t n_channels, std::size_t history_frames);

    /// Frames the detector processed from real data, in order.
    void remember(const std::int16_t* frames, std::size_t n_frames);
    /// Starts a fill of n_frames that ends just before next_frame (null when no frame follows, e.g. at the end).
    void begin(std::uint64_t n_frames, const std::int16_t* next_frame);
    /// The next n_frames frames of the current fill, into out (n_frames x n_channels).
    void produce(std::size_t n_frames, std::int16_t* out);

private:
    std::size_t n_channels_;
    std::size_t capacity_;
    std::vector<std::int16_t> history_; ///< ring of the latest frames
    std::size_t held_ = 0, newest_ = 0; ///< frames held; ring slot of the newest
    // The current fill
    std::uint64_t fill_frames_ = 0, produced_ = 0;
    std::vector<std::int64_t> end_mismatch_; ///< per channel: next frame - the mirrored frame at the fill's end

    const std::int16_t* mirrored(std::uint64_t i) const;
};

/// Sample spans [first, end) whose events are dropped: every gap, and blank_after frames after it (the alignment
/// window: a crossing in the fill may find its extremum just after the gap).
class GapBlanking {
public:
    explicit GapBlanking(std::uint64_t blank_after) : blank_after_(blank_after) {}
    std::uint64_t blank_after() const { return blank_after_; }
    /// A gap of n frames from first (gaps arrive in order).
    void add_gap(std::uint64_t first, std::uint64_t n);
    /// Whether a spike peaking at sample falls in a blanked span.
    bool blanked(std::uint64_t sample) const;
    /// Spans that end before sample can no longer hold a spike still to come.
    void forget_before(std::uint64_t sample);

private:
    std::uint64_t blank_after_;
    std::deque<std::pair<std::uint64_t, std::uint64_t>> spans_;
};

} // namespace spikeline::stream
