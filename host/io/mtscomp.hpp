#pragma once
// mtscomp-compressed recordings (IBL and others): NAME.cbin holds one zlib stream per chunk of frames, NAME.ch (JSON)
// states the layout: n_channels, sample_rate, dtype, algorithm, chunk_bounds (first frame of each chunk and the total),
// chunk_offsets (first byte of each chunk in the .cbin and its size), chunk_order ("F": each chunk stored channel by
// channel; "C": frame by frame), and do_time_diff / do_spatial_diff (the chunk holds differences along time, first
// frame kept, and/or along channels, first channel kept, in int16 wrap-around arithmetic).
#include "io/recording.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

namespace spikeline::io {

/// What NAME.ch says about NAME.cbin, checked against itself and the .cbin's size.
struct MtscompHeader {
    int n_channels = 0;
    double sample_rate = 0;
    std::vector<std::uint64_t> chunk_bounds;  ///< frames: chunk i holds frames [bounds[i], bounds[i+1])
    std::vector<std::uint64_t> chunk_offsets; ///< bytes: chunk i is stored in [offsets[i], offsets[i+1])
    bool channel_major = true;                ///< chunk_order "F"
    bool time_diff = true;
    bool spatial_diff = false;
    /// "chopped": true: mtscomp's Reader.chop kept the first chunks of a longer recording (whose .meta it keeps).
    bool chopped = false;
    /// When allow_truncated cut a truncated .cbin to its whole chunks: the frames the .ch stated; else 0.
    std::uint64_t truncated_from_frames = 0;

    std::uint64_t n_frames() const { return chunk_bounds.empty() ? 0 : chunk_bounds.back(); }
    /// The size of the decompressed data: what a SpikeGLX .meta's fileSizeBytes states for the .bin.
    std::uint64_t data_bytes() const { return n_frames() * static_cast<std::uint64_t>(n_channels) * 2; }
};

/// NAME.ch beside NAME.cbin.
std::filesystem::path mtscomp_header_path(const std::filesystem::path& cbin_path);

/// Reads and checks NAME.ch beside cbin_path; throws InputError saying what is missing, malformed or unsupported. A
/// .cbin shorter than the .ch says is refused, or with allow_truncated described by its whole chunks.
MtscompHeader read_mtscomp_header(const std::filesystem::path& cbin_path, bool allow_truncated = false);

/// Streams info.data_path (a .cbin described by header) one chunk at a time, delivering the first info.n_channels of
/// each frame's header.n_channels (info.file_channels() must equal header.n_channels). Throws InputError naming the
/// chunk when one does not decompress to the size its bounds state.
std::unique_ptr<RecordingSource> open_mtscomp(RecordingInfo info, MtscompHeader header);

} // namespace spikeline::io
