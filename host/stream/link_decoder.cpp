#include "stream/link_decoder.hpp"

#include <algorithm>
#include <cstring>

namespace spikeline::stream {
namespace {

// Late packets are told from duplicates by the recent gaps they fall into; older gaps are forgotten.
constexpr std::size_t kRecentGaps = 64;
// Senders (or clocks) competing before lock: a stray packet or two must not push the real sender out.
constexpr std::size_t kMaxCandidateRuns = 8;

} // namespace

bool LinkDecoder::Run::continued_by(std::uint32_t id, std::uint64_t first, std::size_t n, std::uint64_t slack) const {
    // Sample indices stay below 2^63 + 2^16 and the slack is bounded by the options, so nothing here wraps.
    return id == stream_id && first <= hi + slack && first + n + slack >= lo;
}

void LinkDecoder::Run::add(Stored&& packet) {
    const std::uint64_t end = packet.first + packet.held.n_frames;
    if (packets.empty()) {
        stream_id = packet.stream_id;
        lo = packet.first;
        hi = end;
    } else {
        lo = std::min(lo, packet.first);
        hi = std::max(hi, end);
    }
    packets.push_back(std::move(packet));
}

LinkDecoder::LinkDecoder(const LinkDecoderOptions& options, Sink sink) : options_(options), sink_(std::move(sink)) {
    options_.lock_packets = std::max<std::size_t>(1, options_.lock_packets);
    options_.resync_packets = std::max<std::size_t>(1, options_.resync_packets);
}

std::size_t LinkDecoder::candidate_packets() const {
    std::size_t n = 0;
    for (const Run& run : candidates_)
        n += run.packets.size();
    return n;
}

void LinkDecoder::push(const unsigned char* bytes, std::size_t size, std::int64_t arrival_ns) {
    ++counters_.datagrams;
    LinkHeader header;
    const unsigned char* payload = nullptr;
    switch (parse_link_packet(bytes, size, header, payload)) {
    case LinkCheck::ok:
        break;
    case LinkCheck::too_short:
        ++counters_.too_short;
        return;
    case LinkCheck::bad_magic:
        ++counters_.bad_magic;
        return;
    case LinkCheck::bad_version:
        ++counters_.bad_version;
        return;
    case LinkCheck::bad_length:
        ++counters_.bad_length;
        return;
    case LinkCheck::bad_crc:
        ++counters_.bad_crc;
        return;
    }
    if (header.n_channels != options_.n_channels) {
        ++counters_.wrong_channels;
        return;
    }
    // A 30 kHz clock needs millions of years to pass 2^63; beyond it, sample arithmetic could wrap.
    if (header.first_sample >= (1ull << 63)) {
        ++counters_.out_of_range;
        return;
    }
    if (options_.stream_id && header.stream_id != *options_.stream_id) {
        reject_stream(header.stream_id);
        return;
    }
    if (!started_) {
        add_candidate(store(header.stream_id, header.first_sample, header.samples_per_packet, payload, arrival_ns));
        return;
    }
    if (header.stream_id != stream_id_) {
        reject_stream(header.stream_id);
        return;
    }
    place(header.first_sample, header.samples_per_packet, payload, arrival_ns);
}

void LinkDecoder::expire(std::int64_t now_ns) {
    while (!held_.empty()) {
        std::int64_t oldest = held_.begin()->second.arrival_ns;
        for (const auto& entry : held_)
            oldest = std::min(oldest, entry.second.arrival_ns);
        if (now_ns - oldest <= options_.max_hold_ns)
            break;
        fill_gap_to(held_.begin()->first, now_ns);
        drain_held();
    }
    place_early_suspects(); // a hole given up may have let the clock catch up with early packets
    // A jump within the bound that nothing contradicted for the hold time: the silence before it was a real loss.
    if (suspects_within_bound() && now_ns - suspects_.packets.front().held.arrival_ns > options_.max_hold_ns)
        confirm_jump();
}

void LinkDecoder::finish(std::int64_t now_ns) {
    if (!started_ && !candidates_.empty()) {
        // The stream ended before any sender reached lock_packets: the best-supported one (earliest on a tie) wins.
        std::size_t best = 0;
        for (std::size_t i = 1; i < candidates_.size(); ++i) {
            const Run& run = candidates_[i];
            const Run& leader = candidates_[best];
            if (run.packets.size() > leader.packets.size() ||
                (run.packets.size() == leader.packets.size() &&
                 run.packets.front().order < leader.packets.front().order))
                best = i;
        }
        lock(best);
    }
    if (suspects_within_bound())
        confirm_jump();
    else
        drop_suspects();
    flush_held(now_ns);
}

LinkDecoder::Stored LinkDecoder::store(std::uint32_t stream_id, std::uint64_t first, std::size_t n_frames,
                                       const unsigned char* payload, std::int64_t arrival_ns) {
    Stored packet;
    packet.stream_id = stream_id;
    packet.first = first;
    packet.held.payload.assign(payload, payload + 2 * static_cast<std::size_t>(options_.n_channels) * n_frames);
    packet.held.n_frames = n_frames;
    packet.held.arrival_ns = arrival_ns;
    packet.order = arrivals_++;
    return packet;
}

void LinkDecoder::add_candidate(Stored&& packet) {
    for (std::size_t i = 0; i < candidates_.size(); ++i) {
        Run& run = candidates_[i];
        if (!run.continued_by(packet.stream_id, packet.first, packet.held.n_frames, options_.reorder_window_frames))
            continue;
        for (const Stored& earlier : run.packets)
            if (earlier.first == packet.first) {
                ++counters_.duplicates;
                return;
            }
        run.add(std::move(packet));
        if (run.packets.size() >= options_.lock_packets)
            lock(i);
        return;
    }
    if (candidates_.size() >= kMaxCandidateRuns) {
        // The least supported run, and of those the one silent longest, is the likeliest stray.
        auto weakest = std::min_element(candidates_.begin(), candidates_.end(), [](const Run& a, const Run& b) {
            return a.packets.size() != b.packets.size() ? a.packets.size() < b.packets.size()
                                                        : a.packets.back().order < b.packets.back().order;
        });
        counters_.dropped_before_lock += weakest->packets.size();
        candidates_.erase(weakest);
    }
    candidates_.emplace_back();
    candidates_.back().add(std::move(packet));
    if (options_.lock_packets <= 1)
        lock(candidates_.size() - 1);
}

void LinkDecoder::lock(std::size_t run_index) {
    Run winner = std::move(candidates_[run_index]);
    candidates_.erase(candidates_.begin() + static_cast<std::ptrdiff_t>(run_index));
    started_ = true;
    stream_id_ = winner.stream_id;
    base_ = next_ = clock_start_ = winner.lo;
    // Every packet kept so far goes through the locked rules in the order it arrived: the winner's are delivered
    // (reordered where needed), other senders' are counted, the same sender's other clocks become suspects.
    std::vector<Stored> waiting = std::move(winner.packets);
    for (Run& run : candidates_)
        for (Stored& packet : run.packets)
            waiting.push_back(std::move(packet));
    candidates_.clear();
    std::sort(waiting.begin(), waiting.end(), [](const Stored& a, const Stored& b) { return a.order < b.order; });
    for (const Stored& packet : waiting) {
        if (packet.stream_id != stream_id_)
            reject_stream(packet.stream_id);
        else
            place(packet.first, packet.held.n_frames, packet.held.payload.data(), packet.held.arrival_ns);
    }
}

void LinkDecoder::place(std::uint64_t first, std::size_t n_frames, const unsigned char* payload,
                        std::int64_t arrival_ns, bool jump_confirmed) {
    const std::uint64_t end = first + n_frames;
    // Unsigned arithmetic: compare through differences only, each taken in the direction that cannot wrap.
    if (end <= next_) {
        if (next_ - end > options_.suspect_jump_frames)
            add_suspect(store(stream_id_, first, n_frames, payload, arrival_ns));
        else if (first >= clock_start_ && inside_recent_gap(first, end))
            note_late(next_ - first);
        else
            ++counters_.duplicates;
        return;
    }
    // Beyond the reorder window the hole before it would be zero-filled at once: first wait for a second packet on
    // that clock (within the bound: a loss) or several (beyond it: a resync), so that one rogue packet fills nothing.
    const std::uint64_t window = reorder_window(n_frames);
    if (first > next_ && first - next_ > window &&
        (!jump_confirmed || first - next_ > window + options_.suspect_jump_frames)) {
        add_suspect(store(stream_id_, first, n_frames, payload, arrival_ns));
        return;
    }
    if (first > next_ && held_.count(first) != 0) {
        ++counters_.duplicates;
        return;
    }
    if (first <= next_) { // in order (or overlapping what was delivered: the new part), maybe filling a hole
        const std::size_t skip = static_cast<std::size_t>(next_ - first);
        ++counters_.accepted;
        deliver(next_, n_frames - skip, payload + skip * 2 * static_cast<std::size_t>(options_.n_channels), arrival_ns);
        drain_held();
        current_clock_went_on();
        return;
    }
    Held held;
    held.payload.assign(payload, payload + 2 * static_cast<std::size_t>(options_.n_channels) * n_frames);
    held.n_frames = n_frames;
    held.arrival_ns = arrival_ns;
    held_.emplace(first, std::move(held));
    held_frames_ += n_frames;
    drain_held();
    // Data has run too far ahead of the hole (or too many packets wait): the missing packet is lost.
    while (!held_.empty()) {
        const auto& [last_first, last] = *held_.rbegin();
        const std::uint64_t ahead = last_first + last.n_frames - next_;
        if (ahead <= window && held_frames_ <= window)
            break;
        fill_gap_to(held_.begin()->first, arrival_ns);
        drain_held();
    }
    current_clock_went_on();
}

std::uint64_t LinkDecoder::reorder_window(std::size_t n_frames) const {
    if (!options_.adaptive_reorder_window)
        return options_.reorder_window_frames;
    return std::min<std::uint64_t>(options_.reorder_window_frames, std::max<std::uint64_t>(learnt_window_, n_frames));
}

void LinkDecoder::note_late(std::uint64_t depth) {
    ++counters_.late;
    // The link reorders this deep: wait that long for a missing packet from now on (up to the largest window).
    learnt_window_ = std::min(options_.reorder_window_frames, std::max(learnt_window_, depth));
    counters_.largest_reorder_window = std::max(counters_.largest_reorder_window, learnt_window_);
    window_since_ = counters_.frames;
}

void LinkDecoder::current_clock_went_on() {
    if (learnt_window_ > 0 && counters_.frames - window_since_ > options_.reorder_decay_frames) {
        learnt_window_ /= 2; // no reordering for a while: lower latency again
        window_since_ = counters_.frames;
    }
    if (!suspects_.packets.empty() && !place_early_suspects() && ++current_since_suspect_ >= options_.resync_packets)
        drop_suspects(); // the current clock outlasted them: outliers
}

bool LinkDecoder::place_early_suspects() {
    if (suspects_.packets.empty() || suspects_.lo < next_ || suspects_.hi - next_ > options_.reorder_window_frames)
        return false;
    // The current clock caught up (they fit the window now): packets early by more than the window, not a jump.
    Run early = std::move(suspects_);
    suspects_ = Run{};
    for (const Stored& packet : early.packets)
        place(packet.first, packet.held.n_frames, packet.held.payload.data(), packet.held.arrival_ns);
    return true;
}

bool LinkDecoder::suspects_within_bound() const {
    return !suspects_.packets.empty() && suspects_.lo > next_ &&
           suspects_.lo - next_ <= options_.reorder_window_frames + options_.suspect_jump_frames;
}

void LinkDecoder::confirm_jump() {
    Run run = std::move(suspects_);
    suspects_ = Run{};
    for (const Stored& packet : run.packets)
        place(packet.first, packet.held.n_frames, packet.held.payload.data(), packet.held.arrival_ns, true);
}

void LinkDecoder::add_suspect(Stored&& packet) {
    if (!suspects_.packets.empty() &&
        !suspects_.continued_by(packet.stream_id, packet.first, packet.held.n_frames, options_.reorder_window_frames))
        drop_suspects(); // a second, unrelated jump: the first had no follow-up
    for (const Stored& earlier : suspects_.packets)
        if (earlier.first == packet.first) {
            ++counters_.duplicates;
            return;
        }
    if (suspects_.packets.empty())
        current_since_suspect_ = 0;
    suspects_.add(std::move(packet));
    if (suspects_within_bound()) {
        if (suspects_.packets.size() >= std::min<std::size_t>(2, options_.resync_packets))
            confirm_jump();
    } else if (suspects_.packets.size() >= options_.resync_packets) {
        resync();
    }
}

void LinkDecoder::drop_suspects() {
    counters_.clock_outliers += suspects_.packets.size();
    suspects_ = Run{};
}

void LinkDecoder::resync() {
    Run run = std::move(suspects_);
    suspects_ = Run{};
    // What the old clock still holds is delivered first (holes between its packets are real losses).
    flush_held(run.packets.back().held.arrival_ns);
    ++counters_.resyncs;
    if (counters_.discontinuities.size() < LinkCounters::kMaxDiscontinuities)
        counters_.discontinuities.push_back({counters_.frames, next_, run.lo});
    // Frame indices go on from where they are: the jump itself is not filled.
    next_ = clock_start_ = run.lo;
    recent_gaps_.clear();
    for (const Stored& packet : run.packets)
        place(packet.first, packet.held.n_frames, packet.held.payload.data(), packet.held.arrival_ns);
}

void LinkDecoder::reject_stream(std::uint32_t stream_id) {
    ++counters_.wrong_stream;
    for (StreamIdCount& entry : counters_.other_stream_ids)
        if (entry.stream_id == stream_id) {
            ++entry.packets;
            return;
        }
    if (counters_.other_stream_ids.size() < LinkCounters::kMaxStreamIds)
        counters_.other_stream_ids.push_back({stream_id, 1});
}

void LinkDecoder::deliver(std::uint64_t first_sample, std::size_t n_frames, const unsigned char* payload,
                          std::int64_t arrival_ns) {
    DecodedFrames frames;
    frames.first_frame = counters_.frames; // contiguous across resyncs, which change the clock but not the count
    frames.n_frames = n_frames;
    frames.data = payload;
    frames.arrival_ns = arrival_ns;
    sink_(frames);
    next_ = first_sample + n_frames;
    counters_.frames += n_frames;
}

void LinkDecoder::fill_gap_to(std::uint64_t sample, std::int64_t now_ns) {
    if (sample <= next_)
        return;
    const std::uint64_t n = sample - next_;
    ++counters_.gaps;
    counters_.gap_frames += n;
    recent_gaps_.emplace_back(next_, sample);
    if (recent_gaps_.size() > kRecentGaps)
        recent_gaps_.pop_front();
    deliver(next_, static_cast<std::size_t>(n), nullptr, now_ns);
}

void LinkDecoder::drain_held() {
    while (!held_.empty() && held_.begin()->first <= next_) {
        auto node = held_.extract(held_.begin());
        const std::uint64_t first = node.key();
        Held& held = node.mapped();
        held_frames_ -= held.n_frames;
        if (first + held.n_frames <= next_) { // entirely covered by what was delivered meanwhile
            ++counters_.duplicates;
            continue;
        }
        const std::size_t skip = static_cast<std::size_t>(next_ - first);
        ++counters_.accepted;
        ++counters_.reordered;
        deliver(next_, held.n_frames - skip,
                held.payload.data() + skip * 2 * static_cast<std::size_t>(options_.n_channels), held.arrival_ns);
    }
}

void LinkDecoder::flush_held(std::int64_t now_ns) {
    while (!held_.empty()) {
        fill_gap_to(held_.begin()->first, now_ns);
        drain_held();
    }
}

bool LinkDecoder::inside_recent_gap(std::uint64_t first, std::uint64_t end) const {
    for (const auto& [gap_first, gap_end] : recent_gaps_)
        if (first < gap_end && end > gap_first)
            return true;
    return false;
}

} // namespace spikeline::stream
