#include "stream/link_decoder.hpp"

#include <algorithm>
#include <cstring>

namespace spikeline::stream {
namespace {

// Late packets are told from duplicates by the recent gaps they fall into; older gaps are forgotten.
constexpr std::size_t kRecentGaps = 64;

} // namespace

LinkDecoder::LinkDecoder(const LinkDecoderOptions& options, Sink sink) : options_(options), sink_(std::move(sink)) {}

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
    if (!started_) {
        started_ = true;
        stream_id_ = header.stream_id;
        base_ = next_ = header.first_sample;
    } else if (header.stream_id != stream_id_) {
        ++counters_.wrong_stream;
        return;
    }
    const std::uint64_t first = header.first_sample;
    const std::size_t n_frames = header.samples_per_packet;
    // Unsigned arithmetic near 2^64 must not wrap: compare through differences only.
    if (first < base_ || (first < next_ && next_ - first >= n_frames)) {
        if (first >= base_ && inside_recent_gap(first, first + n_frames))
            ++counters_.late;
        else
            ++counters_.duplicates;
        return;
    }
    if (first > next_ && first - next_ > options_.max_gap_frames) {
        ++counters_.out_of_range;
        return;
    }
    if (first <= next_) { // in order (or overlapping what was delivered: the new part), maybe filling a hole
        const std::size_t skip = static_cast<std::size_t>(next_ - first);
        ++counters_.accepted;
        deliver(next_, n_frames - skip, payload + skip * 2 * static_cast<std::size_t>(options_.n_channels), arrival_ns);
        drain_held();
        return;
    }
    if (held_.count(first) != 0) {
        ++counters_.duplicates;
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
        if (ahead <= options_.reorder_window_frames && held_frames_ <= options_.reorder_window_frames)
            break;
        fill_gap_to(held_.begin()->first, arrival_ns);
        drain_held();
    }
}

void LinkDecoder::expire(std::int64_t now_ns) {
    while (!held_.empty()) {
        std::int64_t oldest = held_.begin()->second.arrival_ns;
        for (const auto& entry : held_)
            oldest = std::min(oldest, entry.second.arrival_ns);
        if (now_ns - oldest <= options_.max_hold_ns)
            return;
        fill_gap_to(held_.begin()->first, now_ns);
        drain_held();
    }
}

void LinkDecoder::finish(std::int64_t now_ns) {
    while (!held_.empty()) {
        fill_gap_to(held_.begin()->first, now_ns);
        drain_held();
    }
}

void LinkDecoder::deliver(std::uint64_t first_sample, std::size_t n_frames, const unsigned char* payload,
                          std::int64_t arrival_ns) {
    DecodedFrames frames;
    frames.first_frame = first_sample - base_;
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

bool LinkDecoder::inside_recent_gap(std::uint64_t first, std::uint64_t end) const {
    for (const auto& [gap_first, gap_end] : recent_gaps_)
        if (first < gap_end && end > gap_first)
            return true;
    return false;
}

} // namespace spikeline::stream
