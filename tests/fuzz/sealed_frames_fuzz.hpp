#pragma once
// One fuzzing input for the secure link receiver: datagrams through LinkOpener (authentication, replay window) into
// the link decoder, as UdpSource runs them. The input is a sequence of [flags:1][counter:2][length:2][bytes]; flags
// bit 0 seals the bytes under the fuzzer's key with that counter (repairing the inner packet's magic, version, header
// size and CRC when bit 1 is set too), so that authentic frames with any content, order and counter reach the
// decoder; otherwise the bytes are handed over as they are (forgeries, plain packets, truncations). Any broken
// invariant aborts.
#include "stream/crc32c.hpp"
#include "stream/link_auth.hpp"
#include "stream/link_decoder.hpp"

#include <cstdlib>
#include <cstring>
#include <vector>

namespace spikeline::fuzz {

inline void sealed_frames_one_input(const unsigned char* data, std::size_t size) {
    using namespace spikeline::stream;
    LinkKey key{};
    for (std::size_t i = 0; i < key.size(); ++i)
        key[i] = static_cast<unsigned char>(i * 37 + 11);
    LinkDecoderOptions options;
    options.n_channels = 4;
    options.reorder_window_frames = 64;
    options.suspect_jump_frames = 4096;
    options.resync_packets = 3;
    options.lock_packets = 2;
    std::uint64_t next_frame = 0;
    LinkDecoder decoder(options, [&](const DecodedFrames& out) {
        if (out.first_frame != next_frame || out.n_frames == 0)
            std::abort();
        next_frame += out.n_frames;
    });
    LinkOpener opener(key);
    std::vector<unsigned char> datagram, sealed;
    std::size_t at = 0;
    std::uint64_t handed = 0;
    while (at + 5 <= size) {
        const unsigned char flags = data[at];
        const std::uint64_t counter = data[at + 1] | (data[at + 2] << 8);
        const std::size_t length = std::min<std::size_t>(data[at + 3] | (data[at + 4] << 8), size - at - 5);
        datagram.assign(data + at + 5, data + at + 5 + length);
        at += 5 + length;
        if ((flags & 3) == 3 && datagram.size() >= kLinkHeaderBytes + kLinkCrcBytes) {
            const std::uint32_t magic = kLinkMagic;
            const std::uint16_t header = static_cast<std::uint16_t>(kLinkHeaderBytes);
            std::memcpy(datagram.data(), &magic, 4);
            datagram[4] = kLinkVersion;
            std::memcpy(datagram.data() + 6, &header, 2);
            const std::uint32_t crc = crc32c(datagram.data(), datagram.size() - kLinkCrcBytes);
            std::memcpy(datagram.data() + datagram.size() - kLinkCrcBytes, &crc, 4);
        }
        if (flags & 1) {
            seal_link_frame(key, flags, counter, datagram.data(), datagram.size(), sealed);
            datagram.swap(sealed);
        }
        const unsigned char* packet = nullptr;
        std::size_t packet_bytes = 0;
        const SealedCheck check = opener.open(datagram.data(), datagram.size(), packet, packet_bytes);
        if (check == SealedCheck::ok) {
            if (packet_bytes + kSealedOverheadBytes != datagram.size())
                std::abort();
            decoder.push(packet, packet_bytes, static_cast<std::int64_t>(handed) * 1'000'000);
            ++handed;
        }
    }
    decoder.finish(static_cast<std::int64_t>(handed) * 1'000'000);
    const SealedCounters& c = opener.counters();
    if (c.authentic != handed || c.authentic + c.rejected() != c.frames || decoder.counters().datagrams != handed)
        std::abort();
}

} // namespace spikeline::fuzz
