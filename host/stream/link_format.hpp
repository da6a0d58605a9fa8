#pragma once
// The implant link frame ("link packet"): what a headstage sends in one UDP datagram. Little-endian; layout in
// docs/FORMATS.md (section 9).
//
//   offset  size  field
//        0     4  magic "SPKL" (0x4C4B5053 read as a little-endian uint32)
//        4     1  version (1)
//        5     1  flags (reserved, 0)
//        6     2  header bytes (32; the payload starts here)
//        8     4  stream id (a new id marks a restarted acquisition)
//       12     2  channel count C (>= 1)
//       14     2  samples per packet S (>= 1)
//       16     8  sequence number (+1 per packet)
//       24     8  first sample index (sample clock of the first frame in the payload)
//       32  2*C*S payload: S frames of C int16, time-major
//      end     4  CRC-32C of every byte before it
#include <cstddef>
#include <cstdint>
#include <vector>

namespace spikeline::stream {

inline constexpr std::uint32_t kLinkMagic = 0x4C4B5053u;
inline constexpr std::uint8_t kLinkVersion = 1;
inline constexpr std::size_t kLinkHeaderBytes = 32;
inline constexpr std::size_t kLinkCrcBytes = 4;
/// The largest UDP payload over IPv4; link packets must fit one datagram.
inline constexpr std::size_t kMaxDatagramBytes = 65507;

struct LinkHeader {
    std::uint32_t stream_id = 0;
    std::uint16_t n_channels = 0;
    std::uint16_t samples_per_packet = 0;
    std::uint64_t sequence = 0;
    std::uint64_t first_sample = 0;
};

/// Why a datagram was rejected (or ok).
enum class LinkCheck { ok, too_short, bad_magic, bad_version, bad_length, bad_crc };

const char* to_string(LinkCheck check);

/// Bytes of a packet carrying samples_per_packet frames of n_channels.
constexpr std::size_t link_packet_bytes(std::size_t n_channels, std::size_t samples_per_packet) {
    return kLinkHeaderBytes + 2 * n_channels * samples_per_packet + kLinkCrcBytes;
}

/// Writes header + frames (header.samples_per_packet x header.n_channels int16) + CRC into out (resized).
void encode_link_packet(const LinkHeader& header, const std::int16_t* frames, std::vector<unsigned char>& out);

/// Validates a datagram: length, magic, version, header size, payload length against the header's counts, CRC.
/// On ok fills header and points payload at the frames' bytes (little-endian int16, possibly unaligned).
LinkCheck parse_link_packet(const unsigned char* bytes, std::size_t size, LinkHeader& header,
                            const unsigned char*& payload);

} // namespace spikeline::stream
