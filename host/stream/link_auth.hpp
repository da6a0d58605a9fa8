#pragma once
// Authenticated, encrypted implant link frames ("sealed frames"): a link packet (link_format.hpp) encrypted and
// authenticated with ChaCha20-Poly1305 (IETF, libsodium) under a pre-shared 256-bit key. Layout in docs/FORMATS.md
// (section 9.1), little-endian:
//
//   offset  size  field
//        0     4  magic "SPKA" (0x414B5053 read as a little-endian uint32)
//        4     1  version (1)
//        5     3  reserved (0)
//        8     4  session salt (random per sender run)
//       12     8  frame counter (+1 per frame; a sender starts at its wall clock in ns, so a restarted sender
//                 continues above what it sent before)
//       20     N  ciphertext of the link packet (header, payload and CRC, N bytes)
//     20+N    16  Poly1305 tag
//
// The nonce is bytes 8..19 (salt, counter); bytes 0..19 are the associated data. A receiver opens a frame only if the
// tag verifies, then checks the counter against a sliding replay window before anything reaches the link decoder.
// Standard library and libsodium only, so that the fuzzer builds it with clang.
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace spikeline::stream {

inline constexpr std::uint32_t kSealedMagic = 0x414B5053u;
inline constexpr std::uint8_t kSealedVersion = 1;
inline constexpr std::size_t kSealedHeaderBytes = 20;
inline constexpr std::size_t kSealedTagBytes = 16;
/// Bytes a sealed frame adds to the link packet it carries.
inline constexpr std::size_t kSealedOverheadBytes = kSealedHeaderBytes + kSealedTagBytes;
inline constexpr std::size_t kLinkKeyBytes = 32;

using LinkKey = std::array<unsigned char, kLinkKeyBytes>;

/// Initialises libsodium (once per process, thread-safe); false when it cannot be used.
bool crypto_ready();

/// Seals link packets for one sender run: a random session salt and a counter starting at first_counter.
class LinkSealer {
public:
    LinkSealer(const LinkKey& key, std::uint64_t first_counter);
    /// Seals packet (a whole link packet) into out (resized); advances the counter.
    void seal(const unsigned char* packet, std::size_t size, std::vector<unsigned char>& out);
    std::uint64_t next_counter() const { return counter_; }

private:
    LinkKey key_;
    std::uint32_t salt_ = 0;
    std::uint64_t counter_ = 0;
};

/// Seals one packet with an explicit salt and counter (tests, fuzzer seeds).
void seal_link_frame(const LinkKey& key, std::uint32_t salt, std::uint64_t counter, const unsigned char* packet,
                     std::size_t size, std::vector<unsigned char>& out);

/// Counters accepted within the last kWindow below the highest one are each accepted once; older ones are stale.
class ReplayWindow {
public:
    static constexpr std::uint64_t kWindow = 4096;
    enum class Verdict { fresh, repeated, stale };
    /// What accept() would say, without recording anything.
    Verdict check(std::uint64_t counter) const;
    /// check(), and on fresh records the counter.
    Verdict accept(std::uint64_t counter);
    std::uint64_t highest() const { return highest_; }

private:
    static constexpr std::size_t kWords = kWindow / 64;
    bool started_ = false;
    std::uint64_t highest_ = 0;
    std::array<std::uint64_t, kWords> seen_{}; ///< bit (c mod kWindow) set: counter c within the window was accepted
};

/// Why a datagram was refused by the secure receiver (or ok).
enum class SealedCheck { ok, not_sealed, bad_version, too_short, forged, repeated, stale };
const char* to_string(SealedCheck check);

struct SealedCounters {
    std::uint64_t frames = 0;      ///< datagrams handed to open()
    std::uint64_t authentic = 0;   ///< opened and fresh: handed to the link decoder
    std::uint64_t not_sealed = 0;  ///< no sealed-frame magic (e.g. a plain link packet)
    std::uint64_t bad_version = 0; ///< the magic, but another version or reserved bytes set
    std::uint64_t too_short = 0;   ///< shorter than header + tag
    std::uint64_t forged = 0;      ///< the tag does not verify: another key, or altered bytes
    std::uint64_t repeated = 0;    ///< authentic, but its counter was accepted before
    std::uint64_t stale = 0;       ///< authentic, but older than the replay window
    std::uint64_t rejected() const { return not_sealed + bad_version + too_short + forged + repeated + stale; }
};

/// Opens sealed frames under one key, rejecting forged, repeated and stale ones before they are decoded.
class LinkOpener {
public:
    explicit LinkOpener(const LinkKey& key);
    /// On ok, packet/size point at the decrypted link packet (valid until the next call).
    SealedCheck open(const unsigned char* bytes, std::size_t size, const unsigned char*& packet, std::size_t& size_out);
    const SealedCounters& counters() const { return counters_; }

private:
    LinkKey key_;
    ReplayWindow window_;
    SealedCounters counters_;
    std::vector<unsigned char> plain_;
};

} // namespace spikeline::stream
