#pragma once
// One fuzzing input for the link decoder, shared by the libFuzzer target (fuzz_link_decoder.cpp) and the
// deterministic mutation test in test_stream.cpp. The input is a sequence of datagrams, each [flags:1][length:2]
// [bytes]; flags bit 0 repairs magic, version and header size, bit 1 recomputes the CRC, so that mutations of the
// other header fields (channels, samples, sequence, first sample, stream id) reach the decoder's logic instead of
// stopping at the checks. Any broken invariant aborts (a crash the fuzzer reports).
#include "stream/crc32c.hpp"
#include "stream/link_decoder.hpp"

#include <cstdlib>
#include <cstring>
#include <vector>

namespace spikeline::fuzz {

inline void link_decoder_one_input(const unsigned char* data, std::size_t size) {
    using namespace spikeline::stream;
    LinkDecoderOptions options;
    options.n_channels = 4;
    options.reorder_window_frames = 64;
    options.suspect_jump_frames = 4096;
    options.resync_packets = 3;
    options.lock_packets = 2;
    std::uint64_t next_frame = 0;
    std::uint64_t frames = 0;
    LinkDecoder decoder(options, [&](const DecodedFrames& out) {
        // Frames must come in order, without holes or overlaps, and never absurdly many at once.
        if (out.first_frame != next_frame || out.n_frames == 0 ||
            out.n_frames > 70000 + options.reorder_window_frames + options.suspect_jump_frames)
            std::abort();
        if (out.data != nullptr) {
            volatile unsigned char sink = 0;
            for (std::size_t i = 0; i < out.n_frames * 2 * 4; ++i)
                sink = static_cast<unsigned char>(sink ^ out.data[i]); // every byte must be readable
        }
        next_frame += out.n_frames;
        frames += out.n_frames;
    });
    std::vector<unsigned char> datagram;
    std::int64_t now = 0;
    std::size_t at = 0;
    while (at + 3 <= size) {
        const unsigned char flags = data[at];
        const std::size_t length = std::min<std::size_t>(data[at + 1] | (data[at + 2] << 8), size - at - 3);
        datagram.assign(data + at + 3, data + at + 3 + length);
        at += 3 + length;
        if ((flags & 1) && datagram.size() >= kLinkHeaderBytes) {
            const std::uint32_t magic = kLinkMagic;
            const std::uint16_t header = static_cast<std::uint16_t>(kLinkHeaderBytes);
            std::memcpy(datagram.data(), &magic, 4);
            datagram[4] = kLinkVersion;
            std::memcpy(datagram.data() + 6, &header, 2);
        }
        if ((flags & 2) && datagram.size() >= kLinkCrcBytes) {
            const std::uint32_t crc = crc32c(datagram.data(), datagram.size() - kLinkCrcBytes);
            std::memcpy(datagram.data() + datagram.size() - kLinkCrcBytes, &crc, 4);
        }
        now += (flags >> 2) * 1'000'000;
        decoder.push(datagram.data(), datagram.size(), now);
        if (flags & 0x80)
            decoder.expire(now);
        if (decoder.held_packets() * 1 > options.reorder_window_frames + 1)
            std::abort(); // held data is bounded by the window
        if (decoder.suspect_packets() >= options.resync_packets || decoder.candidate_packets() > 8)
            std::abort(); // so are suspects (a resync or a drop comes first) and candidates before lock
    }
    decoder.finish(now);
    if (decoder.held_packets() != 0 || decoder.counters().frames != frames)
        std::abort();
}

} // namespace spikeline::fuzz
