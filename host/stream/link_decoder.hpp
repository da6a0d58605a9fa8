#pragma once
// Turns link packets (stream/link_format.hpp), as they arrive from an unreliable transport, into a gap-free
// sequence of frames: validates each datagram, locks onto one sender (stream id and clock) only once several
// consistent packets agree, puts packets back in sample order within a bounded reorder window, drops duplicates,
// and fills what never arrived with zeros so that sample timing stays exact. A packet starting beyond the reorder
// window is held aside as suspect until another packet confirms its clock: then a jump within a bound is a loss
// (zero-filled), a larger one a recorded discontinuity that is followed without zero-filling the jump (once several
// packets agree while the old clock is silent); a lone outlier is dropped. Every gap, outlier and discontinuity is
// reported; nothing a datagram holds can make it crash or allocate without bound.
#include "stream/link_format.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <vector>

namespace spikeline::stream {

/// A resync: from frame index `frame` on, frames come from the new clock (link sample = new_sample + frame offset).
struct ClockDiscontinuity {
    std::uint64_t frame = 0;      ///< first frame index taken from the new clock
    std::uint64_t old_sample = 0; ///< link sample the old clock would have delivered at that frame
    std::uint64_t new_sample = 0; ///< link sample of that frame on the new clock
};

/// Packets of a stream id other than the one locked on (or asked for).
struct StreamIdCount {
    std::uint32_t stream_id = 0;
    std::uint64_t packets = 0;
};

/// What the decoder saw, packet by packet.
struct LinkCounters {
    /// Per-id tallies and discontinuities are kept for this many ids / resyncs; the totals count all of them.
    static constexpr std::size_t kMaxStreamIds = 16;
    static constexpr std::size_t kMaxDiscontinuities = 256;

    std::uint64_t datagrams = 0; ///< everything handed to push()
    std::uint64_t accepted = 0;  ///< packets whose frames (or some of them) were delivered
    std::uint64_t reordered = 0; ///< accepted after waiting for an earlier packet
    std::uint64_t duplicates = 0;
    std::uint64_t late = 0; ///< arrived after their place had been filled with zeros
    std::uint64_t too_short = 0, bad_magic = 0, bad_version = 0, bad_length = 0, bad_crc = 0;
    std::uint64_t wrong_stream = 0;   ///< valid, but another stream id than the one locked on (or asked for)
    std::uint64_t wrong_channels = 0; ///< valid, but another channel count than expected
    std::uint64_t out_of_range = 0;   ///< first sample >= 2^63
    std::uint64_t clock_outliers = 0; ///< suspect packets dropped: no consistent follow-up, or the old clock went on
    std::uint64_t dropped_before_lock = 0;    ///< candidates pushed out of the bounded table before any sender locked
    std::uint64_t resyncs = 0;                ///< clock discontinuities followed
    std::uint64_t gaps = 0;                   ///< zero-filled runs
    std::uint64_t gap_frames = 0;             ///< frames filled with zeros
    std::uint64_t frames = 0;                 ///< frames delivered, gaps included
    std::uint64_t largest_reorder_window = 0; ///< the widest adaptive reorder window used, in frames
    std::vector<StreamIdCount> other_stream_ids;     ///< wrong_stream by id, for the first kMaxStreamIds ids
    std::vector<ClockDiscontinuity> discontinuities; ///< the first kMaxDiscontinuities resyncs

    std::uint64_t malformed() const { return too_short + bad_magic + bad_version + bad_length + bad_crc; }
};

struct LinkDecoderOptions {
    int n_channels = 0; ///< packets with another channel count are rejected
    /// How far data may run ahead of a missing packet before it is a gap. With adaptive_reorder_window this is the
    /// largest window: the window in use starts at one packet (a loss is a gap as soon as the next packet is there)
    /// and grows to the deepest reordering seen (a late packet: the frames delivered past its first sample), halving
    /// after reorder_decay_frames without one. A reordering link thus loses its first reordered packet, not latency.
    std::uint64_t reorder_window_frames = 90;
    bool adaptive_reorder_window = true;
    std::uint64_t reorder_decay_frames = 300000;
    /// A packet starting more than this beyond the reorder window (ahead), or ending more than this before the next
    /// expected sample (behind), is a clock jump: it needs resync_packets agreeing packets, and is never zero-filled
    /// up to. A packet beyond the window but within this bound needs one more packet (or max_hold_ns) to be a loss.
    std::uint64_t suspect_jump_frames = 30000;
    /// Suspect packets continuing one another (each within the reorder window of the others) that make a resync,
    /// provided fewer packets of the current clock arrived meanwhile (else they are outliers).
    std::size_t resync_packets = 4;
    /// Consistent packets of one stream id (within the reorder window of one another) needed to lock onto it.
    std::size_t lock_packets = 4;
    std::optional<std::uint32_t> stream_id; ///< only this id may lock; others are wrong_stream from the start
    std::int64_t max_hold_ns = 5'000'000;   ///< expire(): a packet waits at most this long for earlier ones
};

/// Frames handed on, in order and contiguous: frame indices count from 0 at the locked clock's first sample.
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
    /// Gives up waiting for missing packets when the oldest held packet arrived more than max_hold_ns before now;
    /// likewise confirms a suspect within the jump bound that nothing contradicted for max_hold_ns.
    void expire(std::int64_t now_ns);
    /// End of stream: locks onto the best candidate if none has locked yet, drops suspect packets (outliers) and
    /// delivers every held packet, filling the holes between them.
    void finish(std::int64_t now_ns);

    const LinkCounters& counters() const { return counters_; }
    /// The reorder window in use for packets of n_frames frames (see LinkDecoderOptions::reorder_window_frames).
    std::uint64_t reorder_window(std::size_t n_frames) const;
    bool started() const { return started_; }
    /// Link sample index of frame 0: the lowest first sample of the packets that locked. After a resync, frames
    /// from ClockDiscontinuity::frame on follow the new clock (counters().discontinuities).
    std::uint64_t base_sample() const { return base_; }
    std::uint32_t stream_id() const { return stream_id_; }
    /// Packets currently waiting for an earlier one.
    std::size_t held_packets() const { return held_.size(); }
    /// Packets held aside as a possible new clock (at most resync_packets - 1 between calls).
    std::size_t suspect_packets() const { return suspects_.packets.size(); }
    /// Packets waiting for a sender to lock (bounded: a few candidates of fewer than lock_packets each).
    std::size_t candidate_packets() const;

private:
    struct Held {
        std::vector<unsigned char> payload;
        std::size_t n_frames = 0;
        std::int64_t arrival_ns = 0;
    };
    /// A packet kept whole until its fate is known (before lock, or as a suspect).
    struct Stored {
        std::uint32_t stream_id = 0;
        std::uint64_t first = 0;
        Held held;
        std::uint64_t order = 0; ///< arrival order, to replay in the order packets came
    };
    /// Packets that continue one another: one sender's clock, as far as can be told.
    struct Run {
        std::uint32_t stream_id = 0;
        std::uint64_t lo = 0, hi = 0; ///< link samples [lo, hi) spanned
        std::vector<Stored> packets;
        bool continued_by(std::uint32_t id, std::uint64_t first, std::size_t n, std::uint64_t slack) const;
        void add(Stored&& packet);
    };

    void add_candidate(Stored&& packet);
    void lock(std::size_t run_index);
    void place(std::uint64_t first, std::size_t n_frames, const unsigned char* payload, std::int64_t arrival_ns,
               bool jump_confirmed = false);
    void current_clock_went_on();
    bool place_early_suspects();
    /// A packet arrived after its frames were given up as a gap, depth frames behind the delivery point.
    void note_late(std::uint64_t depth);
    bool suspects_within_bound() const;
    void confirm_jump();
    void add_suspect(Stored&& packet);
    void drop_suspects();
    void resync();
    void reject_stream(std::uint32_t stream_id);
    Stored store(std::uint32_t stream_id, std::uint64_t first, std::size_t n_frames, const unsigned char* payload,
                 std::int64_t arrival_ns);

    void deliver(std::uint64_t first_sample, std::size_t n_frames, const unsigned char* payload,
                 std::int64_t arrival_ns);
    void fill_gap_to(std::uint64_t sample, std::int64_t now_ns);
    void drain_held();
    void flush_held(std::int64_t now_ns);
    bool inside_recent_gap(std::uint64_t first, std::uint64_t end) const;

    LinkDecoderOptions options_;
    Sink sink_;
    LinkCounters counters_;
    bool started_ = false;
    std::uint32_t stream_id_ = 0;
    std::uint64_t base_ = 0;
    std::uint64_t clock_start_ = 0;      ///< link sample of the current clock's first frame (base_ until a resync)
    std::uint64_t next_ = 0;             ///< link sample index of the next frame to deliver
    std::uint64_t learnt_window_ = 0;    ///< adaptive: twice the deepest recent reordering
    std::uint64_t window_since_ = 0;     ///< adaptive: counters_.frames when learnt_window_ last grew or halved
    std::map<std::uint64_t, Held> held_; ///< by first sample, all beyond next_
    std::uint64_t held_frames_ = 0;
    std::deque<std::pair<std::uint64_t, std::uint64_t>> recent_gaps_; ///< [first, end) link samples, newest last
    std::uint64_t arrivals_ = 0;                                      ///< packets stored so far (their order)
    std::vector<Run> candidates_;                                     ///< before lock
    Run suspects_;                                                    ///< after lock: the possible new clock
    std::size_t current_since_suspect_ = 0; ///< current-clock packets placed since the first suspect arrived
};

} // namespace spikeline::stream
