#pragma once
// Open Ephys binary recordings: a recording folder holds structure.oebin (JSON) and, per stream,
// continuous/<folder_name>/continuous.dat (interleaved little-endian int16, time-major). The "continuous" list of
// structure.oebin gives each stream's folder_name, sample_rate, num_channels and per-channel bit_volts (microvolts
// per bit for headstage channels).
#include "io/recording.hpp"

#include <filesystem>
#include <memory>
#include <string>

namespace spikeline::io {

/// True when path is a structure.oebin file or a folder holding one.
bool is_open_ephys(const std::filesystem::path& path);

/// Describes stream `stream` (its folder_name or stream_name; empty: the only or first stream) of an Open Ephys
/// recording, checking continuous.dat's size. Throws InputError with what is wrong (listing the streams).
RecordingInfo read_open_ephys_info(const std::filesystem::path& path, const std::string& stream);

/// Opens that stream for reading.
std::unique_ptr<RecordingSource> open_open_ephys(const std::filesystem::path& path, const std::string& stream);

} // namespace spikeline::io
