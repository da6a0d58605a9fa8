#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF), the checksum of
// the implant link frames. Check value: crc32c("123456789") == 0xE3069283.
#include <cstddef>
#include <cstdint>

namespace spikeline::stream {

/// CRC-32C of n bytes; the fastest implementation this build has (SSE4.2 crc32 instructions when compiled for
/// them, else the table). Continue a running CRC by passing the previous result as crc.
std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0);

/// The same checksum, always table-driven (slicing by 8): the portable path, kept callable so tests can check both.
std::uint32_t crc32c_portable(const void* data, std::size_t n, std::uint32_t crc = 0);

} // namespace spikeline::stream
