#pragma once
#include "io/recording.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace spikeline::io {

/// A headerless file of interleaved little-endian int16 frames; the size must be a whole number of frames.
std::unique_ptr<RecordingSource> open_raw(const std::filesystem::path& path, int n_channels, double sample_rate,
                                          double microvolts_per_bit);

/// A source that can also deliver frames in place: a file of exactly n_channels int16 per frame, mapped one chunk at a
/// time. On two cores a reader thread copying chunks competed with the backend's workers; the mapping needs neither.
class InPlaceSource {
public:
    virtual ~InPlaceSource() = default;
    /// True when the file's frames are the delivered frames (no channels to skip).
    virtual bool can_view() const = 0;
    /// Up to max_frames frames from the current position (shared with RecordingSource::read), without a copy;
    /// n_frames is set to the number delivered, 0 at the end. Valid until the next view() or read(). Only when
    /// can_view(). Throws InputError as read() does, e.g. for a file cut short since it was opened.
    virtual const std::int16_t* view(std::size_t max_frames, std::size_t& n_frames) = 0;
};

/// source's in-place reader when it has one and can_view(); nullptr otherwise.
InPlaceSource* in_place_source(RecordingSource& source);

/// Streams info.data_path as info.n_frames interleaved int16 frames; the caller has validated info against the
/// file (used by the raw and SpikeGLX readers).
std::unique_ptr<RecordingSource> open_interleaved_int16(RecordingInfo info);

} // namespace spikeline::io
