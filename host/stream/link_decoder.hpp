#pragma once
// Turns link packets (stream/link_format.hpp), as they arrive from an unreliable transport, into a gap-free
// sequence of frames: validates each datagram, puts packets back in sample order within a bounded reorder window,
// drops duplicates, and fills what never arrived with zeros so that sample timing stays exact. Every gap is
// reported; nothing a datagram holds can make it crash or allocate without bound.
#include "stream/link_format.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <vector>

namespace spikeline::stream {

/// What the decoder saw, packet by packet.
struct LinkCounters {
    std::uint64_t datagrams = 0; ///< everything handed to push()
    std::uint64_t accepted = 0;  ///< packets whose frames (or some of them) were delivered
    std::uint64_t reordered = 0; ///< accepted after waiting for an earlier packet
    std::uint64_t duplicates = 0;
    std::uint64_t late = 0; ///< arrived after their place had been filled with zeros
    std::uint64_t too_short = 0, bad_magic = 0, bad_version = 0, bad_length = 0, bad_crc = 0;
    std::uint64_t wrong_stream = 0;   ///< valid, but another stream id than the one locked on
    std::uint64_t wrong_channels = 0; ///< valid, but another channel count than expected
    std::uint64_t out_of_range = 0;   ///< first sample implausibly far ahead (max_gap_frames) or >= 2^63
    std::uint64_t gaps = 0;           ///< zero-filled runs
    std::uint64_t gap_frames = 0;     ///< frames filled with zeros
    std::uint64_t frames = 0;         ///< frames delivered, gaps included

    std::uint64_t malformed() const { return too_short + bad_magic + bad_version + bad_length + bad_crc; }
};

struct LinkDecoderOptions {
    int n_channels = 0;                       ///< packets with another channel count are rejected
    std::uint64_t reorder_window_frames = 90; ///< how far data may run ahead of a missing packet before it is a gap
    std::uint64_t max_gap_frames = 30000ull * 600; ///< a packet further ahead than this is rejected, not zero-filled
    std::int64_t max_hold_ns = 5'000'000;          ///< expire(): a packet waits at most this long for earlier ones
};

/// Frames handed on, in order: frame indices count from the first accepted packet's first sample (index 0).
struct DecodedFrames {
    std::uint64_t first_frame = 0;
    std::size_t n_frames = 0;
    const unsigned char* data = nullptr; ///< n_frames x n_channels little-endian int16 (maybe unaligned); null: a gap
    std::int64_t arrival_ns = 0;         ///< when the packet holding these frames arrived (gaps: when filled)
};

class LinkDecoder {
public:
    using Sink = std::function<void(const DecodedFrames&)>;

    LinkDecoder(const LinkDecoderOptions& options, Sink sink);

    /// One datagram, received at arrival_ns (any monotonic clock, used for latency and expiry).
    void push(const unsigned char* bytes, std::size_t size, std::int64_t arrival_ns);
    /// Gives up waiting for missing packets when the oldest held packet arrived more than max_hold_ns before now.
    void expire(std::int64_t now_ns);
    /// End of stream: delivers every held packet, filling the holes between them.
    void finish(std::int64_t now_ns);

    const LinkCounters& counters() const { return counters_; }
    bool started() const { return started_; }
    /// Link sample index of frame 0 (the first accepted packet's first sample).
    std::uint64_t base_sample() const { return base_; }
    std::uint32_t stream_id() const { return stream_id_; }
    /// Packets currently waiting for an earlier one.
    std::size_t held_packets() const { return held_.size(); }

private:
    struct Held {
        std::vector<unsigned char> payload;
        std::size_t n_frames = 0;
        std::int64_t arrival_ns = 0;
    };

    void deliver(std::uint64_t first_sample, std::size_t n_frames, const unsigned char* payload,
                 std::int64_t arrival_ns);
    void fill_gap_to(std::uint64_t sample, std::int64_t now_ns);
    void drain_held();
    bool inside_recent_gap(std::uint64_t first, std::uint64_t end) const;

    LinkDecoderOptions options_;
    Sink sink_;
    LinkCounters counters_;
    bool started_ = false;
    std::uint32_t stream_id_ = 0;
    std::uint64_t base_ = 0;
    std::uint64_t next_ = 0;             ///< link sample index of the next frame to deliver
    std::map<std::uint64_t, Held> held_; ///< by first sample, all beyond next_
    std::uint64_t held_frames_ = 0;
    std::deque<std::pair<std::uint64_t, std::uint64_t>> recent_gaps_; ///< [first, end) link samples, newest last
};

} // namespace spikeline::stream
