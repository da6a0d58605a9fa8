#pragma once
#include "io/recording.hpp"

#include <memory>

namespace spikeline::io {

/// A headerless file of interleaved little-endian int16 frames; the size must be a whole number of frames.
std::unique_ptr<RecordingSource> open_raw(const std::filesystem::path& path, int n_channels, double sample_rate,
                                          double microvolts_per_bit);

/// Streams info.data_path as info.n_frames interleaved int16 frames; the caller has validated info against the
/// file (used by the raw and SpikeGLX readers).
std::unique_ptr<RecordingSource> open_interleaved_int16(RecordingInfo info);

} // namespace spikeline::io
