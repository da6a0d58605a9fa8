#pragma once
// Where a live stream's samples come from: a UDP implant link (link packets through LinkDecoder), raw int16 frames on
// stdin, or a recording file (SpikeGLX, raw, Open Ephys binary) optionally paced at real time. A source runs on the
// stream's reader thread and hands on blocks of consecutive frames with the time they arrived.
#include "io/recording.hpp"
#include "stream/link_auth.hpp"
#include "stream/link_decoder.hpp"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spikeline::stream {

/// steady_clock (CLOCK_MONOTONIC) in nanoseconds: the clock of every arrival and latency.
std::int64_t monotonic_ns();

/// Consecutive frames, numbered from the first frame of the stream.
struct SourceBlock {
    std::uint64_t first_frame = 0;
    std::size_t n_frames = 0;
    std::vector<std::int16_t> frames; ///< n_frames x n_channels, time-major
    std::int64_t arrival_ns = 0;      ///< when the data holding the block's last frame arrived
    bool gap = false;                 ///< zeros standing for link packets that never arrived
};

struct SourceOptions {
    std::string source;            ///< udp://HOST:PORT, "-" (stdin) or a recording path
    std::optional<int> n_channels; ///< required for udp and stdin; checked against files
    std::optional<double> sample_rate;
    std::optional<double> microvolts_per_bit;
    std::string open_ephys_stream; ///< which continuous stream of an Open Ephys recording
    bool allow_truncated = false;  ///< files: read the whole frames of a cut SpikeGLX .bin (io::OpenOptions)
    bool realtime = false;         ///< files: deliver at the recording's pace
    double block_ms = 1.0;         ///< stdin and files: frames per block
    /// files: each block is lost (delivered as a gap) with this probability, to test gap handling reproducibly
    double inject_loss = 0;
    std::uint64_t inject_seed = 1;
    double reorder_window_ms = 3.0;         ///< udp: see LinkDecoderOptions
    bool fixed_reorder_window = false;      ///< udp: always wait reorder_window_ms (not adaptive)
    double clock_jump_ms = 1000.0;          ///< udp: LinkDecoderOptions::suspect_jump_frames, in ms
    std::optional<std::uint32_t> stream_id; ///< udp: accept only this sender (else lock on the first consistent one)
    int receive_buffer_bytes = 4 << 20;
    /// udp: sealed frames under this pre-shared key (link_auth.hpp); forged, repeated and stale ones are dropped
    std::filesystem::path key_file;
    bool insecure = false; ///< udp: plain link packets, accepted only on a loopback address
};

struct SourceInfo {
    int n_channels = 0;
    double sample_rate = 0;
    double microvolts_per_bit = 0;
    std::string kind;                ///< udp, stdin or file
    std::string description;         ///< for summaries
    std::filesystem::path data_path; ///< files: the recording (for probe.json beside it)
    /// files: what the reader found (metadata geometry, gain source), for resolve_probe and the outputs' metadata
    std::optional<io::RecordingInfo> recording;
    bool live = false; ///< data cannot wait: a full queue drops rather than blocks by default
};

class LiveSource {
public:
    using Emit = std::function<void(SourceBlock&&)>;
    virtual ~LiveSource() = default;
    virtual const SourceInfo& info() const = 0;
    /// Delivers blocks until the data ends or stop becomes true (then drains what has already arrived).
    virtual void run(const std::atomic<bool>& stop, const Emit& emit) = 0;
    /// Counters so far (safe to call from another thread while run() goes on).
    virtual nlohmann::json counters() const { return nlohmann::json::object(); }
    /// Link sample index of frame 0 (udp), else 0.
    virtual std::uint64_t base_sample() const { return 0; }
};

/// Opens a source; throws InputError with what is wrong and what to do.
std::unique_ptr<LiveSource> open_live_source(const SourceOptions& options);

nlohmann::json to_json(const LinkCounters& counters);
nlohmann::json to_json(const SealedCounters& counters);

/// Checks a UDP source's security options: a key (--key), or --insecure on a loopback address only; a listener
/// beyond loopback needs the key. Throws InputError saying what to give.
void check_link_security(const SourceOptions& options);

} // namespace spikeline::stream
