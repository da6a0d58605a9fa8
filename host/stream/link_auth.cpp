#include "stream/link_auth.hpp"

#include <cstring>
#include <sodium.h>
#include <stdexcept>

namespace spikeline::stream {
namespace {

static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == kLinkKeyBytes);
static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12);
static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == kSealedTagBytes);

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

bool crypto_ready() {
    static const bool ready = ::sodium_init() >= 0;
    return ready;
}

void seal_link_frame(const LinkKey& key, std::uint32_t salt, std::uint64_t counter, const unsigned char* packet,
                     std::size_t size, std::vector<unsigned char>& out) {
    if (!crypto_ready())
        throw std::runtime_error("libsodium cannot be initialised");
    out.resize(kSealedHeaderBytes + size + kSealedTagBytes);
    unsigned char* p = out.data();
    put<std::uint32_t>(p, kSealedMagic);
    p[4] = kSealedVersion;
    p[5] = p[6] = p[7] = 0;
    put<std::uint32_t>(p + 8, salt);
    put<std::uint64_t>(p + 12, counter);
    unsigned long long sealed = 0;
    ::crypto_aead_chacha20poly1305_ietf_encrypt(p + kSealedHeaderBytes, &sealed, packet, size, p, kSealedHeaderBytes,
                                                nullptr, p + 8, key.data());
}

LinkSealer::LinkSealer(const LinkKey& key, std::uint64_t first_counter) : key_(key), counter_(first_counter) {
    if (!crypto_ready())
        throw std::runtime_error("libsodium cannot be initialised");
    // The salt keeps nonces apart should two runs under one key ever start at the same counter.
    salt_ = ::randombytes_random();
}

void LinkSealer::seal(const unsigned char* packet, std::size_t size, std::vector<unsigned char>& out) {
    seal_link_frame(key_, salt_, counter_++, packet, size, out);
}

ReplayWindow::Verdict ReplayWindow::check(std::uint64_t counter) const {
    if (!started_ || counter > highest_)
        return Verdict::fresh;
    if (highest_ - counter >= kWindow)
        return Verdict::stale;
    const std::uint64_t slot = counter % kWindow;
    return (seen_[slot / 64] >> (slot % 64)) & 1u ? Verdict::repeated : Verdict::fresh;
}

ReplayWindow::Verdict ReplayWindow::accept(std::uint64_t counter) {
    const Verdict verdict = check(counter);
    if (verdict != Verdict::fresh)
        return verdict;
    if (!started_ || counter - highest_ >= kWindow) {
        seen_.fill(0);
    } else {
        // The slots of the counters the window moves past are reused for the new ones: clear them.
        for (std::uint64_t c = highest_ + 1; c <= counter && c > highest_; ++c)
            seen_[(c % kWindow) / 64] &= ~(std::uint64_t{1} << (c % 64));
    }
    if (!started_ || counter > highest_)
        highest_ = counter;
    started_ = true;
    const std::uint64_t slot = counter % kWindow;
    seen_[slot / 64] |= std::uint64_t{1} << (slot % 64);
    return verdict;
}

const char* to_string(SealedCheck check) {
    switch (check) {
    case SealedCheck::ok:
        return "ok";
    case SealedCheck::not_sealed:
        return "not_sealed";
    case SealedCheck::bad_version:
        return "bad_version";
    case SealedCheck::too_short:
        return "too_short";
    case SealedCheck::forged:
        return "forged";
    case SealedCheck::repeated:
        return "repeated";
    case SealedCheck::stale:
        return "stale";
    }
    return "unknown";
}

LinkOpener::LinkOpener(const LinkKey& key) : key_(key) {
    if (!crypto_ready())
        throw std::runtime_error("libsodium cannot be initialised");
}

SealedCheck LinkOpener::open(const unsigned char* bytes, std::size_t size, const unsigned char*& packet,
                             std::size_t& size_out) {
    ++counters_.frames;
    if (size < 4 || get<std::uint32_t>(bytes) != kSealedMagic) {
        ++counters_.not_sealed;
        return SealedCheck::not_sealed;
    }
    if (size < kSealedHeaderBytes + kSealedTagBytes) {
        ++counters_.too_short;
        return SealedCheck::too_short;
    }
    if (bytes[4] != kSealedVersion || bytes[5] != 0 || bytes[6] != 0 || bytes[7] != 0) {
        ++counters_.bad_version;
        return SealedCheck::bad_version;
    }
    const std::uint64_t counter = get<std::uint64_t>(bytes + 12);
    // The window sees a counter only once its tag verifies: a forgery must not move it (nor count as a replay).
    const std::size_t sealed_bytes = size - kSealedHeaderBytes;
    plain_.resize(sealed_bytes - kSealedTagBytes);
    unsigned long long opened = 0;
    if (::crypto_aead_chacha20poly1305_ietf_decrypt(plain_.data(), &opened, nullptr, bytes + kSealedHeaderBytes,
                                                    sealed_bytes, bytes, kSealedHeaderBytes, bytes + 8,
                                                    key_.data()) != 0) {
        ++counters_.forged;
        return SealedCheck::forged;
    }
    switch (window_.accept(counter)) {
    case ReplayWindow::Verdict::repeated:
        ++counters_.repeated;
        return SealedCheck::repeated;
    case ReplayWindow::Verdict::stale:
        ++counters_.stale;
        return SealedCheck::stale;
    case ReplayWindow::Verdict::fresh:
        break;
    }
    ++counters_.authentic;
    packet = plain_.data();
    size_out = static_cast<std::size_t>(opened);
    return SealedCheck::ok;
}

} // namespace spikeline::stream
