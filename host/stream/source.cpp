#include "stream/source.hpp"

#include "stream/keys.hpp"
#include "stream/udp.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <poll.h>
#include <random>
#include <thread>
#include <unistd.h>

namespace spikeline::stream {
namespace {

std::size_t frames_for_ms(double ms, double sample_rate) {
    require(std::isfinite(ms) && ms > 0 && ms <= 1000, "the block length must be in (0, 1000] ms");
    return std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(ms * sample_rate / 1000.0)));
}

void require_stream_shape(const SourceOptions& options, const std::string& what) {
    require(options.n_channels.has_value() && options.sample_rate.has_value(),
            what + " carries no metadata: give --channels and --sample-rate");
    require(*options.n_channels >= 1 && *options.n_channels <= 65535, "--channels must be in 1..65535");
    require(std::isfinite(*options.sample_rate) && *options.sample_rate > 0, "--sample-rate must be positive");
    require(!options.microvolts_per_bit ||
                (std::isfinite(*options.microvolts_per_bit) && *options.microvolts_per_bit >= 0),
            "--uv-per-bit must be positive (or 0 when unknown)");
}

/// The implant link over UDP.
class UdpSource final : public LiveSource {
public:
    explicit UdpSource(const SourceOptions& options)
        : address_(parse_udp_address(options.source)),
          decoder_(make_decoder_options(options), [this](const DecodedFrames& frames) { on_frames(frames); }) {
        check_link_security(options);
        if (!options.key_file.empty())
            opener_.emplace(read_link_key(options.key_file));
        socket_.emplace(UdpSocket::bind_receiver(address_, options.receive_buffer_bytes));
        info_.n_channels = *options.n_channels;
        info_.sample_rate = *options.sample_rate;
        info_.microvolts_per_bit = options.microvolts_per_bit.value_or(0);
        info_.kind = "udp";
        info_.description = options.source;
        info_.live = true;
        gap_block_frames_ = frames_for_ms(1.0, info_.sample_rate);
    }

    const SourceInfo& info() const override { return info_; }

    void run(const std::atomic<bool>& stop, const Emit& emit) override {
        emit_ = &emit;
        std::vector<unsigned char> buffer(65536);
        for (;;) {
            const bool stopping = stop.load();
            // After a stop request, take what the kernel already holds, then end.
            if (!stopping && !socket_->wait_readable(20)) {
                decoder_.expire(monotonic_ns());
                publish_counters();
                continue;
            }
            bool any = false;
            for (long n; (n = socket_->receive(buffer.data(), buffer.size())) >= 0;) {
                any = true;
                if (!opener_) {
                    decoder_.push(buffer.data(), static_cast<std::size_t>(n), monotonic_ns());
                    continue;
                }
                // Forged, repeated and stale frames stop here, counted: the decoder never sees their bytes.
                const unsigned char* packet = nullptr;
                std::size_t packet_bytes = 0;
                if (opener_->open(buffer.data(), static_cast<std::size_t>(n), packet, packet_bytes) == SealedCheck::ok)
                    decoder_.push(packet, packet_bytes, monotonic_ns());
            }
            decoder_.expire(monotonic_ns());
            publish_counters();
            if (stopping && !any)
                break;
        }
        decoder_.finish(monotonic_ns());
        publish_counters();
        emit_ = nullptr;
    }

    nlohmann::json counters() const override {
        std::lock_guard lock(counters_mutex_);
        nlohmann::json json = to_json(published_);
        json["stream_id"] = locked_ ? nlohmann::json(locked_stream_id_) : nlohmann::json(nullptr);
        json["receive_buffer_bytes"] = socket_->receive_buffer_bytes();
        json["secure"] = opener_.has_value();
        if (opener_) {
            json["authentication"] = to_json(published_sealed_);
            json["rejected"] = published_sealed_.rejected();
        }
        return json;
    }
    std::uint64_t base_sample() const override { return base_.load(); }

private:
    static LinkDecoderOptions make_decoder_options(const SourceOptions& options) {
        require_stream_shape(options, "a UDP link");
        LinkDecoderOptions decoder;
        decoder.n_channels = *options.n_channels;
        // The upper limits keep sample arithmetic far from wrapping, whatever the sample rate.
        require(std::isfinite(options.reorder_window_ms) && options.reorder_window_ms >= 0 &&
                    options.reorder_window_ms <= 60'000,
                "--reorder-window-ms must be in 0..60000");
        require(std::isfinite(options.clock_jump_ms) && options.clock_jump_ms >= 0 &&
                    options.clock_jump_ms <= 3'600'000,
                "--clock-jump-ms must be in 0..3600000");
        require(*options.sample_rate <= 1e7, "--sample-rate must be at most 10 MHz for a UDP link");
        const auto frames = [&](double ms) {
            return static_cast<std::uint64_t>(std::llround(ms * *options.sample_rate / 1000.0));
        };
        decoder.reorder_window_frames = frames(options.reorder_window_ms);
        decoder.adaptive_reorder_window = !options.fixed_reorder_window;
        decoder.reorder_decay_frames = frames(10'000);
        decoder.suspect_jump_frames = frames(options.clock_jump_ms);
        decoder.stream_id = options.stream_id;
        // Waiting longer than the window itself lets a lost packet stall a stream whose data has paused.
        decoder.max_hold_ns = static_cast<std::int64_t>(std::max(1.0, options.reorder_window_ms) * 2e6);
        return decoder;
    }

    void on_frames(const DecodedFrames& frames) {
        base_.store(decoder_.base_sample());
        const std::size_t stride = static_cast<std::size_t>(info_.n_channels);
        if (frames.data != nullptr) {
            SourceBlock block;
            block.first_frame = frames.first_frame;
            block.n_frames = frames.n_frames;
            block.frames.resize(frames.n_frames * stride);
            std::memcpy(block.frames.data(), frames.data, block.frames.size() * sizeof(std::int16_t));
            block.arrival_ns = frames.arrival_ns;
            (*emit_)(std::move(block));
            return;
        }
        // A gap: zeros in blocks of about a millisecond, so a long outage never needs one huge allocation.
        for (std::size_t done = 0; done < frames.n_frames;) {
            SourceBlock block;
            block.first_frame = frames.first_frame + done;
            block.n_frames = std::min(gap_block_frames_, frames.n_frames - done);
            block.frames.assign(block.n_frames * stride, 0);
            block.arrival_ns = frames.arrival_ns;
            block.gap = true;
            done += block.n_frames;
            (*emit_)(std::move(block));
        }
    }

    void publish_counters() {
        std::lock_guard lock(counters_mutex_);
        published_ = decoder_.counters();
        if (opener_)
            published_sealed_ = opener_->counters();
        locked_ = decoder_.started();
        locked_stream_id_ = decoder_.stream_id();
    }

    SourceInfo info_;
    UdpAddress address_;
    std::optional<UdpSocket> socket_; ///< bound once the security options are checked
    std::optional<LinkOpener> opener_;
    LinkDecoder decoder_;
    const Emit* emit_ = nullptr;
    std::size_t gap_block_frames_ = 30;
    mutable std::mutex counters_mutex_;
    LinkCounters published_;
    SealedCounters published_sealed_;
    bool locked_ = false;
    std::uint32_t locked_stream_id_ = 0;
    std::atomic<std::uint64_t> base_{0};
};

/// Raw interleaved int16 frames on standard input, e.g. piped from an acquisition program.
class StdinSource final : public LiveSource {
public:
    explicit StdinSource(const SourceOptions& options) {
        require_stream_shape(options, "standard input");
        info_.n_channels = *options.n_channels;
        info_.sample_rate = *options.sample_rate;
        info_.microvolts_per_bit = options.microvolts_per_bit.value_or(0);
        info_.kind = "stdin";
        info_.description = "standard input (raw int16)";
        block_frames_ = frames_for_ms(options.block_ms, info_.sample_rate);
    }
    const SourceInfo& info() const override { return info_; }

    void run(const std::atomic<bool>& stop, const Emit& emit) override {
        const std::size_t frame_bytes = 2 * static_cast<std::size_t>(info_.n_channels);
        std::vector<unsigned char> pending(block_frames_ * frame_bytes);
        std::size_t filled = 0;
        std::uint64_t next_frame = 0;
        bool open = true;
        while (open && !stop.load()) {
            pollfd descriptor{STDIN_FILENO, POLLIN, 0};
            if (::poll(&descriptor, 1, 20) <= 0)
                continue;
            const ssize_t n = ::read(STDIN_FILENO, pending.data() + filled, pending.size() - filled);
            if (n <= 0) { // end of input (or an error: the pipe is gone either way)
                open = false;
            } else {
                filled += static_cast<std::size_t>(n);
                bytes_ += static_cast<std::uint64_t>(n);
            }
            // Hand on every whole frame at once (at most a block): waiting for a full block would add latency.
            const std::size_t whole = filled / frame_bytes;
            if (whole == 0)
                continue;
            SourceBlock block;
            block.first_frame = next_frame;
            block.n_frames = whole;
            block.frames.resize(whole * static_cast<std::size_t>(info_.n_channels));
            std::memcpy(block.frames.data(), pending.data(), whole * frame_bytes);
            block.arrival_ns = monotonic_ns();
            next_frame += whole;
            std::memmove(pending.data(), pending.data() + whole * frame_bytes, filled - whole * frame_bytes);
            filled -= whole * frame_bytes;
            emit(std::move(block));
        }
        trailing_bytes_ = filled;
    }

    nlohmann::json counters() const override {
        return {{"bytes", bytes_.load()}, {"trailing_partial_frame_bytes", trailing_bytes_.load()}};
    }

private:
    SourceInfo info_;
    std::size_t block_frames_ = 30;
    std::atomic<std::uint64_t> bytes_{0};
    std::atomic<std::size_t> trailing_bytes_{0};
};

/// A recording file, read a block at a time, optionally at the pace it was recorded.
class FileSource final : public LiveSource {
public:
    FileSource(const SourceOptions& options, std::unique_ptr<io::RecordingSource> recording)
        : recording_(std::move(recording)), realtime_(options.realtime), inject_loss_(options.inject_loss),
          loss_random_(options.inject_seed) {
        require(std::isfinite(inject_loss_) && inject_loss_ >= 0 && inject_loss_ < 1,
                "--inject-loss must be in [0, 1)");
        const io::RecordingInfo& r = recording_->info();
        info_.n_channels = r.n_channels;
        info_.sample_rate = r.sample_rate;
        info_.microvolts_per_bit = r.microvolts_per_bit;
        info_.recording = r;
        info_.kind = "file";
        info_.description = r.data_path.string() + " (" + r.format + ")";
        info_.data_path = r.data_path;
        info_.live = false;
        block_frames_ = frames_for_ms(options.block_ms, info_.sample_rate);
    }
    const SourceInfo& info() const override { return info_; }

    void run(const std::atomic<bool>& stop, const Emit& emit) override {
        const auto start = std::chrono::steady_clock::now();
        std::uint64_t next_frame = 0;
        while (!stop.load()) {
            SourceBlock block;
            block.frames.resize(block_frames_ * static_cast<std::size_t>(info_.n_channels));
            block.n_frames = recording_->read(block.frames.data(), block_frames_);
            if (block.n_frames == 0)
                break;
            block.frames.resize(block.n_frames * static_cast<std::size_t>(info_.n_channels));
            block.first_frame = next_frame;
            next_frame += block.n_frames;
            if (realtime_) // a block exists once its last sample has been recorded
                std::this_thread::sleep_until(start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                                          static_cast<double>(next_frame) / info_.sample_rate * 1e9)));
            block.arrival_ns = monotonic_ns();
            // The top 53 bits as a uniform double in [0, 1): the same losses for a seed on every machine.
            if (inject_loss_ > 0 && static_cast<double>(loss_random_() >> 11) * 0x1.0p-53 < inject_loss_) {
                block.frames.clear();
                block.gap = true;
                ++injected_losses_;
            }
            emit(std::move(block));
        }
    }

    nlohmann::json counters() const override {
        return inject_loss_ > 0 ? nlohmann::json{{"injected_lost_blocks", injected_losses_.load()}}
                                : nlohmann::json::object();
    }

private:
    SourceInfo info_;
    std::unique_ptr<io::RecordingSource> recording_;
    bool realtime_ = false;
    double inject_loss_ = 0;
    std::mt19937_64 loss_random_;
    std::atomic<std::uint64_t> injected_losses_{0};
    std::size_t block_frames_ = 30;
};

} // namespace

std::int64_t monotonic_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

nlohmann::json to_json(const LinkCounters& c) {
    nlohmann::json json = {{"datagrams", c.datagrams},
                           {"accepted", c.accepted},
                           {"reordered", c.reordered},
                           {"duplicates", c.duplicates},
                           {"late", c.late},
                           {"malformed", c.malformed()},
                           {"too_short", c.too_short},
                           {"bad_magic", c.bad_magic},
                           {"bad_version", c.bad_version},
                           {"bad_length", c.bad_length},
                           {"bad_crc", c.bad_crc},
                           {"wrong_stream", c.wrong_stream},
                           {"wrong_channels", c.wrong_channels},
                           {"out_of_range", c.out_of_range},
                           {"clock_outliers", c.clock_outliers},
                           {"dropped_before_lock", c.dropped_before_lock},
                           {"resyncs", c.resyncs},
                           {"gaps", c.gaps},
                           {"gap_frames", c.gap_frames},
                           {"frames", c.frames},
                           {"largest_reorder_window_frames", c.largest_reorder_window}};
    nlohmann::json other_ids = nlohmann::json::object();
    for (const StreamIdCount& entry : c.other_stream_ids)
        other_ids[std::to_string(entry.stream_id)] = entry.packets;
    json["other_stream_ids"] = other_ids;
    nlohmann::json discontinuities = nlohmann::json::array();
    for (const ClockDiscontinuity& d : c.discontinuities)
        discontinuities.push_back({{"frame", d.frame}, {"old_sample", d.old_sample}, {"new_sample", d.new_sample}});
    json["discontinuities"] = discontinuities;
    return json;
}

nlohmann::json to_json(const SealedCounters& c) {
    return {{"frames", c.frames},         {"authentic", c.authentic},     {"rejected", c.rejected()},
            {"not_sealed", c.not_sealed}, {"bad_version", c.bad_version}, {"too_short", c.too_short},
            {"forged", c.forged},         {"repeated", c.repeated},       {"stale", c.stale}};
}

void check_link_security(const SourceOptions& options) {
    const UdpAddress address = parse_udp_address(options.source);
    require(!(options.insecure && !options.key_file.empty()), "give either --key FILE or --insecure, not both");
    require(options.insecure || !options.key_file.empty(),
            "a UDP link needs --key FILE, the link key its sender seals frames with (make one with spikeline keygen "
            "--out FILE; replay --key FILE sends with it), or --insecure for plain frames on loopback");
    require(!options.insecure || is_loopback(address),
            "--insecure accepts plain frames only on a loopback address (udp://127.0.0.1:PORT), not on " +
                options.source + ": anyone who can reach that address could inject samples; use --key FILE");
}

std::unique_ptr<LiveSource> open_live_source(const SourceOptions& options) {
    require(!options.source.empty(), "no source given: --source udp://HOST:PORT, - (stdin) or a recording");
    if (is_udp_url(options.source))
        return std::make_unique<UdpSource>(options);
    require(options.key_file.empty() && !options.insecure,
            "--key and --insecure apply to a UDP link (--source udp://HOST:PORT), not to " + options.source);
    if (options.source == "-")
        return std::make_unique<StdinSource>(options);
    io::OpenOptions open;
    open.n_channels = options.n_channels;
    open.sample_rate = options.sample_rate;
    open.microvolts_per_bit = options.microvolts_per_bit;
    open.open_ephys_stream = options.open_ephys_stream;
    open.allow_truncated = options.allow_truncated;
    return std::make_unique<FileSource>(options, io::open_recording(options.source, open));
}

} // namespace spikeline::stream
