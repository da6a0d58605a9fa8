#pragma once
// Plays a recording as implant link packets over UDP at the recording's pace, as a headstage would, with fault
// injection (loss, reordering, duplicates, corruption) for tests.
#include "stream/source.hpp"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace spikeline::stream {

struct ReplayOptions {
    SourceOptions input;    ///< the recording (file or Open Ephys); realtime/block_ms are not used
    std::string to;         ///< udp://HOST:PORT
    double packet_ms = 1.0; ///< samples per packet = round(packet_ms x sample rate / 1000)
    double speed = 1.0;     ///< 1: real time; 2: twice as fast; 0: as fast as possible
    double loss = 0;        ///< probability that a packet is not sent
    double reorder = 0;     ///< probability that a packet is sent after the next one
    double duplicate = 0;   ///< probability that a packet is sent twice
    double corrupt = 0;     ///< probability that one byte of a sent packet is flipped (its CRC then fails)
    std::uint64_t seed = 1;
    std::uint32_t stream_id = 1;
    std::uint64_t first_sample = 0; ///< link sample index of the recording's first frame
    double duration_s = 0;          ///< 0: the whole recording (times loops)
    std::uint64_t loops = 1;        ///< plays the recording this many times back to back (0: until stopped)
    int realtime_priority = 0; ///< SCHED_FIFO priority of the sending thread (0: normal), as a headstage never lags
    std::filesystem::path key_file; ///< seal every packet under this link key (link_auth.hpp)
    bool insecure = false;          ///< plain packets instead: to a loopback address only
};

/// Sends the packets; returns counts {packets, sent, lost, reordered, duplicated, corrupted, frames, wall_seconds,
/// late_packets (sent more than 1 ms behind schedule), lost_packets (list of their first samples)}. Stops early when
/// stop becomes true.
nlohmann::json run_replay(const ReplayOptions& options, const std::atomic<bool>& stop);

} // namespace spikeline::stream
