#pragma once
// Live acquisition: a reader thread (the source) -> the pipeline on the calling thread (backend, motion tracking,
// calibration and learning in the background, ZeroMQ publication, latency) -> a sink thread (SpikeGLX copy of the
// stream, Phy folder, unit updates), joined by bounded queues.
#include "pipeline/detect_run.hpp"
#include "sort/sort_settings.hpp"
#include "stream/source.hpp"

#include <atomic>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace spikeline::stream {

/// What happens when the pipeline falls behind and the source's queue is full.
enum class OverrunPolicy {
    block, ///< the reader waits (files, stdin: nothing is lost; a UDP link would then lose packets in the kernel)
    drop,  ///< the block is dropped, counted, and replaced by zeros recorded in gaps.tsv (reason "overrun")
};

struct StreamOptions {
    SourceOptions source;
    std::filesystem::path out_dir;
    std::string publish;                 ///< ZeroMQ endpoint to bind the PUB socket to (empty: no publication)
    std::filesystem::path curve_secret;  ///< publisher's CURVE key pair file (with curve_clients: CURVE on)
    std::filesystem::path curve_clients; ///< folder of the subscribers' public key files (*.pub) admitted
    std::string probe_file;              ///< empty: probe.json beside a file source, else the built-in default
    /// backend, threads, detection settings (chunk_ms is not used: blocks are the source's)
    DetectRunOptions detect = detect_options_for_sorting();
    /// calibration_s: seconds of the stream the units are learnt from (0: no sorting); motion: track the probe's
    /// motion and move the units with it; keep_learning: learn again at 2, 4, 8... x calibration_s
    sort::SortSettings sort;
    double duration_s = 0;                ///< stop after this much data (0: at the end of the source or on a signal)
    std::optional<OverrunPolicy> overrun; ///< default: drop for live sources, block otherwise
    std::size_t queue_blocks = 2000;      ///< source queue capacity (blocks of about 1 ms)
    bool status = false;                  ///< draw the status line on stderr
    int realtime_priority = 0;            ///< SCHED_FIFO priority (1..99) of the reader and pipeline threads; 0: normal
    std::filesystem::path decoder_model;  ///< decoder model JSON (`decode train`); empty: no online decoding
    std::filesystem::path sorter_file;    ///< sorter.json of an earlier sort or stream: label with it, no calibration
    /// A Kilosort / Phy or spikeline sort folder: the first calibration builds the sorter from its units (good ones,
    /// or all not labelled noise with units_from_all) instead of clustering; no learning.
    std::filesystem::path units_from;
    bool units_from_all = false;
    /// --http HOST:PORT: serve the live view there (empty: none); http_any allows a non-loopback address.
    std::string http;
    bool http_any = false;
    bool save_raw = true; ///< write DIR/recording.bin (off only for long benchmarks: Phy then has no raw data)
    /// The signal that set `stop` (SIGINT, SIGTERM), for stream.json's ended_by; null or 0: a stop without a signal.
    const std::atomic<int>* stop_signal = nullptr;
};

/// Runs until the source ends, duration_s is reached or stop becomes true (set it from a signal handler); then
/// drains the queues, flushes the backend, finalises every file and writes OUT/stream.json, which it returns.
/// Throws InputError on bad input or settings, before the stream starts. An error once it runs (the source, a full
/// disk, a file that cannot be written) ends it instead: every file keeps what was written (whole frames and rows),
/// and the summary says why it ended ("ended_by", "error", "ended_early") and what was kept and lost.
nlohmann::json run_stream(const StreamOptions& options, const std::atomic<bool>& stop);

} // namespace spikeline::stream
