#pragma once
// The ZeroMQ messages of `spikeline stream --publish` (layout in docs/FORMATS.md, section 10). Each message is one
// ZeroMQ frame, little-endian, starting with a 4-byte type tag that subscribers can filter on.
//
// "SPK1" spike (40 bytes)              "END1" end of stream (24 bytes)
//    0  char[4] "SPK1"                    0  char[4] "END1"
//    4  int32   channel                   4  uint32  0 (reserved)
//    8  uint64  sample (stream frame)     8  uint64  spikes published
//   16  int32   unit (-1: unsorted)      16  uint64  frames processed
//   20  float32 amplitude (uV, or LSB)
//   24  int64   host time (CLOCK_REALTIME ns) at publication
//   32  int64   latency ns (-1: released at the end of the stream)
//
// "VEL1" decoded velocity, one per bin (56 bytes; `stream --decoder`)
//    0  char[4] "VEL1"
//    4  uint32  0 (reserved)
//    8  uint64  bin index k (samples [k * bin, (k + 1) * bin) of the stream)
//   16  uint64  end sample (k + 1) * bin
//   24  float64 vx, 32 float64 vy (units of the kinematics the model was trained on)
//   40  int64   host time (CLOCK_REALTIME ns) at publication
//   48  int64   latency ns: arrival of the block that completed the bin -> publication
//
// "MOT1" motion estimate, one per estimate (24 + 16 x n_blocks bytes; motion tracking on, the default)
//    0  char[4] "MOT1"
//    4  uint32  n_blocks
//    8  float64 time (s of stream): end of the window the estimate is from
//   16  int64   host time (CLOCK_REALTIME ns) at publication
//   24  per block, 16 bytes: int32 shank, float32 block centre depth (um), float64 displacement (um)
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace spikeline::stream {

inline constexpr std::size_t kSpikeMessageBytes = 40;
inline constexpr std::size_t kEndMessageBytes = 24;
inline constexpr std::size_t kVelocityMessageBytes = 56;

struct SpikeMessage {
    std::uint64_t sample = 0;
    std::int32_t channel = 0;
    std::int32_t unit = -1;
    float amplitude = 0;
    std::int64_t host_time_ns = 0;
    std::int64_t latency_ns = -1;
};

struct VelocityMessage {
    std::uint64_t bin = 0;
    std::uint64_t end_sample = 0;
    double vx = 0, vy = 0;
    std::int64_t host_time_ns = 0;
    std::int64_t latency_ns = 0;
};

struct MotionMessage {
    double time_s = 0;
    std::int64_t host_time_ns = 0;
    std::vector<std::int32_t> shank;     ///< per block
    std::vector<float> depth_um;         ///< per block: its centre on the probe
    std::vector<double> displacement_um; ///< per block
};

struct EndMessage {
    std::uint64_t spikes = 0;
    std::uint64_t frames = 0;
};

inline void encode_spike_message(const SpikeMessage& m, unsigned char* out) {
    std::memcpy(out, "SPK1", 4);
    std::memcpy(out + 4, &m.channel, 4);
    std::memcpy(out + 8, &m.sample, 8);
    std::memcpy(out + 16, &m.unit, 4);
    std::memcpy(out + 20, &m.amplitude, 4);
    std::memcpy(out + 24, &m.host_time_ns, 8);
    std::memcpy(out + 32, &m.latency_ns, 8);
}

/// False when the bytes are not a spike message.
inline bool decode_spike_message(const unsigned char* bytes, std::size_t size, SpikeMessage& m) {
    if (size != kSpikeMessageBytes || std::memcmp(bytes, "SPK1", 4) != 0)
        return false;
    std::memcpy(&m.channel, bytes + 4, 4);
    std::memcpy(&m.sample, bytes + 8, 8);
    std::memcpy(&m.unit, bytes + 16, 4);
    std::memcpy(&m.amplitude, bytes + 20, 4);
    std::memcpy(&m.host_time_ns, bytes + 24, 8);
    std::memcpy(&m.latency_ns, bytes + 32, 8);
    return true;
}

inline void encode_velocity_message(const VelocityMessage& m, unsigned char* out) {
    const std::uint32_t reserved = 0;
    std::memcpy(out, "VEL1", 4);
    std::memcpy(out + 4, &reserved, 4);
    std::memcpy(out + 8, &m.bin, 8);
    std::memcpy(out + 16, &m.end_sample, 8);
    std::memcpy(out + 24, &m.vx, 8);
    std::memcpy(out + 32, &m.vy, 8);
    std::memcpy(out + 40, &m.host_time_ns, 8);
    std::memcpy(out + 48, &m.latency_ns, 8);
}

/// False when the bytes are not a velocity message.
inline bool decode_velocity_message(const unsigned char* bytes, std::size_t size, VelocityMessage& m) {
    if (size != kVelocityMessageBytes || std::memcmp(bytes, "VEL1", 4) != 0)
        return false;
    std::memcpy(&m.bin, bytes + 8, 8);
    std::memcpy(&m.end_sample, bytes + 16, 8);
    std::memcpy(&m.vx, bytes + 24, 8);
    std::memcpy(&m.vy, bytes + 32, 8);
    std::memcpy(&m.host_time_ns, bytes + 40, 8);
    std::memcpy(&m.latency_ns, bytes + 48, 8);
    return true;
}

inline void encode_end_message(const EndMessage& m, unsigned char* out) {
    const std::uint32_t reserved = 0;
    std::memcpy(out, "END1", 4);
    std::memcpy(out + 4, &reserved, 4);
    std::memcpy(out + 8, &m.spikes, 8);
    std::memcpy(out + 16, &m.frames, 8);
}

inline bool decode_end_message(const unsigned char* bytes, std::size_t size, EndMessage& m) {
    if (size != kEndMessageBytes || std::memcmp(bytes, "END1", 4) != 0)
        return false;
    std::memcpy(&m.spikes, bytes + 8, 8);
    std::memcpy(&m.frames, bytes + 16, 8);
    return true;
}

inline std::size_t motion_message_bytes(std::size_t n_blocks) {
    return 24 + 16 * n_blocks;
}

/// out must hold motion_message_bytes(m.displacement_um.size()) bytes; shank and depth_um have as many entries.
inline void encode_motion_message(const MotionMessage& m, unsigned char* out) {
    const auto n = static_cast<std::uint32_t>(m.displacement_um.size());
    std::memcpy(out, "MOT1", 4);
    std::memcpy(out + 4, &n, 4);
    std::memcpy(out + 8, &m.time_s, 8);
    std::memcpy(out + 16, &m.host_time_ns, 8);
    for (std::size_t b = 0; b < n; ++b) {
        unsigned char* block = out + 24 + 16 * b;
        std::memcpy(block, &m.shank[b], 4);
        std::memcpy(block + 4, &m.depth_um[b], 4);
        std::memcpy(block + 8, &m.displacement_um[b], 8);
    }
}

/// False when the bytes are not a motion message (or its size does not match its block count).
inline bool decode_motion_message(const unsigned char* bytes, std::size_t size, MotionMessage& m) {
    if (size < 24 || std::memcmp(bytes, "MOT1", 4) != 0)
        return false;
    std::uint32_t n = 0;
    std::memcpy(&n, bytes + 4, 4);
    if (size != motion_message_bytes(n))
        return false;
    std::memcpy(&m.time_s, bytes + 8, 8);
    std::memcpy(&m.host_time_ns, bytes + 16, 8);
    m.shank.resize(n);
    m.depth_um.resize(n);
    m.displacement_um.resize(n);
    for (std::size_t b = 0; b < n; ++b) {
        const unsigned char* block = bytes + 24 + 16 * b;
        std::memcpy(&m.shank[b], block, 4);
        std::memcpy(&m.depth_um[b], block + 4, 4);
        std::memcpy(&m.displacement_um[b], block + 8, 8);
    }
    return true;
}

} // namespace spikeline::stream
