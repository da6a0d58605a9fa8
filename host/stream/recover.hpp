#pragma once
// `spikeline recover DIR`: after a crash (SIGKILL, power loss) turns what a stream (or detect, sort, simulate) left
// on disk into a folder that opens: the SpikeGLX copy cut to whole frames with a valid .meta, the per-spike arrays
// cut to one length, the logs to whole rows; every other temporary of a dead process removed.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spikeline::stream {

struct RecoveryReport {
    std::vector<std::string> actions; ///< what was done, one line each, for the user
    std::uint64_t frames_kept = 0;    ///< whole frames of the recovered recording.bin
    std::uint64_t bytes_dropped = 0;  ///< bytes of rows and frames cut short (the crash interrupted their write)
    std::uint64_t spikes_kept = 0;    ///< rows of the per-spike arrays
    std::uint64_t spikes_dropped = 0; ///< rows one per-spike array held beyond the others
    std::uint64_t spikes_after_recording = 0; ///< kept spikes whose sample lies after recording.bin's last frame
    std::vector<std::string> removed;         ///< temporaries removed (derived or half-written files)
    bool recovered_anything = false;
    nlohmann::json to_json() const;
};

/// Recovers dir (see above) and writes DIR/recover.json with the report. Throws InputError when dir is not a folder
/// or a live process is still writing there.
RecoveryReport recover_folder(const std::filesystem::path& dir);

} // namespace spikeline::stream
