#pragma once
// SpikeGLX recordings: NAME.bin (interleaved little-endian int16, time-major) beside NAME.meta (key=value
// lines). Keys used: nSavedChans, imSampRate (or niSampRate), fileSizeBytes, and for the gain
// imAiRangeMax / imMaxInt with the AP gain of ~imroTbl (Neuropixels) or niAiRangeMax / niMaxInt / niMNGain, and
// snsApLfSy, whose sync channels (the last SY of each frame) readers skip.
#include "io/recording.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace spikeline::io {

using MetaMap = std::map<std::string, std::string>;

/// Parses a .meta file; throws InputError on unreadable files or malformed lines.
MetaMap read_spikeglx_meta(const std::filesystem::path& meta_path);

/// The channels snsSaveChanSubset lists ("all": empty; else e.g. "0:5,8,12:15", ranges inclusive), ascending.
/// Throws InputError naming meta_path when the value is malformed.
std::vector<int> spikeglx_saved_channels(const MetaMap& meta, const std::filesystem::path& meta_path);

/// How read_spikeglx_info treats questionable files.
struct SpikeGlxReadOptions {
    /// Describe a .bin shorter than fileSizeBytes, or with a partial last frame, by its whole frames and say so in
    /// RecordingInfo::warning (a .bin longer than fileSizeBytes stays an error: the .meta belongs to another file).
    bool allow_truncated = false;
    /// The caller sets the gain itself (--uv-per-bit): gain keys of the .meta are not read.
    bool gain_given = false;
    std::optional<std::uint64_t> data_bytes; ///< the data's size when bin_path is compressed (.cbin: decompressed)
};

/// Reads NAME.meta beside bin_path and checks the .bin size against nSavedChans and fileSizeBytes and the gain keys
/// (finite, positive), without opening the data; open_spikeglx streams what this describes.
RecordingInfo read_spikeglx_info(const std::filesystem::path& bin_path, const SpikeGlxReadOptions& options = {});

/// Opens a SpikeGLX pair, checking the .bin size against nSavedChans and fileSizeBytes.
std::unique_ptr<RecordingSource> open_spikeglx(const std::filesystem::path& bin_path);

/// Writes NAME.bin incrementally under a temporary name; finish() writes NAME.meta (with fileSizeBytes
/// and fileTimeSecs) and renames both into place.
class SpikeGlxWriter {
public:
    SpikeGlxWriter(std::filesystem::path bin_path, int n_channels, double sample_rate, double microvolts_per_bit);
    ~SpikeGlxWriter();
    SpikeGlxWriter(const SpikeGlxWriter&) = delete;
    SpikeGlxWriter& operator=(const SpikeGlxWriter&) = delete;

    void write(const std::int16_t* frames, std::size_t n_frames);
    void finish();

private:
    struct State;
    std::unique_ptr<State> state_;
};

} // namespace spikeline::io
