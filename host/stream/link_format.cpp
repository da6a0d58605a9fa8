#include "stream/link_format.hpp"

#include "stream/crc32c.hpp"

#include <cstring>

namespace spikeline::stream {
namespace {

// The build refuses big-endian hosts (io/), so fields are copied byte for byte.
template <class T> void put(unsigned char* at, T value) {
    std::memcpy(at, &value, sizeof value);
}
template <class T> T get(const unsigned char* at) {
    T value;
    std::memcpy(&value, at, sizeof value);
    return value;
}

} // namespace

const char* to_string(LinkCheck check) {
    switch (check) {
    case LinkCheck::ok:
        return "ok";
    case LinkCheck::too_short:
        return "too_short";
    case LinkCheck::bad_magic:
        return "bad_magic";
    case LinkCheck::bad_version:
        return "bad_version";
    case LinkCheck::bad_length:
        return "bad_length";
    case LinkCheck::bad_crc:
        return "bad_crc";
    }
    return "unknown";
}

void encode_link_packet(const LinkHeader& header, const std::int16_t* frames, std::vector<unsigned char>& out) {
    const std::size_t payload = 2 * static_cast<std::size_t>(header.n_channels) * header.samples_per_packet;
    out.resize(kLinkHeaderBytes + payload + kLinkCrcBytes);
    unsigned char* p = out.data();
    put<std::uint32_t>(p, kLinkMagic);
    put<std::uint8_t>(p + 4, kLinkVersion);
    put<std::uint8_t>(p + 5, 0);
    put<std::uint16_t>(p + 6, static_cast<std::uint16_t>(kLinkHeaderBytes));
    put<std::uint32_t>(p + 8, header.stream_id);
    put<std::uint16_t>(p + 12, header.n_channels);
    put<std::uint16_t>(p + 14, header.samples_per_packet);
    put<std::uint64_t>(p + 16, header.sequence);
    put<std::uint64_t>(p + 24, header.first_sample);
    if (payload > 0)
        std::memcpy(p + kLinkHeaderBytes, frames, payload);
    put<std::uint32_t>(p + kLinkHeaderBytes + payload, crc32c(p, kLinkHeaderBytes + payload));
}

LinkCheck parse_link_packet(const unsigned char* bytes, std::size_t size, LinkHeader& header,
                            const unsigned char*& payload) {
    if (size < kLinkHeaderBytes + kLinkCrcBytes)
        return LinkCheck::too_short;
    if (get<std::uint32_t>(bytes) != kLinkMagic)
        return LinkCheck::bad_magic;
    if (bytes[4] != kLinkVersion)
        return LinkCheck::bad_version;
    const std::size_t header_bytes = get<std::uint16_t>(bytes + 6);
    header.stream_id = get<std::uint32_t>(bytes + 8);
    header.n_channels = get<std::uint16_t>(bytes + 12);
    header.samples_per_packet = get<std::uint16_t>(bytes + 14);
    header.sequence = get<std::uint64_t>(bytes + 16);
    header.first_sample = get<std::uint64_t>(bytes + 24);
    const std::size_t payload_bytes = 2 * static_cast<std::size_t>(header.n_channels) * header.samples_per_packet;
    // Version 1 has exactly this header; a longer one would be a new version.
    if (header_bytes != kLinkHeaderBytes || header.n_channels == 0 || header.samples_per_packet == 0 ||
        size != kLinkHeaderBytes + payload_bytes + kLinkCrcBytes)
        return LinkCheck::bad_length;
    if (crc32c(bytes, size - kLinkCrcBytes) != get<std::uint32_t>(bytes + size - kLinkCrcBytes))
        return LinkCheck::bad_crc;
    payload = bytes + kLinkHeaderBytes;
    return LinkCheck::ok;
}

} // namespace spikeline::stream
