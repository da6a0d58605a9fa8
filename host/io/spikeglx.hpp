#pragma once
// SpikeGLX recordings: NAME.bin (interleaved little-endian int16, time-major) beside NAME.meta (key=value
// lines). Keys used: nSavedChans, imSampRate (or niSampRate), fileSizeBytes (optional), snsApLfSy, whose sync
// channels (the last SY of each frame) readers skip, snsSaveChanSubset; for the gain imAiRangeMax / imMaxInt with the
// gains of ~imroTbl, imChan0apGain or the probe type's fixed gain (or niAiRangeMax / niMaxInt / niMNGain); for the
// geometry ~snsGeomMap, ~snsShankMap or ~imroTbl with the documented layout of imDatPrb_pn / imDatPrb_type
// (probe/neuropixels.hpp; docs/FORMATS.md §1.2).
#include "io/recording.hpp"
#include "probe/probe.hpp"

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
/// (finite, positive), without opening the data; open_spikeglx streams what this describes. Fills the probe geometry
/// the metadata states (or geometry_error for a malformed map), the gain and its source, and the skipped sync
/// channels.
RecordingInfo read_spikeglx_info(const std::filesystem::path& bin_path, const SpikeGlxReadOptions& options = {});

/// Opens a SpikeGLX pair, checking the .bin size against nSavedChans and fileSizeBytes.
std::unique_ptr<RecordingSource> open_spikeglx(const std::filesystem::path& bin_path);

/// Writes NAME.bin incrementally under a temporary name (NAME.bin.tmpPID) beside NAME.meta.tmpPID, which it writes
/// first (for zero frames) so that `spikeline recover` can finish the pair after a crash; finish() writes NAME.meta
/// (with fileSizeBytes and fileTimeSecs) and renames both into place.
class SpikeGlxWriter {
public:
    /// probe: the geometry the .meta states (~snsGeomMap, imDatPrb_pn); none: the .meta names no probe.
    SpikeGlxWriter(std::filesystem::path bin_path, int n_channels, double sample_rate, double microvolts_per_bit,
                   const probe::Probe* probe = nullptr);
    ~SpikeGlxWriter();
    SpikeGlxWriter(const SpikeGlxWriter&) = delete;
    SpikeGlxWriter& operator=(const SpikeGlxWriter&) = delete;

    /// Throws WriteError when the data cannot be written (disk full); finish() then still keeps what was written.
    void write(const std::int16_t* frames, std::size_t n_frames);
    /// Hands the frames written so far to the system (they survive a crash of the process); throws WriteError.
    void flush();
    std::uint64_t frames_written() const;
    /// Puts NAME.bin and NAME.meta into place with the whole frames that reached the disk (all written, unless a
    /// write failed) and returns their count. On failure the temporaries stay for `spikeline recover`.
    std::uint64_t finish();

private:
    struct State;
    std::unique_ptr<State> state_;
};

/// What recover_spikeglx kept.
struct SpikeGlxRecovery {
    std::filesystem::path bin_path;
    std::uint64_t frames = 0;        ///< whole frames kept
    std::uint64_t bytes_dropped = 0; ///< the part of a frame cut short, removed
};

/// Finishes a SpikeGLX pair whose writer died: `data` (NAME.bin.tmpPID, or NAME.bin when it was already renamed) is
/// cut to whole frames and becomes bin_path, and NAME.meta is written from meta_source (the writer's NAME.meta.tmpPID,
/// or a stale NAME.meta) with the fileSizeBytes and fileTimeSecs of what is kept. Throws InputError when meta_source
/// lacks nSavedChans or the sample rate.
SpikeGlxRecovery recover_spikeglx(const std::filesystem::path& data, const std::filesystem::path& meta_source,
                                  const std::filesystem::path& bin_path);

} // namespace spikeline::io
