#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "probe/probe.hpp"

namespace spikeline::io {

/// What a reader knows about a recording before reading it.
struct RecordingInfo {
    int n_channels = 0; ///< neural channels: those a reader delivers
    /// Channels per frame in the file when it holds more than the neural ones after them (a SpikeGLX sync channel),
    /// which readers skip; 0: the same as n_channels.
    int n_file_channels = 0;
    double sample_rate = 0.0;
    std::uint64_t n_frames = 0;      ///< frames (one int16 per channel) in the whole recording
    double microvolts_per_bit = 0;   ///< 0 when the gain is unknown
    std::string format;              ///< "spikeglx", "raw", "simulated", ...
    std::filesystem::path data_path; ///< the binary file, when there is one
    /// Set when the reader accepted a questionable file (a truncated SpikeGLX .bin with allow_truncated): what it
    /// uses and what is missing, for the caller to show.
    std::string warning;
    /// Geometry stated by the recording's own metadata (SpikeGLX ~snsGeomMap, or imroTbl with the probe type's
    /// documented layout; Open Ephys settings.xml), one contact per delivered channel; empty when it states none.
    std::optional<probe::Probe> probe;
    std::string geometry_source; ///< how probe was obtained (empty: no probe), for summaries and `spikeline info`
    std::string gain_source;     ///< which metadata gave microvolts_per_bit, or which default was used
    bool gain_fallback = false;  ///< microvolts_per_bit is a default, not stated by the metadata
    /// Why the metadata's geometry could not be used (a malformed map): resolve_probe reports it unless --probe or a
    /// probe.json gives the geometry.
    std::string geometry_error;
    /// File channels (0-based, in file order) that readers skip, each with why (e.g. "SpikeGLX sync").
    std::vector<std::pair<int, std::string>> skipped_channels;
    /// When a selection (--shanks, --channels-subset) delivers a subset: the global id of each delivered channel, i.e.
    /// its index among the channels the reader delivers without a selection. Empty: channel c is channel c.
    std::vector<int> channel_ids;

    int file_channels() const { return n_file_channels > 0 ? n_file_channels : n_channels; }
    int channel_id(int channel) const {
        return channel_ids.empty() ? channel : channel_ids[static_cast<std::size_t>(channel)];
    }
};

/// A stream of interleaved, time-major int16 frames. Readers never hold the whole recording in memory.
class RecordingSource {
public:
    virtual ~RecordingSource() = default;
    virtual const RecordingInfo& info() const = 0;
    /// Reads up to max_frames frames into dst (max_frames * n_channels int16); returns the number read,
    /// 0 at the end. Throws InputError on a read error or a recording shorter than its metadata says.
    virtual std::size_t read(std::int16_t* dst, std::size_t max_frames) = 0;
};

/// Options for opening a recording; channel count and sample rate are required for raw files only.
struct OpenOptions {
    std::optional<int> n_channels;
    std::optional<double> sample_rate;
    std::optional<double> microvolts_per_bit;
    std::string open_ephys_stream; ///< which continuous stream of an Open Ephys recording (empty: the first)
    /// SpikeGLX: read the whole frames of a .bin shorter than its .meta's fileSizeBytes (or not a whole number of
    /// frames) instead of refusing it; info().warning then says how much is used and missing.
    bool allow_truncated = false;
    /// Open Ephys: read a stream without neural channels (NI-DAQ, ADC) instead of refusing it.
    bool allow_non_neural = false;
};

/// Opens INPUT: an Open Ephys binary recording (structure.oebin or its folder), a SpikeGLX .bin with its .meta (or
/// the .meta itself, or a folder holding exactly one such pair; an mtscomp .cbin with its .ch stands for the .bin),
/// an mtscomp .cbin + .ch without .meta, otherwise a raw interleaved int16 file that needs
/// options.n_channels and options.sample_rate.
/// Throws InputError with what is wrong and what to do.
std::unique_ptr<RecordingSource> open_recording(const std::filesystem::path& input, const OpenOptions& options);

} // namespace spikeline::io
