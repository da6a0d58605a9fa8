#pragma once
// Open Ephys binary recordings: a recording folder holds structure.oebin (JSON) and, per stream,
// continuous/<folder_name>/continuous.dat (interleaved little-endian int16, time-major). The "continuous" list of
// structure.oebin gives each stream's folder_name, sample_rate, num_channels and per channel its name, description,
// units and bit_volts (microvolts per bit for electrode channels, volts per bit for ADC and NI-DAQ inputs).
// Channels that are not electrodes (a Neuropixels *_SYNC line, ADC and AUX inputs) are skipped; electrode positions
// come from the settings.xml of the Record Node folder (see open_ephys_settings.hpp).
#include "io/recording.hpp"

#include <filesystem>
#include <memory>
#include <string>

namespace spikeline::io {

/// True when path is a structure.oebin file or a folder holding one.
bool is_open_ephys(const std::filesystem::path& path);

/// Describes stream `stream` (its folder_name or stream_name; empty: the only or first stream) of an Open Ephys
/// recording, checking continuous.dat's size: its electrode channels (the others listed in skipped_channels), their
/// gain, and the probe geometry settings.xml states for the stream. A stream without electrode channels (NI-DAQ, ADC)
/// is refused unless allow_non_neural, which reads all its channels in microvolts. Throws InputError with what is
/// wrong (listing the streams).
RecordingInfo read_open_ephys_info(const std::filesystem::path& path, const std::string& stream,
                                   bool allow_non_neural = false);

/// Opens that stream for reading.
std::unique_ptr<RecordingSource> open_open_ephys(const std::filesystem::path& path, const std::string& stream,
                                                 bool allow_non_neural = false);

} // namespace spikeline::io
