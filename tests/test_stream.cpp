// Live acquisition: CRC-32C, link packets, the link decoder (valid, corrupt, duplicate, reordered, dropped and
// malformed packets, deterministic mutation fuzzing), and the real binaries end to end on loopback: replay with loss
// and reordering -> stream -> ZeroMQ subscriber, clean shutdown by SIGINT and SIGTERM, what a full disk (a file size
// limit) and SIGKILL + `spikeline recover` keep, stdin and Open Ephys sources, online decoding (stream --decoder)
// against offline decoding of the same spikes.
#include "decode/pipeline.hpp"
#include "decode/spike_input.hpp"
#include "fuzz/link_decoder_fuzz.hpp"
#include "io/npy.hpp"
#include "io/spikeglx.hpp"
#include "open_ephys_recording.hpp"
#include "pipeline/calibration_window.hpp"
#include "pipeline/spike_reservoir.hpp"
#include "probe/probe.hpp"
#include "stream/crc32c.hpp"
#include "stream/gap_fill.hpp"
#include "stream/latency.hpp"
#include "stream/link_decoder.hpp"
#include "stream/link_format.hpp"
#include "stream/spike_message.hpp"
#include "stream/udp.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sched.h>
#include <sstream>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#ifndef SPIKELINE_CLI
#error "SPIKELINE_CLI must be defined as the path of the spikeline binary"
#endif

namespace spikeline::stream {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------------------------
// CRC-32C and packets

// A run that falls behind gets its real percentiles (100 us bins up to 10 s), not the maximum for every one.
TEST(LatencyHistogram, PercentilesUpToTenSeconds) {
    stream::LatencyHistogram histogram;
    EXPECT_EQ(histogram.percentile_us(0.5), 0.0);
    for (int i = 0; i < 50; ++i)
        histogram.add(40'500); // 40.5 us: the 1 us bin up to 41 us
    for (int i = 0; i < 49; ++i)
        histogram.add(2'345'678'000); // 2.35 s: the 100 us bin up to 2345.7 ms
    histogram.add(30'000'000'000);    // 30 s: beyond the histogram
    EXPECT_EQ(histogram.count(), 100u);
    EXPECT_EQ(histogram.percentile_us(0.5), 41.0);
    EXPECT_EQ(histogram.percentile_us(0.9), 2'345'700.0);
    EXPECT_EQ(histogram.percentile_us(0.99), 2'345'700.0);
    EXPECT_EQ(histogram.percentile_us(1.0), 30'000'000.0);
    EXPECT_EQ(histogram.max_us(), 30'000'000.0);
    // A percentile never exceeds the maximum, though its bin's upper edge does.
    stream::LatencyHistogram one;
    one.add(5'200);
    EXPECT_EQ(one.percentile_us(0.5), 5.2);
}

TEST(Crc32c, StandardCheckValue) {
    const char* text = "123456789";
    EXPECT_EQ(crc32c(text, 9), 0xE3069283u);
    EXPECT_EQ(crc32c_portable(text, 9), 0xE3069283u);
    EXPECT_EQ(crc32c(text, 0), 0u);
}

TEST(Crc32c, AcceleratedEqualsPortableAndContinues) {
    std::mt19937 random(7);
    std::vector<unsigned char> bytes(5000);
    for (auto& b : bytes)
        b = static_cast<unsigned char>(random());
    for (std::size_t n : {1u, 7u, 8u, 9u, 63u, 1000u, 4999u, 5000u}) {
        EXPECT_EQ(crc32c(bytes.data(), n), crc32c_portable(bytes.data(), n)) << n;
        // A running CRC over two pieces equals the CRC of the whole.
        EXPECT_EQ(crc32c(bytes.data() + n / 2, n - n / 2, crc32c(bytes.data(), n / 2)), crc32c(bytes.data(), n));
    }
}

constexpr int kTestChannels = 3;

std::vector<unsigned char> make_packet(std::uint64_t sequence, std::uint64_t first_sample, std::uint16_t samples,
                                       std::uint32_t stream_id = 9, int channels = kTestChannels) {
    std::vector<std::int16_t> frames(static_cast<std::size_t>(samples * channels));
    for (std::size_t i = 0; i < frames.size(); ++i) // value = sample index * 10 + channel, to check placement
        frames[i] = static_cast<std::int16_t>((first_sample + i / static_cast<std::size_t>(channels)) * 10 +
                                              i % static_cast<std::size_t>(channels));
    LinkHeader header;
    header.stream_id = stream_id;
    header.n_channels = static_cast<std::uint16_t>(channels);
    header.samples_per_packet = samples;
    header.sequence = sequence;
    header.first_sample = first_sample;
    std::vector<unsigned char> out;
    encode_link_packet(header, frames.data(), out);
    return out;
}

TEST(LinkFormat, RoundTripAndLayout) {
    const auto packet = make_packet(5, 1000, 4);
    ASSERT_EQ(packet.size(), link_packet_bytes(kTestChannels, 4));
    EXPECT_EQ(std::string(packet.begin(), packet.begin() + 4), "SPKL");
    LinkHeader header;
    const unsigned char* payload = nullptr;
    ASSERT_EQ(parse_link_packet(packet.data(), packet.size(), header, payload), LinkCheck::ok);
    EXPECT_EQ(header.stream_id, 9u);
    EXPECT_EQ(header.n_channels, kTestChannels);
    EXPECT_EQ(header.samples_per_packet, 4);
    EXPECT_EQ(header.sequence, 5u);
    EXPECT_EQ(header.first_sample, 1000u);
    std::int16_t second_frame_channel_2 = 0;
    std::memcpy(&second_frame_channel_2, payload + 2 * (kTestChannels + 2), 2);
    EXPECT_EQ(second_frame_channel_2, 1001 * 10 + 2);
}

TEST(LinkFormat, RejectsEveryKindOfDamage) {
    const auto good = make_packet(0, 0, 4);
    LinkHeader header;
    const unsigned char* payload = nullptr;
    EXPECT_EQ(parse_link_packet(good.data(), 10, header, payload), LinkCheck::too_short);
    auto damaged = good;
    damaged[0] ^= 1;
    EXPECT_EQ(parse_link_packet(damaged.data(), damaged.size(), header, payload), LinkCheck::bad_magic);
    damaged = good;
    damaged[4] = 2;
    EXPECT_EQ(parse_link_packet(damaged.data(), damaged.size(), header, payload), LinkCheck::bad_version);
    EXPECT_EQ(parse_link_packet(good.data(), good.size() - 2, header, payload), LinkCheck::bad_length);
    damaged = good;
    damaged[14] = 5; // samples per packet no longer matches the length
    EXPECT_EQ(parse_link_packet(damaged.data(), damaged.size(), header, payload), LinkCheck::bad_length);
    for (std::size_t byte : {8u, 17u, 40u, 55u}) { // header fields and payload: only the CRC notices
        damaged = good;
        damaged[byte] ^= 0x10;
        EXPECT_EQ(parse_link_packet(damaged.data(), damaged.size(), header, payload), LinkCheck::bad_crc) << byte;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Decoder

/// Collects the decoder's output as one frame array, with the zero-filled ranges.
struct Collected {
    std::vector<std::int16_t> frames;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps;
    std::vector<std::int64_t> arrivals;

    LinkDecoder::Sink sink() {
        return [this](const DecodedFrames& out) {
            EXPECT_EQ(out.first_frame * kTestChannels, frames.size()) << "frames must be contiguous";
            const std::size_t values = out.n_frames * kTestChannels;
            const std::size_t at = frames.size();
            frames.resize(at + values, 0);
            if (out.data)
                std::memcpy(frames.data() + at, out.data, values * 2);
            else
                gaps.emplace_back(out.first_frame, out.n_frames);
            arrivals.push_back(out.arrival_ns);
        };
    }
    /// True when frame f holds the packet pattern (sample index base + f).
    bool frame_is_original(std::uint64_t f, std::uint64_t base) const {
        for (int c = 0; c < kTestChannels; ++c)
            if (frames[f * kTestChannels + static_cast<std::size_t>(c)] !=
                static_cast<std::int16_t>((base + f) * 10 + static_cast<std::uint64_t>(c)))
                return false;
        return true;
    }
};

LinkDecoderOptions test_options() {
    LinkDecoderOptions options;
    options.n_channels = kTestChannels;
    options.reorder_window_frames = 12;      // three 4-frame packets
    options.adaptive_reorder_window = false; // the window's own rules; adaptation has its test
    options.suspect_jump_frames = 100;
    options.max_hold_ns = 5'000'000;
    return options;
}

void push(LinkDecoder& decoder, const std::vector<unsigned char>& packet, std::int64_t now = 0) {
    decoder.push(packet.data(), packet.size(), now);
}

TEST(LinkDecoder, InOrderPacketsPassThroughWithTheirArrival) {
    Collected out;
    LinkDecoder decoder(test_options(), out.sink());
    for (std::uint64_t k = 0; k < 5; ++k)
        push(decoder, make_packet(k, 100 + 4 * k, 4), static_cast<std::int64_t>(k) * 1000);
    decoder.finish(9999);
    ASSERT_EQ(out.frames.size(), 20u * kTestChannels);
    for (std::uint64_t f = 0; f < 20; ++f)
        EXPECT_TRUE(out.frame_is_original(f, 100)) << f;
    EXPECT_EQ(decoder.base_sample(), 100u);
    EXPECT_EQ(out.arrivals, (std::vector<std::int64_t>{0, 1000, 2000, 3000, 4000}));
    EXPECT_EQ(decoder.counters().accepted, 5u);
    EXPECT_EQ(decoder.counters().gaps, 0u);
}

TEST(LinkDecoder, AdaptiveWindowFillsALossAtOnceUntilTheLinkReordersThenWaitsAsLongAsItReorders) {
    LinkDecoderOptions options = test_options();
    options.adaptive_reorder_window = true;
    options.reorder_decay_frames = 40;
    Collected out;
    LinkDecoder decoder(options, out.sink());
    for (std::uint64_t k : {0, 1, 2, 3})
        push(decoder, make_packet(k, 4 * k, 4));
    EXPECT_EQ(decoder.reorder_window(4), 4u); // one packet: nothing reorders yet
    push(decoder, make_packet(5, 20, 4));     // packet 4 is missing: a gap at once, packet 5 delivered
    EXPECT_EQ(decoder.counters().gaps, 1u);
    EXPECT_EQ(out.frames.size(), 24u * kTestChannels);
    push(decoder, make_packet(4, 16, 4)); // it was only late: the link reorders one packet deep
    EXPECT_EQ(decoder.counters().late, 1u);
    EXPECT_EQ(decoder.reorder_window(4), 8u);
    for (std::uint64_t k : {7, 6}) // the next swap of the same depth is restored
        push(decoder, make_packet(k, 4 * k, 4));
    EXPECT_EQ(decoder.counters().gaps, 1u);
    EXPECT_EQ(decoder.counters().reordered, 2u); // packet 5 (held while 4 became a gap) and packet 6
    EXPECT_EQ(decoder.counters().largest_reorder_window, 8u);
    for (std::uint64_t k = 8; k < 20; ++k) // 48 frames without reordering: the window halves
        push(decoder, make_packet(k, 4 * k, 4));
    EXPECT_EQ(decoder.reorder_window(4), 4u);
    decoder.finish(0);
    for (std::uint64_t f = 0; f < 80; ++f)
        EXPECT_EQ(out.frame_is_original(f, 0), f < 16 || f >= 20) << f;
}

TEST(LinkDecoder, DuplicatesAreDroppedAndCounted) {
    Collected out;
    LinkDecoder decoder(test_options(), out.sink());
    push(decoder, make_packet(0, 0, 4));
    push(decoder, make_packet(0, 0, 4));
    push(decoder, make_packet(1, 4, 4));
    push(decoder, make_packet(1, 4, 4));
    push(decoder, make_packet(3, 12, 4)); // held (packet 2 missing) ...
    push(decoder, make_packet(3, 12, 4)); // ... and its duplicate while held
    push(decoder, make_packet(2, 8, 4));
    decoder.finish(0);
    EXPECT_EQ(decoder.counters().duplicates, 3u);
    EXPECT_EQ(decoder.counters().reordered, 1u);
    ASSERT_EQ(out.frames.size(), 16u * kTestChannels);
    for (std::uint64_t f = 0; f < 16; ++f)
        EXPECT_TRUE(out.frame_is_original(f, 0));
}

TEST(LinkDecoder, ReorderedPacketsWithinTheWindowAreRestored) {
    Collected out;
    LinkDecoder decoder(test_options(), out.sink());
    for (std::uint64_t k : {0, 2, 1, 3, 5, 4}) // two swaps, each one packet late
        push(decoder, make_packet(k, 4 * k, 4));
    decoder.finish(0);
    EXPECT_EQ(decoder.counters().gaps, 0u);
    EXPECT_EQ(decoder.counters().reordered, 2u);
    ASSERT_EQ(out.frames.size(), 24u * kTestChannels);
    for (std::uint64_t f = 0; f < 24; ++f)
        EXPECT_TRUE(out.frame_is_original(f, 0)) << f;
}

TEST(LinkDecoder, DroppedPacketBecomesAZeroGapWithExactTiming) {
    Collected out;
    LinkDecoder decoder(test_options(), out.sink());
    for (std::uint64_t k = 0; k < 10; ++k)
        if (k != 3)
            push(decoder, make_packet(k, 4 * k, 4), static_cast<std::int64_t>(k));
    // Packet 3 arrives after the window gave up on it: late, not a duplicate, and the stream is not disturbed.
    push(decoder, make_packet(3, 12, 4));
    decoder.finish(0);
    ASSERT_EQ(out.gaps.size(), 1u);
    EXPECT_EQ(out.gaps[0], (std::pair<std::uint64_t, std::uint64_t>{12, 4}));
    EXPECT_EQ(decoder.counters().gap_frames, 4u);
    EXPECT_EQ(decoder.counters().late, 1u);
    ASSERT_EQ(out.frames.size(), 40u * kTestChannels);
    for (std::uint64_t f = 0; f < 40; ++f) {
        if (f >= 12 && f < 16)
            for (int c = 0; c < kTestChannels; ++c)
                EXPECT_EQ(out.frames[f * kTestChannels + static_cast<std::size_t>(c)], 0);
        else
            EXPECT_TRUE(out.frame_is_original(f, 0)) << f;
    }
}

TEST(LinkDecoder, ExpireReleasesHeldPacketsAfterTheHoldTime) {
    Collected out;
    LinkDecoder decoder(test_options(), out.sink());
    for (std::uint64_t k = 0; k < 4; ++k) // enough to lock
        push(decoder, make_packet(k, 4 * k, 4), 0);
    push(decoder, make_packet(5, 20, 4), 1'000'000); // waits for packet 4
    decoder.expire(3'000'000);
    EXPECT_EQ(decoder.held_packets(), 1u);
    decoder.expire(7'000'000);
    EXPECT_EQ(decoder.held_packets(), 0u);
    EXPECT_EQ(out.frames.size(), 24u * kTestChannels);
    EXPECT_EQ(decoder.counters().gap_frames, 4u);
}

TEST(LinkDecoder, MalformedAndForeignPacketsAreCountedNotFatal) {
    Collected out;
    LinkDecoder decoder(test_options(), out.sink());
    push(decoder, make_packet(0, 0, 4));
    auto corrupt = make_packet(1, 4, 4);
    corrupt[40] ^= 1;
    push(decoder, corrupt);
    push(decoder, std::vector<unsigned char>{1, 2, 3});
    push(decoder, std::vector<unsigned char>(100, 0xFF));
    push(decoder, make_packet(1, 4, 4, 9, kTestChannels + 1)); // wrong channel count
    push(decoder, make_packet(1, 4, 4, 77));                   // another stream
    push(decoder, make_packet(1, 1u << 20, 4));                // a clock jump with no follow-up
    push(decoder, make_packet(1, 1ull << 63, 4));              // sample clock beyond 2^63
    push(decoder, make_packet(1, 4, 4));
    decoder.finish(0);
    const LinkCounters& c = decoder.counters();
    EXPECT_EQ(c.bad_crc, 1u);
    EXPECT_EQ(c.too_short, 1u);
    EXPECT_EQ(c.bad_magic, 1u);
    EXPECT_EQ(c.malformed(), 3u);
    EXPECT_EQ(c.wrong_channels, 1u);
    EXPECT_EQ(c.wrong_stream, 1u);
    EXPECT_EQ(c.out_of_range, 1u);
    EXPECT_EQ(c.clock_outliers, 1u);
    EXPECT_EQ(c.accepted, 2u);
    EXPECT_EQ(c.datagrams, 9u);
    ASSERT_EQ(out.frames.size(), 8u * kTestChannels);
    for (std::uint64_t f = 0; f < 8; ++f)
        EXPECT_TRUE(out.frame_is_original(f, 0));
}

TEST(LinkDecoder, OverlappingPacketContributesOnlyItsNewFrames) {
    Collected out;
    LinkDecoder decoder(test_options(), out.sink());
    push(decoder, make_packet(0, 0, 4));
    push(decoder, make_packet(1, 2, 4)); // frames 2..5: 4 and 5 are new
    decoder.finish(0);
    ASSERT_EQ(out.frames.size(), 6u * kTestChannels);
    for (std::uint64_t f = 0; f < 6; ++f)
        EXPECT_TRUE(out.frame_is_original(f, 0));
}

// Clock jumps, at the scale of a real link: 30-frame packets (1 ms at 30 kHz), a 90-frame reorder window and a 1 s
// suspect bound.
LinkDecoderOptions link_scale_options() {
    LinkDecoderOptions options;
    options.n_channels = kTestChannels;
    options.reorder_window_frames = 90;
    options.adaptive_reorder_window = false; // these swaps must be restored from the first one on
    options.suspect_jump_frames = 30000;
    return options;
}

constexpr std::uint64_t kSixtySeconds = 60 * 30000;

/// Runs a decoder over packets (sequence, first sample), with one swap to exercise the reorder window too.
Collected decode_packets(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& packets, LinkCounters& counters,
                         const LinkDecoderOptions& options = link_scale_options()) {
    Collected out;
    LinkDecoder decoder(options, out.sink());
    std::int64_t now = 0;
    for (const auto& [sequence, first] : packets)
        push(decoder, make_packet(sequence, first, 30), now += 1'000'000);
    decoder.finish(now);
    counters = decoder.counters();
    return out;
}

TEST(LinkDecoder, OneRoguePacketAheadOrBehindChangesNothingElse) {
    const std::uint64_t base = 5'000'000;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> clean;
    for (std::uint64_t k = 0; k < 300; ++k)
        clean.emplace_back(k, base + 30 * k);
    std::swap(clean[40], clean[41]);
    auto rogue = clean;
    rogue.insert(rogue.begin() + 100, {100, base + 30 * 100 + kSixtySeconds}); // a valid packet 60 s ahead
    rogue.insert(rogue.begin() + 200, {200, base + 30 * 200 - kSixtySeconds}); // and one 60 s behind
    rogue.insert(rogue.begin() + 250, {250, base + 30 * 250 + 15000});         // and one 0.5 s ahead, within the bound
    LinkCounters clean_counters, rogue_counters;
    const Collected expected = decode_packets(clean, clean_counters);
    const Collected got = decode_packets(rogue, rogue_counters);

    ASSERT_EQ(expected.frames.size(), 9000u * kTestChannels);
    EXPECT_EQ(got.frames, expected.frames); // byte-identical: every real frame, nothing zero-filled
    EXPECT_TRUE(got.gaps.empty());
    EXPECT_EQ(rogue_counters.gap_frames, 0u);
    EXPECT_EQ(rogue_counters.accepted, clean_counters.accepted);
    EXPECT_EQ(rogue_counters.reordered, clean_counters.reordered);
    EXPECT_EQ(rogue_counters.late + rogue_counters.duplicates, 0u);
    EXPECT_EQ(rogue_counters.clock_outliers, 3u);
    EXPECT_EQ(rogue_counters.resyncs, 0u);
}

TEST(LinkDecoder, RoguePacketsBeforeLockDoNotSetTheClock) {
    const std::uint64_t base = 5'000'000;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> clean, rogue;
    for (std::uint64_t k = 0; k < 20; ++k)
        clean.emplace_back(k, base + 30 * k);
    rogue = clean;
    rogue.insert(rogue.begin(), {0, base + kSixtySeconds}); // the very first packet lies
    rogue.insert(rogue.begin() + 2, {1, base - kSixtySeconds});
    LinkCounters clean_counters, rogue_counters;
    const Collected expected = decode_packets(clean, clean_counters);
    const Collected got = decode_packets(rogue, rogue_counters);
    EXPECT_EQ(got.frames, expected.frames);
    EXPECT_EQ(rogue_counters.clock_outliers, 2u);
    EXPECT_EQ(rogue_counters.gap_frames, 0u);
}

/// Checks frames against the packet pattern: frame f holds link sample clock(f).
template <class Clock> void expect_frames_follow(const Collected& out, std::uint64_t n_frames, Clock clock) {
    ASSERT_EQ(out.frames.size(), n_frames * kTestChannels);
    std::size_t mismatches = 0;
    for (std::uint64_t f = 0; f < n_frames; ++f)
        for (int c = 0; c < kTestChannels; ++c)
            mismatches += out.frames[f * kTestChannels + static_cast<std::size_t>(c)] !=
                          static_cast<std::int16_t>(clock(f) * 10 + static_cast<std::uint64_t>(c));
    EXPECT_EQ(mismatches, 0u);
}

TEST(LinkDecoder, APacketEarlyByMoreThanTheWindowWaitsForTheOnesBeforeIt) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> packets;
    for (std::uint64_t k : {0, 1, 2, 3, 4, 9, 5, 6, 7, 8, 10, 11}) // packet 9 overtakes four: 120 frames > the window
        packets.emplace_back(k, 30 * k);
    LinkCounters counters;
    const Collected out = decode_packets(packets, counters);
    EXPECT_TRUE(out.gaps.empty());
    EXPECT_EQ(counters.late, 0u);
    EXPECT_EQ(counters.clock_outliers, 0u);
    EXPECT_EQ(counters.accepted, 12u);
    expect_frames_follow(out, 360, [](std::uint64_t f) { return f; });
}

TEST(LinkDecoder, AnOutageLongerThanTheWindowIsZeroFilledOnceTheNextPacketConfirmsIt) {
    Collected out;
    LinkDecoder decoder(link_scale_options(), out.sink());
    for (std::uint64_t k = 0; k < 20; ++k)
        push(decoder, make_packet(k, 30 * k, 30), static_cast<std::int64_t>(k));
    push(decoder, make_packet(30, 900, 30), 100); // ten packets lost: 300 frames, beyond the 90-frame window
    EXPECT_EQ(out.frames.size(), 600u * kTestChannels) << "one packet alone does not fill a hole";
    push(decoder, make_packet(31, 930, 30), 200);
    ASSERT_EQ(out.gaps.size(), 1u);
    EXPECT_EQ(out.gaps[0], (std::pair<std::uint64_t, std::uint64_t>{600, 300}));
    EXPECT_EQ(out.arrivals.back(), 200);
    // A packet after a second outage, with nothing after it: the hold time confirms it.
    push(decoder, make_packet(40, 1200, 30), 300);
    decoder.expire(300 + link_scale_options().max_hold_ns);
    EXPECT_EQ(out.gaps.size(), 1u);
    decoder.expire(301 + link_scale_options().max_hold_ns);
    ASSERT_EQ(out.gaps.size(), 2u);
    EXPECT_EQ(out.gaps[1], (std::pair<std::uint64_t, std::uint64_t>{960, 240}));
    decoder.finish(1'000'000'000);
    EXPECT_EQ(decoder.counters().clock_outliers, 0u);
    ASSERT_EQ(out.frames.size(), 1230u * kTestChannels);
    for (std::uint64_t f = 0; f < 1230; ++f) {
        const bool lost = (f >= 600 && f < 900) || (f >= 960 && f < 1200);
        EXPECT_TRUE(lost || out.frame_is_original(f, 0)) << f;
    }
}

TEST(LinkDecoder, GivingUpOnAHoleLetsAnEarlyPacketTakeItsPlace) {
    Collected out;
    LinkDecoder decoder(link_scale_options(), out.sink());
    const std::int64_t hold = link_scale_options().max_hold_ns;
    for (std::uint64_t k : {0, 1, 2, 3, 4, 6, 7})
        push(decoder, make_packet(k, 30 * k, 30), 0);
    push(decoder, make_packet(9, 270, 30), hold); // 5 lost; 9 starts 120 frames beyond the hole: a suspect
    EXPECT_EQ(decoder.held_packets(), 2u);
    EXPECT_EQ(decoder.suspect_packets(), 1u);
    decoder.expire(hold + 1); // packet 5 is given up: 9 now fits the window and waits for 8
    EXPECT_EQ(decoder.suspect_packets(), 0u);
    EXPECT_EQ(decoder.held_packets(), 1u);
    push(decoder, make_packet(8, 240, 30), 0);
    decoder.finish(0);
    EXPECT_EQ(decoder.counters().clock_outliers, 0u);
    EXPECT_EQ(decoder.counters().gap_frames, 30u);
    ASSERT_EQ(out.frames.size(), 300u * kTestChannels);
    for (std::uint64_t f = 0; f < 300; ++f)
        EXPECT_TRUE((f >= 150 && f < 180) || out.frame_is_original(f, 0)) << f;
}

TEST(LinkDecoder, SenderRestartingAtZeroIsAResyncWithoutZeroFill) {
    const std::uint64_t base = 1'000'000;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> packets;
    for (std::uint64_t k = 0; k < 99; ++k)
        packets.emplace_back(k, base + 30 * k);
    packets.emplace_back(0, 0);               // the sender restarts at sample 0 ...
    packets.emplace_back(99, base + 30 * 99); // ... while the old clock's last packet is still in flight
    for (std::uint64_t k = 1; k < 100; ++k)
        packets.emplace_back(k, 30 * k);
    LinkCounters counters;
    const Collected out = decode_packets(packets, counters);

    EXPECT_EQ(counters.resyncs, 1u);
    ASSERT_EQ(counters.discontinuities.size(), 1u);
    EXPECT_EQ(counters.discontinuities[0].frame, 3000u);
    EXPECT_EQ(counters.discontinuities[0].old_sample, base + 3000);
    EXPECT_EQ(counters.discontinuities[0].new_sample, 0u);
    EXPECT_EQ(counters.gap_frames, 0u);
    EXPECT_EQ(counters.clock_outliers, 0u);
    EXPECT_EQ(counters.accepted, 200u);
    expect_frames_follow(out, 6000, [&](std::uint64_t f) { return f < 3000 ? base + f : f - 3000; });
}

TEST(LinkDecoder, SustainedJumpTenMinutesAheadResyncsAfterTheOldClocksLastPackets) {
    const std::uint64_t jump = 10 * kSixtySeconds;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> packets;
    for (std::uint64_t k = 0; k < 50; ++k)
        if (k != 48) // lost: the old clock's held packet 49 is delivered after a gap, before the new clock
            packets.emplace_back(k, 30 * k);
    for (std::uint64_t k = 50; k < 150; ++k)
        packets.emplace_back(k, jump + 30 * k);
    LinkCounters counters;
    const Collected out = decode_packets(packets, counters);

    EXPECT_EQ(counters.resyncs, 1u);
    ASSERT_EQ(counters.discontinuities.size(), 1u);
    EXPECT_EQ(counters.discontinuities[0].frame, 1500u);
    EXPECT_EQ(counters.discontinuities[0].new_sample, jump + 1500);
    EXPECT_EQ(counters.gap_frames, 30u); // the lost packet only, not ten minutes
    ASSERT_EQ(out.gaps.size(), 1u);
    EXPECT_EQ(out.gaps[0], (std::pair<std::uint64_t, std::uint64_t>{1440, 30}));
    ASSERT_EQ(out.frames.size(), 4500u * kTestChannels);
    for (std::uint64_t f = 0; f < 4500; ++f) {
        const bool lost = f >= 1440 && f < 1470;
        EXPECT_TRUE(lost || out.frame_is_original(f, f < 1500 ? 0 : jump)) << f;
    }
}

TEST(LinkDecoder, AStrayStreamIdBeforeTheRealStreamDoesNotLockItOut) {
    Collected out;
    LinkDecoder decoder(test_options(), out.sink());
    push(decoder, make_packet(0, 500, 4, 7)); // a stray sender speaks first
    for (std::uint32_t stray = 100; stray < 120; ++stray)
        push(decoder, make_packet(0, 0, 4, stray)); // and twenty more, more than the candidate table holds
    for (std::uint64_t k = 0; k < 10; ++k) {
        push(decoder, make_packet(k, 4 * k, 4, 1));
        if (k == 5)
            push(decoder, make_packet(1, 504, 4, 7));
    }
    decoder.finish(0);
    const LinkCounters& c = decoder.counters();
    EXPECT_EQ(decoder.stream_id(), 1u);
    EXPECT_EQ(decoder.base_sample(), 0u);
    ASSERT_EQ(out.frames.size(), 40u * kTestChannels);
    for (std::uint64_t f = 0; f < 40; ++f)
        EXPECT_TRUE(out.frame_is_original(f, 0)) << f;
    EXPECT_EQ(c.wrong_stream + c.dropped_before_lock, 22u);
    EXPECT_GT(c.dropped_before_lock, 0u); // the candidate table stayed bounded
    EXPECT_LE(c.other_stream_ids.size(), LinkCounters::kMaxStreamIds);
    std::uint64_t id7 = 0;
    for (const StreamIdCount& entry : c.other_stream_ids)
        id7 += entry.stream_id == 7 ? entry.packets : 0;
    EXPECT_EQ(id7, 1u); // the later one; the first was pushed out of the table by the twenty newer strays
}

TEST(LinkDecoder, WithAStreamIdOtherSendersNeverLock) {
    LinkDecoderOptions options = test_options();
    options.stream_id = 1;
    Collected out;
    LinkDecoder decoder(options, out.sink());
    for (std::uint64_t k = 0; k < 6; ++k) // consistent enough to lock, were the id not fixed
        push(decoder, make_packet(k, 1000 + 4 * k, 4, 7));
    for (std::uint64_t k = 0; k < 5; ++k)
        push(decoder, make_packet(k, 4 * k, 4, 1));
    decoder.finish(0);
    const LinkCounters& c = decoder.counters();
    EXPECT_EQ(decoder.stream_id(), 1u);
    EXPECT_EQ(c.wrong_stream, 6u);
    ASSERT_EQ(c.other_stream_ids.size(), 1u);
    EXPECT_EQ(c.other_stream_ids[0].stream_id, 7u);
    EXPECT_EQ(c.other_stream_ids[0].packets, 6u);
    ASSERT_EQ(out.frames.size(), 20u * kTestChannels);
    for (std::uint64_t f = 0; f < 20; ++f)
        EXPECT_TRUE(out.frame_is_original(f, 0)) << f;
}

TEST(UdpSocket, ASecondListenerOnThePortFailsSayingAnotherProcessListens) {
    std::optional<UdpSocket> first;
    UdpAddress address;
    for (int offset = 0; !first && offset < 50; ++offset) { // a free port near this process's own range
        address = parse_udp_address("udp://127.0.0.1:" + std::to_string(20000 + ::getpid() % 20000 + 7 + offset));
        try {
            first.emplace(UdpSocket::bind_receiver(address, 1 << 16));
        } catch (const InputError&) {
        }
    }
    ASSERT_TRUE(first.has_value());
    try {
        UdpSocket::bind_receiver(address, 1 << 16);
        FAIL() << "a second listener bound the same port";
    } catch (const InputError& error) {
        EXPECT_NE(
            std::string(error.what()).find("another process is listening on UDP port " + std::to_string(address.port)),
            std::string::npos)
            << error.what();
    }
}

// Deterministic mutation fuzzing with the libFuzzer target's own harness (which aborts on a broken invariant): valid
// packet streams with random byte flips, truncations, header field changes, repairs and clock jumps.
TEST(LinkDecoder, SurvivesRandomMutations) {
    std::mt19937_64 random(2024);
    for (int round = 0; round < 3000; ++round) {
        std::vector<unsigned char> input;
        const int n_packets = 1 + static_cast<int>(random() % 12);
        for (int k = 0; k < n_packets; ++k) {
            auto packet = make_packet(static_cast<std::uint64_t>(k), 4u * static_cast<std::uint64_t>(random() % 16),
                                      static_cast<std::uint16_t>(1 + random() % 6), 9, 4);
            const int mutations = static_cast<int>(random() % 4);
            for (int m = 0; m < mutations; ++m) {
                switch (random() % 4) {
                case 0:
                    if (!packet.empty())
                        packet[random() % packet.size()] ^= static_cast<unsigned char>(1u << (random() % 8));
                    break;
                case 1:
                    packet.resize(random() % (packet.size() + 1));
                    break;
                case 2:
                    if (packet.size() >= 32) // header fields: channels, samples, sequence, first sample
                        packet[12 + random() % 20] = static_cast<unsigned char>(random());
                    break;
                default:
                    packet.push_back(static_cast<unsigned char>(random()));
                }
            }
            const auto flags = static_cast<unsigned char>(random());
            input.push_back(flags);
            input.push_back(static_cast<unsigned char>(packet.size() & 0xFF));
            input.push_back(static_cast<unsigned char>(packet.size() >> 8));
            input.insert(input.end(), packet.begin(), packet.end());
        }
        fuzz::link_decoder_one_input(input.data(), input.size());
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The real binaries on loopback

constexpr int kChannels = 64;

/// Starts `spikeline args...` with output captured in files; returns its pid. max_file_bytes > 0: no file it writes
/// may grow beyond that (RLIMIT_FSIZE; SIGXFSZ ignored, so a write beyond fails with EFBIG as on a full disk).
pid_t spawn_cli(const std::vector<std::string>& args, const fs::path& log_stem, const fs::path* stdin_file = nullptr,
                std::uint64_t max_file_bytes = 0) {
    std::vector<std::string> storage{SPIKELINE_CLI};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : storage)
        argv.push_back(s.data());
    argv.push_back(nullptr);
    const std::string out = log_stem.string() + ".out", err = log_stem.string() + ".err";
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out_fd < 0 || err_fd < 0 || ::dup2(out_fd, STDOUT_FILENO) < 0 || ::dup2(err_fd, STDERR_FILENO) < 0)
            ::_exit(126);
        if (stdin_file) {
            const int in_fd = ::open(stdin_file->c_str(), O_RDONLY);
            if (in_fd < 0 || ::dup2(in_fd, STDIN_FILENO) < 0)
                ::_exit(126);
        }
        if (max_file_bytes > 0) {
            const rlimit limit{max_file_bytes, max_file_bytes};
            if (::setrlimit(RLIMIT_FSIZE, &limit) != 0 || ::signal(SIGXFSZ, SIG_IGN) == SIG_ERR)
                ::_exit(126);
        }
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    return pid;
}

int wait_exit(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::int16_t> read_int16(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    std::vector<std::int16_t> values(bytes.size() / 2);
    std::memcpy(values.data(), bytes.data(), values.size() * 2);
    return values;
}

/// A distinct port per test process, so that parallel CTest runs do not collide.
int test_port(int offset) {
    return 20000 + static_cast<int>(::getpid() % 20000) * 2 % 40000 + offset;
}

class StreamCliTest : public spikeline::testing::TempDirTest {
protected:
    void SetUp() override {
        TempDirTest::SetUp();
        const pid_t pid = spawn_cli({"simulate", "--out", (dir_ / "sim").string(), "--channels",
                                     std::to_string(kChannels), "--duration", "3", "--seed", "5", "-q"},
                                    dir_ / "simulate");
        ASSERT_EQ(wait_exit(pid), 0) << read_text(dir_ / "simulate.err");
        input_ = read_int16(dir_ / "sim" / "recording.bin");
    }

    /// Checks the stream's saved SpikeGLX copy: frame f equals input frame base + f, except in the rows of gaps.tsv,
    /// which hold zeros; returns the zero-filled frame count.
    std::uint64_t check_saved_recording(const fs::path& out, std::uint64_t base) {
        const io::RecordingInfo info = io::read_spikeglx_info(out / "recording.bin");
        EXPECT_EQ(info.n_channels, kChannels);
        const std::vector<std::int16_t> saved = read_int16(out / "recording.bin");
        const std::size_t n_frames = saved.size() / kChannels;
        EXPECT_EQ(n_frames, info.n_frames);
        EXPECT_LE((base + n_frames) * kChannels, input_.size());
        std::vector<bool> in_gap(n_frames, false);
        std::istringstream gaps(read_text(out / "gaps.tsv"));
        std::string line;
        std::getline(gaps, line);
        EXPECT_EQ(line, "first_frame\tn_frames\treason");
        std::uint64_t gap_frames = 0;
        while (std::getline(gaps, line)) {
            std::istringstream row(line);
            std::uint64_t first = 0, n = 0;
            std::string reason;
            row >> first >> n >> reason;
            EXPECT_TRUE(reason == "link_loss" || reason == "overrun" || reason == "blanked") << reason;
            if (reason == "blanked") // received samples, saved as they came; only their spikes were dropped
                continue;
            for (std::uint64_t f = first; f < first + n && f < n_frames; ++f)
                in_gap[f] = true;
            gap_frames += n;
        }
        std::size_t mismatches = 0;
        for (std::size_t f = 0; f < n_frames; ++f)
            for (std::size_t c = 0; c < kChannels; ++c) {
                const std::int16_t expected = in_gap[f] ? 0 : input_[(base + f) * kChannels + c];
                mismatches += saved[f * kChannels + c] != expected;
            }
        EXPECT_EQ(mismatches, 0u);
        return gap_frames;
    }

    /// What every stream folder must hold however the stream ended: the Phy per-spike arrays of one length,
    /// `spikes` long, and no temporary file.
    static void expect_spike_arrays(const fs::path& out, std::uint64_t spikes) {
        const auto times = io::read_npy_vector<std::uint64_t>(out / "spike_times.npy");
        EXPECT_EQ(times.size(), spikes);
        EXPECT_EQ(io::read_npy_vector<std::int32_t>(out / "spike_clusters.npy").size(), times.size());
        EXPECT_EQ(io::read_npy_vector<std::int32_t>(out / "spike_templates.npy").size(), times.size());
        EXPECT_EQ(io::read_npy_vector<double>(out / "amplitudes.npy").size(), times.size());
        const io::NpyArray features = io::read_npy(out / "pc_features.npy");
        ASSERT_FALSE(features.shape.empty());
        EXPECT_EQ(features.shape[0], times.size());
        for (const auto& entry : fs::directory_iterator(out)) // nothing half-written is left
            EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << entry.path();
    }

    /// A 4 s recording with the cursor task (simulate --behavior) in dir_/behavior.
    fs::path simulate_behavior(int seed) {
        const fs::path sim = dir_ / "behavior";
        EXPECT_EQ(wait_exit(spawn_cli({"simulate", "--out", sim.string(), "--channels", std::to_string(kChannels),
                                       "--duration", "4", "--seed", std::to_string(seed), "--behavior", "-q"},
                                      dir_ / "simulate_behavior")),
                  0);
        return sim;
    }

    /// The default decoder (Kalman) trained on a spike folder and the recording's kinematics: dir_/NAME.json.
    fs::path train_decoder(const fs::path& spikes, const fs::path& sim, const std::string& name) {
        const fs::path model = dir_ / (name + ".json");
        EXPECT_EQ(
            wait_exit(spawn_cli({"decode", "train", "--spikes", spikes.string(), "--kinematics",
                                 (sim / "ground_truth" / "kinematics.npy").string(), "--out", model.string(), "-q"},
                                dir_ / ("train_" + name))),
            0)
            << read_text(dir_ / ("train_" + name + ".err"));
        return model;
    }

    /// Checks a stream's decoded_velocity.npy rows against the model run offline (decode_bins) on a folder's spikes.
    static void expect_offline_estimates(const decode::DecoderModel& model, const fs::path& spikes,
                                         const std::vector<double>& saved, std::size_t n_bins) {
        ASSERT_EQ(saved.size(), n_bins * 3);
        const Eigen::MatrixXd offline =
            decode::decode_bins(model, decode::model_inputs(model, decode::read_spike_folder(spikes), n_bins));
        for (std::size_t k = 0; k < n_bins; ++k) {
            const auto column = static_cast<Eigen::Index>(k);
            EXPECT_DOUBLE_EQ(saved[k * 3], static_cast<double>((k + 1) * model.bin_samples) / model.sample_rate);
            EXPECT_NEAR(saved[k * 3 + 1], offline(0, column), 1e-9 * (1 + std::abs(offline(0, column)))) << k;
            EXPECT_NEAR(saved[k * 3 + 2], offline(1, column), 1e-9 * (1 + std::abs(offline(1, column)))) << k;
        }
    }

    std::vector<std::int16_t> input_;
};

TEST_F(StreamCliTest, ReplayWithFaultsToStreamToSubscriberAccountsForEverySampleAndSpike) {
    const int port = test_port(0);
    const std::string udp = "udp://127.0.0.1:" + std::to_string(port);
    const std::string publish = "tcp://127.0.0.1:" + std::to_string(port + 1);
    const fs::path out = dir_ / "stream";
    // Sealed frames under a shared link key (the faults below then hit the authentication, not the CRC).
    const fs::path key = dir_ / "link.key";
    ASSERT_EQ(wait_exit(spawn_cli({"keygen", "--out", key.string(), "-q"}, dir_ / "keygen")), 0);
    const pid_t stream =
        spawn_cli({"stream", "--source", udp, "--channels", std::to_string(kChannels), "--sample-rate", "30000",
                   "--out", out.string(), "--publish", publish, "--calibration-s", "2", "--key", key.string(), "-q"},
                  dir_ / "stream");
    zmq::context_t context(1);
    zmq::socket_t subscriber(context, zmq::socket_type::sub);
    subscriber.set(zmq::sockopt::subscribe, "");
    subscriber.set(zmq::sockopt::rcvtimeo, 200);
    subscriber.connect(publish);
    std::this_thread::sleep_for(700ms); // the stream binds; the subscription reaches the publisher

    std::vector<SpikeMessage> received;
    EndMessage end;
    bool ended = false;
    std::thread receiver([&]() {
        const auto give_up = std::chrono::steady_clock::now() + 30s;
        while (!ended && std::chrono::steady_clock::now() < give_up) {
            zmq::message_t message;
            if (!subscriber.recv(message))
                continue;
            SpikeMessage spike;
            const auto* bytes = static_cast<const unsigned char*>(message.data());
            if (decode_spike_message(bytes, message.size(), spike))
                received.push_back(spike);
            else if (decode_end_message(bytes, message.size(), end))
                ended = true;
        }
    });
    const pid_t replay = spawn_cli({"replay", (dir_ / "sim" / "recording.bin").string(), "--to", udp, "--loss", "0.01",
                                    "--reorder", "0.03", "--duplicate", "0.01", "--corrupt", "0.01", "--seed", "3",
                                    "--key", key.string(), "--json", (dir_ / "replay.json").string(), "-q"},
                                   dir_ / "replay");
    ASSERT_EQ(wait_exit(replay), 0) << read_text(dir_ / "replay.err");
    std::this_thread::sleep_for(300ms);
    ::kill(stream, SIGINT);
    EXPECT_EQ(wait_exit(stream), 0) << read_text(dir_ / "stream.err");
    receiver.join();

    const auto summary = nlohmann::json::parse(read_text(out / "stream.json"));
    const auto replayed = nlohmann::json::parse(read_text(dir_ / "replay.json"));
    const auto& link = summary["source_counters"];
    EXPECT_GT(replayed["lost"].get<int>(), 0);
    EXPECT_GT(replayed["reordered"].get<int>(), 0);
    // Every corrupted frame fails authentication and every duplicate is a repeated counter, both dropped before the
    // decoder; every lost or corrupted packet's frames become a gap.
    EXPECT_TRUE(replayed["sealed"].get<bool>());
    const auto& sealed = link["authentication"];
    EXPECT_GT(replayed["corrupted"].get<int>(), 0);
    EXPECT_EQ(sealed["forged"].get<int>(), replayed["corrupted"].get<int>());
    EXPECT_EQ(sealed["repeated"].get<int>(), replayed["duplicated"].get<int>());
    EXPECT_EQ(sealed["rejected"].get<int>(), replayed["corrupted"].get<int>() + replayed["duplicated"].get<int>());
    EXPECT_EQ(link["bad_crc"].get<int>(), 0);
    EXPECT_EQ(link["duplicates"].get<int>(), 0);
    const std::uint64_t base = summary["link_base_sample"].get<std::uint64_t>();
    const std::uint64_t gap_frames = check_saved_recording(out, base);
    EXPECT_EQ(gap_frames, summary["link_gap_frames"].get<std::uint64_t>());
    EXPECT_GE(gap_frames, 30u * (replayed["lost"].get<std::uint64_t>() - 1)); // the first may precede the base
    EXPECT_EQ(summary["overrun_blocks"].get<int>(), 0);

    // The subscriber got exactly the spikes of the Phy folder, in order.
    const auto times = io::read_npy_vector<std::uint64_t>(out / "spike_times.npy");
    const auto clusters = io::read_npy_vector<std::int32_t>(out / "spike_clusters.npy");
    ASSERT_TRUE(ended);
    EXPECT_EQ(end.spikes, times.size());
    ASSERT_EQ(received.size(), times.size());
    ASSERT_GT(times.size(), 50u);
    for (std::size_t i = 0; i < times.size(); ++i) {
        EXPECT_EQ(received[i].sample, times[i]) << i;
        EXPECT_EQ(received[i].unit + 1, clusters[i]) << i;
    }
    EXPECT_TRUE(summary["calibration"]["done"].get<bool>());
    // Where the units took effect: after the 2 s window, within the data (null only if the data ended first).
    const auto& applied = summary["calibration"]["applied_at_s"];
    ASSERT_TRUE(applied.is_null() || applied.is_number()) << applied;
    if (applied.is_number()) {
        EXPECT_GE(applied.get<double>(), 2.0);
        EXPECT_LE(applied.get<double>(), summary["seconds"].get<double>());
    }
    EXPECT_EQ(summary["latency"]["count"].get<std::uint64_t>() + summary["spikes_released_at_end"].get<std::uint64_t>(),
              times.size());
    EXPECT_TRUE(fs::exists(out / "params.py"));
    EXPECT_TRUE(fs::exists(out / "cluster_info.tsv"));
}

TEST(GapFiller, MirrorsTheLastFramesAndBendsThemToMeetTheNextFrame) {
    GapFiller filler(1, 4);
    std::vector<std::int16_t> fill(6);
    const std::int16_t next = 100;
    filler.begin(3, &next); // nothing received yet: a ramp from 0 to the next frame
    filler.produce(3, fill.data());
    EXPECT_EQ(std::vector<std::int16_t>(fill.begin(), fill.begin() + 3), (std::vector<std::int16_t>{25, 50, 75}));

    const std::vector<std::int16_t> received = {5, 10, 20, 30, 40}; // only the last 4 are kept
    filler.remember(received.data(), received.size());
    // Read backwards from 40, turning at the oldest kept frame: 40 30 20 10 20 30; bent by 70 * (i + 1) / 7.
    filler.begin(6, &next);
    filler.produce(2, fill.data()); // in pieces, as the pipeline asks for it
    filler.produce(4, fill.data() + 2);
    EXPECT_EQ(fill, (std::vector<std::int16_t>{50, 50, 50, 50, 70, 90}));
    filler.begin(6, nullptr); // nothing follows: not bent
    filler.produce(6, fill.data());
    EXPECT_EQ(fill, (std::vector<std::int16_t>{40, 30, 20, 10, 20, 30}));
}

TEST(GapBlanking, DropsTheGapAndTheFramesAfterItMergingOverlaps) {
    GapBlanking blanking(9);
    blanking.add_gap(100, 30);
    blanking.add_gap(135, 10); // starts inside the first one's blanked frames
    EXPECT_FALSE(blanking.blanked(99));
    EXPECT_TRUE(blanking.blanked(100));
    EXPECT_TRUE(blanking.blanked(138));
    EXPECT_TRUE(blanking.blanked(153));
    EXPECT_FALSE(blanking.blanked(154));
    blanking.forget_before(200);
    EXPECT_FALSE(blanking.blanked(120));
}

/// gaps.tsv rows of one reason, as [first, end) frame spans.
std::vector<std::pair<std::uint64_t, std::uint64_t>> gap_rows(const fs::path& out, const std::string& wanted) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> rows;
    std::istringstream gaps(read_text(out / "gaps.tsv"));
    std::string line;
    std::getline(gaps, line);
    while (std::getline(gaps, line)) {
        std::istringstream row(line);
        std::uint64_t first = 0, n = 0;
        std::string reason;
        row >> first >> n >> reason;
        if (reason == wanted)
            rows.emplace_back(first, first + n);
    }
    return rows;
}

TEST_F(StreamCliTest, LostPacketsNeitherInventNorHideSpikesAndEveryBackendBlanksAlike) {
    // 12 s of 128 channels; the file source loses 5 % of its 1 ms blocks (the same ones in every run).
    const fs::path sim = dir_ / "long";
    ASSERT_EQ(wait_exit(spawn_cli(
                  {"simulate", "--out", sim.string(), "--channels", "128", "--duration", "12", "--seed", "8", "-q"},
                  dir_ / "simulate_long")),
              0);
    auto run = [&](const std::string& name, std::vector<std::string> extra) {
        std::vector<std::string> args = {
            "stream", "--source", (sim / "recording.bin").string(), "--out", (dir_ / name).string(), "--calibration-s",
            "0",      "-q"};
        args.insert(args.end(), extra.begin(), extra.end());
        EXPECT_EQ(wait_exit(spawn_cli(args, dir_ / name)), 0) << read_text(dir_ / (name + ".err"));
        return io::read_npy_vector<std::uint64_t>(dir_ / name / "spike_times.npy");
    };
    const std::vector<std::uint64_t> whole = run("whole", {});
    const std::vector<std::string> loss = {"--inject-loss", "0.05", "--inject-seed", "4"};
    const std::vector<std::uint64_t> lossy = run("lossy", loss);
    std::vector<std::string> reference = loss;
    reference.insert(reference.end(), {"--backend", "reference"});
    EXPECT_EQ(run("lossy_reference", reference), lossy);

    const auto lost = gap_rows(dir_ / "lossy", "link_loss");
    const auto blanked = gap_rows(dir_ / "lossy", "blanked");
    ASSERT_GT(lost.size(), 300u);
    ASSERT_GT(blanked.size(), 300u);
    const auto summary = nlohmann::json::parse(read_text(dir_ / "lossy" / "stream.json"));
    const std::uint64_t blank = summary["gap_blank_frames"].get<std::uint64_t>();
    EXPECT_EQ(blank, 9u); // the 0.3 ms alignment window at 30 kHz
    auto inside = [](const std::vector<std::pair<std::uint64_t, std::uint64_t>>& spans, std::uint64_t sample) {
        const auto after = std::upper_bound(spans.begin(), spans.end(), std::make_pair(sample, ~std::uint64_t{0}));
        return after != spans.begin() && sample < std::prev(after)->second;
    };
    // No spike peaks in a gap or in the blanked frames after one; the raw copy holds zeros where data was lost.
    for (std::uint64_t t : lossy) {
        EXPECT_FALSE(inside(lost, t)) << t;
        EXPECT_FALSE(inside(blanked, t)) << t;
    }
    std::uint64_t lost_frames = 0;
    for (const auto& [first, end] : lost)
        lost_frames += end - first;
    EXPECT_EQ(lost_frames, summary["link_gap_frames"].get<std::uint64_t>());
    EXPECT_EQ(summary["source_counters"]["injected_lost_blocks"].get<std::uint64_t>() * 30, lost_frames);

    // Spikes per received second match the run without loss on the same samples, and the frames just after a gap
    // hold no more spikes than without loss (zero-filled gaps gave +61 % spikes at 5 % loss, most of them there).
    std::size_t whole_received = 0, whole_after = 0, lossy_after = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> after_gap;
    for (const auto& [first, end] : lost)
        after_gap.emplace_back(end, end + 45);
    for (std::uint64_t t : whole) {
        whole_received += !inside(lost, t);
        whole_after += inside(after_gap, t);
    }
    for (std::uint64_t t : lossy)
        lossy_after += inside(after_gap, t);
    ASSERT_GT(whole_received, 1500u);
    EXPECT_NEAR(static_cast<double>(lossy.size()) / static_cast<double>(whole_received), 1.0, 0.03)
        << lossy.size() << " spikes with loss, " << whole_received << " without on the same samples";
    EXPECT_LE(lossy_after, whole_after + 5)
        << lossy_after << " spikes within 1.5 ms after a gap, " << whole_after << " without loss";
}

TEST_F(StreamCliTest, OneListenerPerPortAndNeitherAStraySenderNorARogueClockCostsAFrame) {
    const int port = test_port(14);
    const std::string udp = "udp://127.0.0.1:" + std::to_string(port);
    const fs::path out = dir_ / "stream";
    const std::vector<std::string> shape{"--source",      udp,     "--channels",      std::to_string(kChannels),
                                         "--sample-rate", "30000", "--calibration-s", "0",
                                         "--insecure"};
    std::vector<std::string> args{"stream", "--out", out.string(), "--stream-id", "1"};
    args.insert(args.end(), shape.begin(), shape.end());
    const pid_t stream = spawn_cli(args, dir_ / "stream");
    std::this_thread::sleep_for(700ms); // the stream binds its port

    std::vector<std::string> second_args{"stream", "--out", (dir_ / "second").string()};
    second_args.insert(second_args.end(), shape.begin(), shape.end());
    EXPECT_EQ(wait_exit(spawn_cli(second_args, dir_ / "second")), 2);
    EXPECT_NE(read_text(dir_ / "second.err").find("another process is listening on UDP port " + std::to_string(port)),
              std::string::npos)
        << read_text(dir_ / "second.err");

    // One second of the recording as 1 ms packets of stream id 1 from link sample 1000, with a stray sender (id 7)
    // before and amid it, and one id-1 packet whose clock is 60 s ahead.
    const UdpSocket sender = UdpSocket::connect_sender(parse_udp_address(udp));
    const std::uint64_t base = 1000, n_packets = 1000;
    const auto send = [&](std::uint32_t stream_id, std::uint64_t sequence, std::uint64_t first_sample,
                          std::uint64_t from_frame) {
        LinkHeader header;
        header.stream_id = stream_id;
        header.n_channels = kChannels;
        header.samples_per_packet = 30;
        header.sequence = sequence;
        header.first_sample = first_sample;
        std::vector<unsigned char> packet;
        encode_link_packet(header, input_.data() + from_frame * kChannels, packet);
        EXPECT_TRUE(sender.send(packet.data(), packet.size()));
    };
    send(7, 0, 0, 0);
    for (std::uint64_t k = 0; k < n_packets; ++k) {
        send(1, k, base + 30 * k, 30 * k);
        if (k == 500) {
            send(1, k, base + 30 * k + 60 * 30000, 30 * k);
            send(7, 1, 30, 30);
        }
        std::this_thread::sleep_for(300us); // about three times real time: no loss in the kernel's buffer
    }
    std::this_thread::sleep_for(300ms);
    ::kill(stream, SIGINT);
    ASSERT_EQ(wait_exit(stream), 0) << read_text(dir_ / "stream.err");

    const auto summary = nlohmann::json::parse(read_text(out / "stream.json"));
    const auto& link = summary["source_counters"];
    EXPECT_EQ(link["stream_id"].get<std::uint32_t>(), 1u);
    EXPECT_EQ(link["wrong_stream"].get<std::uint64_t>(), 2u);
    EXPECT_EQ(link["other_stream_ids"], nlohmann::json({{"7", 2}}));
    EXPECT_EQ(link["clock_outliers"].get<std::uint64_t>(), 1u);
    EXPECT_EQ(link["resyncs"].get<std::uint64_t>(), 0u);
    EXPECT_TRUE(link["discontinuities"].empty());
    EXPECT_EQ(summary["link_base_sample"].get<std::uint64_t>(), base);
    EXPECT_EQ(summary["frames"].get<std::uint64_t>(), 30 * n_packets);
    EXPECT_EQ(check_saved_recording(out, 0), 0u); // every frame as sent, no zeros
    const std::string printed = read_text(dir_ / "stream.out");
    EXPECT_NE(printed.find("WARNING      2 packet(s) of other stream ids ignored (id 7: 2); locked on stream id 1"),
              std::string::npos)
        << printed;
    EXPECT_NE(printed.find("1 outlier packet(s) dropped"), std::string::npos) << printed;
}

/// Counts the spikes a (CURVE) subscriber receives until END1 or a timeout.
struct CurveSpikeCounter {
    CurveSpikeCounter(const std::string& endpoint, const fs::path& server_pub, const fs::path& own_keys)
        : socket(context, zmq::socket_type::sub) {
        const auto server = nlohmann::json::parse(read_text(server_pub));
        const auto own = nlohmann::json::parse(read_text(own_keys));
        socket.set(zmq::sockopt::curve_serverkey, server["public_key"].get<std::string>());
        socket.set(zmq::sockopt::curve_publickey, own["public_key"].get<std::string>());
        socket.set(zmq::sockopt::curve_secretkey, own["secret_key"].get<std::string>());
        socket.set(zmq::sockopt::subscribe, "");
        socket.set(zmq::sockopt::rcvtimeo, 200);
        socket.connect(endpoint);
        thread = std::thread([this]() {
            const auto give_up = std::chrono::steady_clock::now() + 30s;
            while (!ended && !stop && std::chrono::steady_clock::now() < give_up) {
                zmq::message_t message;
                if (!socket.recv(message))
                    continue;
                SpikeMessage spike;
                const auto* bytes = static_cast<const unsigned char*>(message.data());
                if (decode_spike_message(bytes, message.size(), spike))
                    ++spikes;
                else if (decode_end_message(bytes, message.size(), end))
                    ended = true;
            }
        });
    }
    void join() { thread.join(); }

    zmq::context_t context{1};
    zmq::socket_t socket;
    std::thread thread;
    std::uint64_t spikes = 0;
    EndMessage end;
    std::atomic<bool> ended{false}, stop{false};
};

TEST_F(StreamCliTest, AWrongKeysFramesAddNothingAndOnlyAListedSubscriberReceivesTheSpikes) {
    const int port = test_port(16);
    const std::string udp = "udp://127.0.0.1:" + std::to_string(port);
    const std::string publish = "tcp://127.0.0.1:" + std::to_string(port + 1);
    for (const char* name : {"link.key", "other.key"})
        ASSERT_EQ(wait_exit(spawn_cli({"keygen", "--out", (dir_ / name).string(), "-q"}, dir_ / "keygen")), 0);
    for (const char* name : {"server", "allowed", "unlisted"})
        ASSERT_EQ(wait_exit(spawn_cli({"keygen", "--curve", "--out", (dir_ / name).string(), "-q"}, dir_ / "keygen")),
                  0);
    fs::create_directories(dir_ / "clients");
    fs::copy_file(dir_ / "allowed.pub", dir_ / "clients" / "allowed.pub");
    const fs::path out = dir_ / "stream";
    const pid_t stream = spawn_cli({"stream",
                                    "--source",
                                    udp,
                                    "--channels",
                                    std::to_string(kChannels),
                                    "--sample-rate",
                                    "30000",
                                    "--out",
                                    out.string(),
                                    "--key",
                                    (dir_ / "link.key").string(),
                                    "--publish",
                                    publish,
                                    "--curve-secret",
                                    (dir_ / "server").string(),
                                    "--curve-clients",
                                    (dir_ / "clients").string(),
                                    "--calibration-s",
                                    "0",
                                    "-q"},
                                   dir_ / "stream");
    CurveSpikeCounter allowed(publish, dir_ / "server.pub", dir_ / "allowed");
    CurveSpikeCounter unlisted(publish, dir_ / "server.pub", dir_ / "unlisted");
    std::this_thread::sleep_for(700ms); // the stream binds; handshakes and subscriptions are done

    // A sender with another key, then the real one: only the second one's frames are accepted.
    const std::string recording = (dir_ / "sim" / "recording.bin").string();
    ASSERT_EQ(wait_exit(spawn_cli({"replay", recording, "--to", udp, "--key", (dir_ / "other.key").string(),
                                   "--duration", "0.5", "--json", (dir_ / "forger.json").string(), "-q"},
                                  dir_ / "forger")),
              0)
        << read_text(dir_ / "forger.err");
    ASSERT_EQ(wait_exit(spawn_cli({"replay", recording, "--to", udp, "--key", (dir_ / "link.key").string(),
                                   "--duration", "1", "--json", (dir_ / "sender.json").string(), "-q"},
                                  dir_ / "sender")),
              0)
        << read_text(dir_ / "sender.err");
    std::this_thread::sleep_for(300ms);
    ::kill(stream, SIGINT);
    EXPECT_EQ(wait_exit(stream), 0) << read_text(dir_ / "stream.err");
    allowed.join();
    unlisted.stop = true;
    unlisted.join();

    const auto summary = nlohmann::json::parse(read_text(out / "stream.json"));
    const auto forger = nlohmann::json::parse(read_text(dir_ / "forger.json"));
    const auto sender = nlohmann::json::parse(read_text(dir_ / "sender.json"));
    const auto& sealed = summary["source_counters"]["authentication"];
    EXPECT_EQ(sealed["forged"].get<std::uint64_t>(), forger["sent"].get<std::uint64_t>());
    EXPECT_EQ(sealed["rejected"].get<std::uint64_t>(), forger["sent"].get<std::uint64_t>());
    EXPECT_EQ(sealed["authentic"].get<std::uint64_t>(), sender["sent"].get<std::uint64_t>());
    EXPECT_EQ(summary["frames"].get<std::uint64_t>(), sender["frames"].get<std::uint64_t>());
    EXPECT_EQ(summary["link_base_sample"].get<std::uint64_t>(), 0u); // no forged frame set the clock
    EXPECT_EQ(check_saved_recording(out, 0), 0u);                    // the real samples, no gap

    ASSERT_GT(summary["spikes_published"].get<std::uint64_t>(), 10u);
    EXPECT_TRUE(allowed.ended);
    EXPECT_EQ(allowed.spikes, summary["spikes_published"].get<std::uint64_t>());
    EXPECT_EQ(unlisted.spikes, 0u);
    EXPECT_FALSE(unlisted.ended);
    EXPECT_GE(summary["publisher"]["handshakes_denied"].get<std::uint64_t>(), 1u);

    const std::string verify = (dir_ / "verify").string();
    EXPECT_EQ(wait_exit(spawn_cli({"verify", out.string(), "-q"}, dir_ / "verify")), 0) << read_text(verify + ".out");
}

TEST_F(StreamCliTest, SigintMidStreamFinalisesEveryFile) {
    const fs::path out = dir_ / "stream";
    const pid_t stream = spawn_cli({"stream", "--source", (dir_ / "sim" / "recording.bin").string(), "--realtime",
                                    "--out", out.string(), "--calibration-s", "0.5", "-q"},
                                   dir_ / "stream");
    std::this_thread::sleep_for(1500ms);
    ::kill(stream, SIGINT);
    EXPECT_EQ(wait_exit(stream), 0) << read_text(dir_ / "stream.err");
    const auto summary = nlohmann::json::parse(read_text(out / "stream.json"));
    EXPECT_TRUE(summary["interrupted"].get<bool>());
    EXPECT_EQ(summary["ended_by"], "sigint");
    EXPECT_FALSE(summary["ended_early"].get<bool>());
    EXPECT_EQ(summary["threads"].get<int>(), 1); // stream's own default, whatever the machine's cores
    const auto frames = summary["frames"].get<std::uint64_t>();
    EXPECT_GT(frames, 15000u);
    EXPECT_LT(frames, 90000u);
    EXPECT_EQ(check_saved_recording(out, 0), 0u);
    const auto times = io::read_npy_vector<std::uint64_t>(out / "spike_times.npy");
    EXPECT_EQ(times.size(), summary["spikes"].get<std::uint64_t>());
    EXPECT_EQ(io::read_npy_vector<std::int32_t>(out / "spike_clusters.npy").size(), times.size());
    for (const char* name : {"templates.npy", "params.py", "cluster_group.tsv", "spikeline_sort.json"})
        EXPECT_TRUE(fs::exists(out / name)) << name;
    for (const auto& entry : fs::directory_iterator(out)) // nothing half-written is left
        EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << entry.path();
}

/// name -> scheduling policy (SCHED_OTHER 0, SCHED_FIFO 1, SCHED_BATCH 3, SCHED_IDLE 5) of a process's threads.
std::map<std::string, int> thread_policies(pid_t pid) {
    std::map<std::string, int> policies;
    std::error_code error; // a thread (or the process) may end while it is read: what is gone is skipped
    for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", error)) {
        std::string name = read_text(task.path() / "comm");
        name.erase(name.find_last_not_of('\n') + 1);
        const std::string stat = read_text(task.path() / "stat");
        const std::size_t end_of_name = stat.rfind(')');
        if (name.empty() || end_of_name == std::string::npos || end_of_name + 2 > stat.size())
            continue;
        std::istringstream fields(stat.substr(end_of_name + 2)); // from field 3 (state) on
        std::string field;
        for (int i = 3; i <= 41 && fields >> field; ++i)
            if (i == 41)
                policies[name] = std::stoi(field);
    }
    return policies;
}

TEST_F(StreamCliTest, BackgroundThreadsNeverPreemptTheReaderAndPipeline) {
    const fs::path out = dir_ / "threads";
    const pid_t stream = spawn_cli({"stream", "--source", (dir_ / "sim" / "recording.bin").string(), "--realtime",
                                    "--out", out.string(), "--calibration-s", "0.5", "-q"},
                                   dir_ / "threads");
    // The threads start once the stream is set up: wait for them (a loaded machine may take a while).
    std::map<std::string, int> policies;
    for (int attempt = 0; attempt < 200; ++attempt) {
        std::this_thread::sleep_for(50ms);
        policies = thread_policies(stream);
        if (policies.count("sl-reader") && policies.count("sl-sink") && policies.count("sl-motion"))
            break;
    }
    ::kill(stream, SIGINT);
    EXPECT_EQ(wait_exit(stream), 0) << read_text(dir_ / "threads.err");
    // Without --rt-priority the reader and the pipeline (the main thread) are ordinary threads; the sink and the
    // motion worker are SCHED_BATCH, so that waking up they never take a core from them (docs/ARCHITECTURE.md).
    ASSERT_TRUE(policies.count("sl-reader") && policies.count("sl-sink") && policies.count("sl-motion"))
        << "threads seen: " << policies.size();
    EXPECT_EQ(policies.at("sl-reader"), SCHED_OTHER);
    EXPECT_EQ(policies.at("spikeline"), SCHED_OTHER);
    EXPECT_EQ(policies.at("sl-sink"), SCHED_BATCH);
    EXPECT_EQ(policies.at("sl-motion"), SCHED_BATCH);
    EXPECT_EQ(policies.count("sl-worker"), 0u) << "stream runs one backend worker unless told otherwise";
}

TEST_F(StreamCliTest, SigtermMidStreamKeepsEverythingAndSaysWhy) {
    const fs::path out = dir_ / "stream";
    const pid_t stream = spawn_cli({"stream", "--source", (dir_ / "sim" / "recording.bin").string(), "--realtime",
                                    "--out", out.string(), "--calibration-s", "0", "-q"},
                                   dir_ / "stream");
    std::this_thread::sleep_for(1000ms);
    ::kill(stream, SIGTERM);
    EXPECT_EQ(wait_exit(stream), 0) << read_text(dir_ / "stream.err");
    const auto summary = nlohmann::json::parse(read_text(out / "stream.json"));
    EXPECT_EQ(summary["ended_by"], "sigterm");
    EXPECT_EQ(summary["error"], "");
    const auto frames = summary["frames"].get<std::uint64_t>();
    EXPECT_GT(frames, 3000u);
    EXPECT_LT(frames, input_.size() / kChannels);
    EXPECT_EQ(summary["frames_saved"].get<std::uint64_t>(), frames);
    EXPECT_EQ(summary["frames_lost"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(check_saved_recording(out, 0), 0u); // the .meta says the length the .bin has
    EXPECT_EQ(io::read_spikeglx_info(out / "recording.bin").n_frames, frames);
    expect_spike_arrays(out, summary["spikes"].get<std::uint64_t>());
}

TEST_F(StreamCliTest, FullDiskEndsTheStreamKeepingWhatWasWritten) {
    // No file may exceed 2 MiB: recording.bin (3840 bytes per ms of 64 channels) reaches it after 0.55 s of data, and
    // its next write fails with EFBIG as on a full disk; the small files still fit.
    constexpr std::uint64_t kMaxFileBytes = 2u << 20;
    constexpr std::uint64_t kFrameBytes = kChannels * sizeof(std::int16_t);
    const fs::path out = dir_ / "stream";
    const pid_t stream = spawn_cli({"stream", "--source", (dir_ / "sim" / "recording.bin").string(), "--out",
                                    out.string(), "--calibration-s", "0", "-q"},
                                   dir_ / "stream", nullptr, kMaxFileBytes);
    EXPECT_EQ(wait_exit(stream), 3);
    const std::string err = read_text(dir_ / "stream.err");
    EXPECT_NE(err.find("ended early (disk_full)"), std::string::npos) << err;
    EXPECT_NE(err.find("kept in"), std::string::npos) << err;

    const auto summary = nlohmann::json::parse(read_text(out / "stream.json"));
    EXPECT_EQ(summary["ended_by"], "disk_full");
    EXPECT_TRUE(summary["ended_early"].get<bool>());
    EXPECT_NE(summary["error"].get<std::string>().find("recording.bin"), std::string::npos) << summary["error"];
    // The raw copy keeps every whole frame that fitted, with a .meta saying so; the frames after it are counted lost.
    const auto saved = summary["frames_saved"].get<std::uint64_t>();
    EXPECT_LE(saved, kMaxFileBytes / kFrameBytes);
    EXPECT_GE(saved, kMaxFileBytes / kFrameBytes - 30); // a block (1 ms) written in part is cut to whole frames
    EXPECT_EQ(saved + summary["frames_lost"].get<std::uint64_t>(), summary["frames"].get<std::uint64_t>());
    EXPECT_EQ(check_saved_recording(out, 0), 0u);
    EXPECT_EQ(io::read_spikeglx_info(out / "recording.bin").n_frames, saved);
    // The spikes found so far are kept, in arrays of one length.
    const auto spikes_saved = summary["spikes_saved"].get<std::uint64_t>();
    EXPECT_GT(spikes_saved, 0u);
    EXPECT_EQ(spikes_saved + summary["spikes_lost"].get<std::uint64_t>(), summary["spikes"].get<std::uint64_t>());
    expect_spike_arrays(out, spikes_saved);
    EXPECT_TRUE(fs::exists(out / "params.py"));
}

TEST_F(StreamCliTest, SourceErrorEndsTheStreamKeepingWhatArrived) {
    // The source file is cut short while the stream reads it (at 1.56 s of its 3 s), as a failing disk would.
    const fs::path copy = dir_ / "copy";
    fs::create_directories(copy);
    fs::copy_file(dir_ / "sim" / "recording.bin", copy / "recording.bin");
    fs::copy_file(dir_ / "sim" / "recording.meta", copy / "recording.meta");
    const fs::path out = dir_ / "stream";
    const pid_t stream = spawn_cli({"stream", "--source", (copy / "recording.bin").string(), "--realtime", "--out",
                                    out.string(), "--calibration-s", "0", "-q"},
                                   dir_ / "stream");
    std::this_thread::sleep_for(500ms);
    constexpr std::uint64_t kKeptBytes = 6000000;
    fs::resize_file(copy / "recording.bin", kKeptBytes);
    EXPECT_EQ(wait_exit(stream), 3);
    EXPECT_NE(read_text(dir_ / "stream.err").find("ended early (source_error)"), std::string::npos)
        << read_text(dir_ / "stream.err");
    const auto summary = nlohmann::json::parse(read_text(out / "stream.json"));
    EXPECT_EQ(summary["ended_by"], "source_error");
    EXPECT_NE(summary["error"].get<std::string>().find("truncated"), std::string::npos) << summary["error"];
    // Everything that arrived is kept: the frames before the cut, the spikes in them.
    const auto frames = summary["frames"].get<std::uint64_t>();
    EXPECT_LE(frames, kKeptBytes / (kChannels * sizeof(std::int16_t)));
    EXPECT_GT(frames, 30000u);
    EXPECT_EQ(summary["frames_saved"].get<std::uint64_t>(), frames);
    EXPECT_EQ(check_saved_recording(out, 0), 0u);
    EXPECT_EQ(summary["spikes_lost"].get<std::uint64_t>(), 0u);
    expect_spike_arrays(out, summary["spikes"].get<std::uint64_t>());
}

TEST_F(StreamCliTest, SigkillThenRecoverGivesAFolderThatOpens) {
    const fs::path out = dir_ / "stream";
    const pid_t stream = spawn_cli({"stream", "--source", (dir_ / "sim" / "recording.bin").string(), "--realtime",
                                    "--out", out.string(), "--calibration-s", "0", "-q"},
                                   dir_ / "stream");
    std::this_thread::sleep_for(1500ms);
    ::kill(stream, SIGKILL);
    EXPECT_EQ(wait_exit(stream), 128 + SIGKILL);
    const std::string suffix = ".tmp" + std::to_string(stream);
    ASSERT_TRUE(fs::exists(out / ("recording.bin" + suffix)));
    ASSERT_TRUE(fs::exists(out / ("recording.meta" + suffix)));
    EXPECT_FALSE(fs::exists(out / "recording.meta"));

    // A later run into the folder does not delete what the crash left: it says how to keep it.
    const pid_t later =
        spawn_cli({"detect", (dir_ / "sim" / "recording.bin").string(), "--out", out.string(), "-q"}, dir_ / "later");
    EXPECT_EQ(wait_exit(later), 2);
    EXPECT_NE(read_text(dir_ / "later.err").find("spikeline recover"), std::string::npos)
        << read_text(dir_ / "later.err");
    EXPECT_TRUE(fs::exists(out / ("recording.bin" + suffix)));

    ASSERT_EQ(wait_exit(spawn_cli({"recover", out.string()}, dir_ / "recover")), 0) << read_text(dir_ / "recover.err");
    EXPECT_NE(read_text(dir_ / "recover.out").find("whole frames kept"), std::string::npos)
        << read_text(dir_ / "recover.out");
    const io::RecordingInfo info = io::read_spikeglx_info(out / "recording.bin");
    EXPECT_GT(info.n_frames, 3000u);
    EXPECT_EQ(check_saved_recording(out, 0), 0u);
    const auto report = nlohmann::json::parse(read_text(out / "recover.json"));
    EXPECT_EQ(report["frames_kept"].get<std::uint64_t>(), info.n_frames);
    const auto spikes = report["spikes_kept"].get<std::uint64_t>();
    EXPECT_GT(spikes, 0u);
    expect_spike_arrays(out, spikes);

    // The recovered recording opens like any other, and there is nothing more to recover.
    EXPECT_EQ(
        wait_exit(spawn_cli({"detect", (out / "recording.bin").string(), "--out", (dir_ / "detect").string(), "-q"},
                            dir_ / "detect")),
        0)
        << read_text(dir_ / "detect.err");
    ASSERT_EQ(wait_exit(spawn_cli({"recover", out.string()}, dir_ / "again")), 0);
    EXPECT_NE(read_text(dir_ / "again.out").find("nothing to recover"), std::string::npos);
}

TEST_F(StreamCliTest, RecoverRefusesWhatIsNotAFolderAndAFolderALiveStreamWrites) {
    ASSERT_EQ(wait_exit(spawn_cli({"recover", (dir_ / "nowhere").string()}, dir_ / "nowhere")), 2);
    EXPECT_NE(read_text(dir_ / "nowhere.err").find("is not a folder"), std::string::npos)
        << read_text(dir_ / "nowhere.err");

    const fs::path out = dir_ / "stream";
    const pid_t stream = spawn_cli({"stream", "--source", (dir_ / "sim" / "recording.bin").string(), "--realtime",
                                    "--out", out.string(), "--calibration-s", "0", "-q"},
                                   dir_ / "stream");
    std::this_thread::sleep_for(700ms);
    EXPECT_EQ(wait_exit(spawn_cli({"recover", out.string()}, dir_ / "recover")), 2);
    EXPECT_NE(read_text(dir_ / "recover.err").find("is still writing"), std::string::npos)
        << read_text(dir_ / "recover.err");
    EXPECT_TRUE(fs::exists(out / ("recording.bin.tmp" + std::to_string(stream)))); // untouched
    ::kill(stream, SIGINT);
    EXPECT_EQ(wait_exit(stream), 0) << read_text(dir_ / "stream.err");
    EXPECT_EQ(check_saved_recording(out, 0), 0u);
}

TEST_F(StreamCliTest, StdinAndOpenEphysSourcesSaveTheSameSamples) {
    const fs::path raw = dir_ / "sim" / "recording.bin";
    const pid_t from_stdin =
        spawn_cli({"stream", "--source", "-", "--channels", std::to_string(kChannels), "--sample-rate", "30000",
                   "--out", (dir_ / "stdin").string(), "--calibration-s", "0", "-q"},
                  dir_ / "stdin", &raw);
    ASSERT_EQ(wait_exit(from_stdin), 0) << read_text(dir_ / "stdin.err");
    EXPECT_EQ(check_saved_recording(dir_ / "stdin", 0), 0u);
    EXPECT_EQ(io::read_spikeglx_info(dir_ / "stdin" / "recording.bin").n_frames, input_.size() / kChannels);

    // An Open Ephys binary recording folder holding the same samples, gain 0.195 uV/bit.
    const fs::path oe = dir_ / "oe";
    spikeline::testing::write_open_ephys_recording(oe, raw, kChannels, 30000.0);
    const pid_t from_oe = spawn_cli(
        {"stream", "--source", oe.string(), "--out", (dir_ / "oe_out").string(), "--calibration-s", "0", "-q"},
        dir_ / "oe");
    ASSERT_EQ(wait_exit(from_oe), 0) << read_text(dir_ / "oe.err");
    EXPECT_EQ(check_saved_recording(dir_ / "oe_out", 0), 0u);
    const auto summary = nlohmann::json::parse(read_text(dir_ / "oe_out" / "stream.json"));
    EXPECT_DOUBLE_EQ(summary["microvolts_per_bit"].get<double>(), 0.195);

    // A stream name that is not there is an input error naming the streams.
    const pid_t bad =
        spawn_cli({"stream", "--source", oe.string(), "--oe-stream", "nope", "--out", (dir_ / "bad").string(), "-q"},
                  dir_ / "bad");
    EXPECT_EQ(wait_exit(bad), 2);
    EXPECT_NE(read_text(dir_ / "bad.err").find("Acquisition_Board-100.Rhythm Data"), std::string::npos);
}

// A file read faster than real time waits for each calibration at the next block: its units take effect where the
// window ends, and the labels are the same however busy the machine is (here: run alone, then beside a second run).
TEST_F(StreamCliTest, AFileStreamsTheSameLabelsWhateverTheLoad) {
    const fs::path recording = dir_ / "sim" / "recording.bin";
    auto start = [&](const std::string& name) {
        return spawn_cli(
            {"stream", "--source", recording.string(), "--out", (dir_ / name).string(), "--calibration-s", "2", "-q"},
            dir_ / name);
    };
    ASSERT_EQ(wait_exit(start("alone")), 0) << read_text(dir_ / "alone.err");
    const pid_t first = start("busy1"), second = start("busy2");
    ASSERT_EQ(wait_exit(first), 0) << read_text(dir_ / "busy1.err");
    ASSERT_EQ(wait_exit(second), 0) << read_text(dir_ / "busy2.err");
    const auto clusters = io::read_npy_vector<std::int32_t>(dir_ / "alone" / "spike_clusters.npy");
    ASSERT_GT(std::count_if(clusters.begin(), clusters.end(), [](std::int32_t c) { return c > 0; }), 10);
    for (const char* name : {"busy1", "busy2"}) {
        EXPECT_EQ(io::read_npy_vector<std::int32_t>(dir_ / name / "spike_clusters.npy"), clusters) << name;
        EXPECT_EQ(io::read_npy_vector<std::uint64_t>(dir_ / name / "spike_times.npy"),
                  io::read_npy_vector<std::uint64_t>(dir_ / "alone" / "spike_times.npy"))
            << name;
    }
    const auto summary = nlohmann::json::parse(read_text(dir_ / "alone" / "stream.json"));
    EXPECT_DOUBLE_EQ(summary["calibration"]["applied_at_s"].get<double>(), 2.0);
}

TEST_F(StreamCliTest, FileSourceTakesTheMetasGeometryAndFlagsTheBuiltInDefault) {
    const fs::path rec = dir_ / "rec";
    fs::create_directories(rec);
    fs::copy_file(dir_ / "sim" / "recording.bin", rec / "recording.bin");
    {
        // The simulator's .meta states its probe (~snsGeomMap): without that line it states no geometry.
        std::ifstream in(dir_ / "sim" / "recording.meta");
        std::ofstream out(rec / "recording.meta");
        for (std::string line; std::getline(in, line);)
            if (line.rfind("~snsGeomMap=", 0) != 0)
                out << line << '\n';
    }
    const auto stream_summary = [&](const std::string& name) {
        const pid_t pid = spawn_cli({"stream", "--source", (rec / "recording.bin").string(), "--out",
                                     (dir_ / name).string(), "--calibration-s", "0", "-q"},
                                    dir_ / name);
        EXPECT_EQ(wait_exit(pid), 0) << read_text(dir_ / (name + ".err"));
        return nlohmann::json::parse(read_text(dir_ / name / "stream.json"));
    };
    // No probe.json and no geometry in the .meta: the built-in default, said on stderr despite -q and in stream.json.
    const auto fallback = stream_summary("default");
    EXPECT_EQ(fallback.at("geometry_fallback"), true);
    EXPECT_EQ(fallback.at("gain_fallback"), false);
    EXPECT_NE(read_text(dir_ / "default.err").find("states no probe geometry"), std::string::npos);

    // The .meta's ~snsGeomMap reaches the stream through the file reader.
    const probe::Probe probe = probe::read_probeinterface(dir_ / "sim" / "probe.json");
    std::string geometry = "~snsGeomMap=(sim,1,0,70)";
    for (const auto& contact : probe.contacts)
        geometry += "(0:" + std::to_string(contact.x_um) + ":" + std::to_string(contact.y_um) + ":1)";
    std::ofstream(rec / "recording.meta", std::ios::app) << geometry << "\n";
    const auto stated = stream_summary("stated");
    EXPECT_EQ(stated.at("geometry_fallback"), false);
    EXPECT_NE(stated.at("probe").get<std::string>().find("~snsGeomMap"), std::string::npos) << stated;
    EXPECT_EQ(read_text(dir_ / "stated.err").find("warning"), std::string::npos) << read_text(dir_ / "stated.err");
}

/// Collects the messages of a publisher until its END1 message (or a timeout).
struct Subscriber {
    explicit Subscriber(const std::string& endpoint) : socket(context, zmq::socket_type::sub) {
        socket.set(zmq::sockopt::subscribe, "");
        socket.set(zmq::sockopt::rcvtimeo, 200);
        socket.connect(endpoint);
        thread = std::thread([this]() {
            const auto give_up = std::chrono::steady_clock::now() + 60s;
            while (!ended && std::chrono::steady_clock::now() < give_up) {
                zmq::message_t message;
                if (!socket.recv(message))
                    continue;
                const auto* bytes = static_cast<const unsigned char*>(message.data());
                SpikeMessage spike;
                VelocityMessage velocity;
                MotionMessage motion;
                if (decode_spike_message(bytes, message.size(), spike))
                    spikes.push_back(spike);
                else if (decode_velocity_message(bytes, message.size(), velocity))
                    velocities.push_back(velocity);
                else if (decode_motion_message(bytes, message.size(), motion))
                    motions.push_back(motion);
                else if (decode_end_message(bytes, message.size(), end))
                    ended = true;
            }
        });
    }
    void join() { thread.join(); }

    zmq::context_t context{1};
    zmq::socket_t socket;
    std::thread thread;
    std::vector<SpikeMessage> spikes;
    std::vector<VelocityMessage> velocities;
    std::vector<MotionMessage> motions;
    EndMessage end;
    std::atomic<bool> ended{false};
};

TEST_F(StreamCliTest, OnlineDecoderPublishesWhatOfflineDecodingComputes) {
    // A recording with a cursor task; a Kalman decoder trained on its threshold crossings (spikeline detect, with
    // the detection settings stream uses by default).
    const fs::path sim = simulate_behavior(6);
    ASSERT_EQ(wait_exit(spawn_cli({"detect", (sim / "recording.bin").string(), "--out", (dir_ / "det").string(),
                                   "--threshold", "4.75", "--spatial-threshold", "0", "-q"},
                                  dir_ / "detect")),
              0)
        << read_text(dir_ / "detect.err");
    const fs::path model_file = train_decoder(dir_ / "det", sim, "model");

    const int port = test_port(4);
    const std::string udp = "udp://127.0.0.1:" + std::to_string(port);
    const std::string publish = "tcp://127.0.0.1:" + std::to_string(port + 1);
    const fs::path out = dir_ / "stream";
    const pid_t stream = spawn_cli({"stream", "--source", udp, "--channels", std::to_string(kChannels), "--sample-rate",
                                    "30000", "--out", out.string(), "--publish", publish, "--calibration-s", "1",
                                    "--decoder", model_file.string(), "--insecure", "-q"},
                                   dir_ / "stream");
    Subscriber subscriber(publish);
    std::this_thread::sleep_for(700ms);
    const pid_t replay =
        spawn_cli({"replay", (sim / "recording.bin").string(), "--to", udp, "--insecure", "-q"}, dir_ / "replay");
    ASSERT_EQ(wait_exit(replay), 0) << read_text(dir_ / "replay.err");
    std::this_thread::sleep_for(300ms);
    ::kill(stream, SIGINT);
    EXPECT_EQ(wait_exit(stream), 0) << read_text(dir_ / "stream.err");
    subscriber.join();

    const auto summary = nlohmann::json::parse(read_text(out / "stream.json"));
    ASSERT_EQ(summary["link_base_sample"].get<std::uint64_t>(), 0u);
    ASSERT_EQ(summary["link_gap_frames"].get<std::uint64_t>(), 0u);
    const auto& decoded = summary["decoder"];
    EXPECT_EQ(decoded["late_spikes"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(decoded["unknown_label_spikes"].get<std::uint64_t>(), 0u);

    // Every completed bin was decoded, published in order and saved, with the estimates of the same model run
    // offline over detect's crossings (the stream detects identically).
    const decode::DecoderModel model = decode::read_model(model_file);
    const std::uint64_t n_bins = summary["frames"].get<std::uint64_t>() / model.bin_samples;
    ASSERT_EQ(n_bins, 200u); // 4 s of 20 ms bins
    EXPECT_EQ(decoded["bins_decoded"].get<std::uint64_t>(), n_bins);
    ASSERT_TRUE(subscriber.ended);
    ASSERT_EQ(subscriber.velocities.size(), n_bins);
    const io::NpyArray saved_array = io::read_npy(out / "decoded_velocity.npy");
    ASSERT_EQ(saved_array.shape, (std::vector<std::size_t>{n_bins, 3}));
    const std::vector<double> saved = saved_array.as<double>();
    expect_offline_estimates(model, dir_ / "det", saved, n_bins);
    for (std::size_t k = 0; k < n_bins; ++k) {
        const VelocityMessage& m = subscriber.velocities[k];
        EXPECT_EQ(m.bin, k);
        EXPECT_EQ(m.end_sample, (k + 1) * model.bin_samples);
        EXPECT_EQ(m.vx, saved[k * 3 + 1]);
        EXPECT_EQ(m.vy, saved[k * 3 + 2]);
        if (k + 1 < n_bins) { // the last bin completes only when the stream ends (latency -1)
            EXPECT_GE(m.latency_ns, 0) << k;
        }
    }

    // Models the stream cannot feed are refused before anything runs.
    const fs::path ground_truth_model = train_decoder(sim / "ground_truth", sim, "ground_truth_model");
    EXPECT_EQ(wait_exit(spawn_cli({"stream", "--source", (sim / "recording.bin").string(), "--out",
                                   (dir_ / "refused").string(), "--decoder", ground_truth_model.string(), "-q"},
                                  dir_ / "refused")),
              2);
    EXPECT_NE(read_text(dir_ / "refused.err").find("ground-truth units"), std::string::npos)
        << read_text(dir_ / "refused.err");
    std::ofstream(dir_ / "broken.json") << "{\"format\": ";
    EXPECT_EQ(wait_exit(spawn_cli({"stream", "--source", (sim / "recording.bin").string(), "--out",
                                   (dir_ / "broken").string(), "--decoder", (dir_ / "broken.json").string(), "-q"},
                                  dir_ / "broken")),
              2);
    EXPECT_NE(read_text(dir_ / "broken.err").find("broken.json"), std::string::npos) << read_text(dir_ / "broken.err");
}

TEST_F(StreamCliTest, StreamWithASavedSorterLabelsAsSortDoesAndFeedsAClusterDecoder) {
    // Calibrate offline (spikeline sort writes sorter.json), train a decoder on the sorted clusters, then stream
    // the recording with that sorter and decoder: the closed-loop workflow of a lab.
    const fs::path sim = simulate_behavior(8);
    const fs::path sorted = dir_ / "sorted";
    ASSERT_EQ(wait_exit(spawn_cli(
                  {"sort", (sim / "recording.bin").string(), "--out", sorted.string(), "--calibration-s", "4", "-q"},
                  dir_ / "sort")),
              0)
        << read_text(dir_ / "sort.err");
    const fs::path model_file = train_decoder(sorted, sim, "model");

    // Without the sorter, the cluster ids of the model mean nothing to the stream: refused.
    EXPECT_EQ(wait_exit(spawn_cli({"stream", "--source", (sim / "recording.bin").string(), "--out",
                                   (dir_ / "refused").string(), "--decoder", model_file.string(), "-q"},
                                  dir_ / "refused")),
              2);
    EXPECT_NE(read_text(dir_ / "refused.err").find("--sorter"), std::string::npos) << read_text(dir_ / "refused.err");

    const fs::path out = dir_ / "stream";
    ASSERT_EQ(
        wait_exit(spawn_cli({"stream", "--source", (sim / "recording.bin").string(), "--out", out.string(), "--sorter",
                             (sorted / "sorter.json").string(), "--decoder", model_file.string(), "-q"},
                            dir_ / "stream")),
        0)
        << read_text(dir_ / "stream.err");

    // The same spikes with the same labels and templates as the offline sort, from the first spike on.
    const auto times = io::read_npy_vector<std::uint64_t>(out / "spike_times.npy");
    ASSERT_GT(times.size(), 100u);
    EXPECT_EQ(times, io::read_npy_vector<std::uint64_t>(sorted / "spike_times.npy"));
    EXPECT_EQ(io::read_npy_vector<std::int32_t>(out / "spike_clusters.npy"),
              io::read_npy_vector<std::int32_t>(sorted / "spike_clusters.npy"));
    EXPECT_EQ(io::read_npy_vector<std::int32_t>(out / "spike_templates.npy"),
              io::read_npy_vector<std::int32_t>(sorted / "spike_templates.npy"));
    EXPECT_TRUE(fs::exists(out / "sorter.json"));

    // Decoded online as offline on the sort's clusters.
    const decode::DecoderModel model = decode::read_model(model_file);
    const auto summary = nlohmann::json::parse(read_text(out / "stream.json"));
    EXPECT_EQ(summary["decoder"]["unknown_label_spikes"].get<std::uint64_t>(), 0u);
    const std::size_t n_bins = summary["frames"].get<std::size_t>() / model.bin_samples;
    expect_offline_estimates(model, sorted, io::read_npy(out / "decoded_velocity.npy").as<double>(), n_bins);
}

TEST(SpikeReservoir, SamplesUniformlyAndSnapshotsStayAsTaken) {
    // The chunked, copy-on-write reservoir against plain reservoir sampling with the same draws; a snapshot keeps
    // what the reservoir held when it was taken while sampling goes on (chunks of 1024 spikes).
    constexpr std::size_t kValues = 3, kMax = 2500;
    SpikeReservoir reservoir(kMax, kValues, false);
    SortOutput plain;
    std::mt19937_64 plain_rng(1);
    std::uint64_t offered = 0;
    std::mt19937 rng(4);
    std::uint64_t sample = 0;
    std::vector<std::pair<SpikeReservoir::Snapshot, SortOutput>> taken;
    for (int batch = 0; batch < 400; ++batch) {
        SortOutput sorted;
        const int n = static_cast<int>(rng() % 40);
        for (int i = 0; i < n; ++i) {
            hw::SortedSpike spike{};
            spike.event.sample = ++sample;
            spike.event.channel = static_cast<std::int32_t>(sample % 64);
            sorted.spikes.push_back(spike);
            for (std::size_t v = 0; v < kValues; ++v)
                sorted.snippets.push_back(static_cast<std::int32_t>(sample * 10 + v));
        }
        reservoir.add(sorted, nullptr);
        for (std::size_t i = 0; i < sorted.spikes.size(); ++i, ++offered) {
            std::size_t slot = plain.spikes.size();
            if (slot == kMax && (slot = static_cast<std::size_t>(plain_rng() % (offered + 1))) >= kMax)
                continue;
            if (slot == plain.spikes.size()) {
                plain.spikes.push_back(sorted.spikes[i]);
                plain.snippets.insert(plain.snippets.end(), &sorted.snippets[i * kValues],
                                      &sorted.snippets[i * kValues] + kValues);
            } else {
                plain.spikes[slot] = sorted.spikes[i];
                std::copy_n(&sorted.snippets[i * kValues], kValues, &plain.snippets[slot * kValues]);
            }
        }
        if (batch % 97 == 50)
            taken.emplace_back(reservoir.snapshot(), plain);
    }
    ASSERT_GT(sample, 2 * kMax); // the reservoir was full and replaced spikes
    ASSERT_EQ(taken.size(), 4u);
    taken.emplace_back(reservoir.snapshot(), plain);
    for (const auto& [snapshot, expected] : taken) {
        SortOutput data;
        std::vector<double> displacement;
        snapshot.copy_to(data, displacement);
        ASSERT_EQ(data.spikes.size(), expected.spikes.size());
        for (std::size_t i = 0; i < data.spikes.size(); ++i)
            EXPECT_EQ(data.spikes[i].event.sample, expected.spikes[i].event.sample) << i;
        EXPECT_EQ(data.snippets, expected.snippets);
        EXPECT_TRUE(displacement.empty());
    }
    // The end of a sort moves the sample out instead (released as it is copied): the same spikes, and snapshots
    // still held keep theirs.
    SortOutput moved;
    std::vector<double> displacement;
    reservoir.move_to(moved, displacement);
    EXPECT_EQ(reservoir.size(), 0u);
    ASSERT_EQ(moved.spikes.size(), plain.spikes.size());
    for (std::size_t i = 0; i < moved.spikes.size(); ++i)
        EXPECT_EQ(moved.spikes[i].event.sample, plain.spikes[i].event.sample) << i;
    EXPECT_EQ(moved.snippets, plain.snippets);
    SortOutput still;
    taken.front().first.copy_to(still, displacement);
    EXPECT_EQ(still.snippets, taken.front().second.snippets);
}

TEST(SpikeMessage, MotionMessageRoundTripsAndRejectsOtherSizes) {
    MotionMessage m;
    m.time_s = 2.5;
    m.host_time_ns = 123456789;
    m.shank = {0, 0, 1};
    m.depth_um = {200.f, 600.f, 200.f};
    m.displacement_um = {-3.25, 4.5, 0.125};
    std::vector<unsigned char> bytes(motion_message_bytes(3));
    ASSERT_EQ(bytes.size(), 72u);
    encode_motion_message(m, bytes.data());
    EXPECT_EQ(std::memcmp(bytes.data(), "MOT1", 4), 0);
    MotionMessage back;
    ASSERT_TRUE(decode_motion_message(bytes.data(), bytes.size(), back));
    EXPECT_EQ(back.time_s, m.time_s);
    EXPECT_EQ(back.host_time_ns, m.host_time_ns);
    EXPECT_EQ(back.shank, m.shank);
    EXPECT_EQ(back.depth_um, m.depth_um);
    EXPECT_EQ(back.displacement_um, m.displacement_um);
    EXPECT_FALSE(decode_motion_message(bytes.data(), bytes.size() - 16, back)); // fewer blocks than it says
    SpikeMessage spike;
    EXPECT_FALSE(decode_spike_message(bytes.data(), bytes.size(), spike));
}

TEST_F(StreamCliTest, DriftingStreamPublishesAndWritesItsMotionAsSortEstimatesIt) {
    // 12 s of a 128-channel recording drifting 4 um/s, units learnt from the first 4 s (and again at 8 s).
    const fs::path sim = dir_ / "drift";
    ASSERT_EQ(wait_exit(spawn_cli({"simulate", "--out", sim.string(), "--channels", "128", "--duration", "12",
                                   "--drift", "4", "--seed", "3", "-q"},
                                  dir_ / "simulate_drift")),
              0);
    const fs::path recording = sim / "recording.bin";

    // At the recording's pace, so that the subscriber is connected before the first estimate.
    const std::string publish = "tcp://127.0.0.1:" + std::to_string(test_port(8));
    const fs::path out = dir_ / "stream";
    const pid_t stream = spawn_cli({"stream", "--source", recording.string(), "--realtime", "--out", out.string(),
                                    "--publish", publish, "--calibration-s", "4", "-q"},
                                   dir_ / "stream");
    Subscriber subscriber(publish);
    ASSERT_EQ(wait_exit(stream), 0) << read_text(dir_ / "stream.err");
    subscriber.join();
    ASSERT_TRUE(subscriber.ended);
    const auto summary = nlohmann::json::parse(read_text(out / "stream.json"));
    EXPECT_TRUE(summary["motion"]["tracking"].get<bool>());
    EXPECT_GE(summary["learning"]["calibrations"].get<int>(), 1) << summary["learning"].dump();

    // motion.npy: one row per estimate (every 0.5 s once 1.5 s of spikes are in), one column per depth block. The
    // simulated drift is a triangle wave (up 25 um by 6.25 s, then back at 4 um/s): the estimates move the tissue well
    // away from where it started and follow it back.
    const io::NpyArray motion_array = io::read_npy(out / "motion.npy");
    ASSERT_EQ(motion_array.shape.size(), 2u);
    const std::size_t n_estimates = motion_array.shape[0], n_blocks = motion_array.shape[1];
    EXPECT_EQ(summary["motion"]["estimates"].get<std::size_t>(), n_estimates);
    ASSERT_GE(n_estimates, 15u);
    ASSERT_GE(n_blocks, 1u);
    const std::vector<double> motion = motion_array.as<double>();
    const std::vector<double> times = io::read_npy_vector<double>(out / "motion_times_s.npy");
    const std::vector<double> blocks = io::read_npy(out / "motion_blocks.npy").as<double>();
    ASSERT_EQ(times.size(), n_estimates);
    ASSERT_EQ(blocks.size(), n_blocks * 2);
    auto least_in_row = [&](std::size_t row) {
        double least = 1e9;
        for (std::size_t b = 0; b < n_blocks; ++b)
            least = std::min(least, std::abs(motion[row * n_blocks + b]));
        return least;
    };
    double farthest = 0;
    for (std::size_t row = 0; row < n_estimates; ++row)
        farthest = std::max(farthest, least_in_row(row));
    EXPECT_GT(farthest, 10.0);
    EXPECT_LT(least_in_row(n_estimates - 1), farthest - 10.0);

    // Every estimate was published as MOT1, as written, and the displacements move.
    ASSERT_EQ(subscriber.motions.size(), n_estimates);
    double lowest = 1e9, highest = -1e9;
    for (std::size_t row = 0; row < n_estimates; ++row) {
        const MotionMessage& m = subscriber.motions[row];
        EXPECT_EQ(m.time_s, times[row]);
        ASSERT_EQ(m.displacement_um.size(), n_blocks);
        for (std::size_t b = 0; b < n_blocks; ++b) {
            EXPECT_TRUE(std::isfinite(m.displacement_um[b]));
            EXPECT_EQ(m.displacement_um[b], motion[row * n_blocks + b]);
            EXPECT_EQ(m.shank[b], static_cast<std::int32_t>(blocks[b * 2]));
            EXPECT_EQ(m.depth_um[b], static_cast<float>(blocks[b * 2 + 1]));
            lowest = std::min(lowest, m.displacement_um[b]);
            highest = std::max(highest, m.displacement_um[b]);
        }
    }
    EXPECT_GT(highest - lowest, 5.0);

    // unit_updates.npy: the units moved, by table writes in sample order that start once the first calibration is
    // in use (spikes before it are unaffected).
    const io::NpyArray updates = io::read_npy(out / "unit_updates.npy");
    ASSERT_EQ(updates.shape.size(), 2u);
    ASSERT_GT(updates.shape[0], 0u);
    const std::vector<std::int64_t> rows = updates.as<std::int64_t>();
    const std::size_t columns = updates.shape[1];
    for (std::size_t r = 0; r < updates.shape[0]; ++r) {
        EXPECT_GE(rows[r * columns], 4 * 30000) << r;
        if (r > 0) {
            EXPECT_GE(rows[r * columns], rows[(r - 1) * columns]) << r;
        }
    }

    // The same spikes give the same estimates: sort, with the same calibration settings, tracks the same motion
    // (estimates depend on the spikes and the frame count only, not on block sizes).
    const fs::path sorted = dir_ / "sorted";
    ASSERT_EQ(wait_exit(spawn_cli({"sort", recording.string(), "--out", sorted.string(), "--calibration-s", "4", "-q"},
                                  dir_ / "sort")),
              0)
        << read_text(dir_ / "sort.err");
    EXPECT_EQ(io::read_npy_vector<std::uint64_t>(out / "spike_times.npy"),
              io::read_npy_vector<std::uint64_t>(sorted / "spike_times.npy"));
    EXPECT_EQ(io::read_npy(sorted / "motion.npy").shape, motion_array.shape);
    EXPECT_EQ(io::read_npy(sorted / "motion.npy").as<double>(), motion);
    EXPECT_EQ(io::read_npy_vector<double>(sorted / "motion_times_s.npy"), times);

    // --no-motion: no MOT1 (while spikes are published), no motion files.
    const std::string publish_fixed = "tcp://127.0.0.1:" + std::to_string(test_port(10));
    const fs::path fixed = dir_ / "fixed";
    const pid_t fixed_stream =
        spawn_cli({"stream", "--source", recording.string(), "--realtime", "--duration", "4", "--out", fixed.string(),
                   "--publish", publish_fixed, "--calibration-s", "2", "--no-motion", "-q"},
                  dir_ / "fixed");
    Subscriber fixed_subscriber(publish_fixed);
    ASSERT_EQ(wait_exit(fixed_stream), 0) << read_text(dir_ / "fixed.err");
    fixed_subscriber.join();
    ASSERT_TRUE(fixed_subscriber.ended);
    EXPECT_GT(fixed_subscriber.spikes.size(), 100u);
    EXPECT_TRUE(fixed_subscriber.motions.empty());
    for (const char* name : {"motion.npy", "motion_times_s.npy", "motion_blocks.npy"})
        EXPECT_FALSE(fs::exists(fixed / name)) << name;
    const auto fixed_summary = nlohmann::json::parse(read_text(fixed / "stream.json"));
    EXPECT_FALSE(fixed_summary["motion"]["tracking"].get<bool>());
    EXPECT_EQ(fixed_summary["motion"]["estimates"].get<std::size_t>(), 0u);
}

} // namespace
} // namespace spikeline::stream
