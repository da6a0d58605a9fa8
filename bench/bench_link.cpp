// The secure link's cost per frame: sealing (replay --key) and opening with the replay window (stream --key) one
// 1 ms link packet of 64 or 1024 channels at 30 kHz, next to the CRC-32C check every packet already pays; and the
// manifest's SHA-256 of a 16 MiB file (in the page cache).
#include "stream/link_auth.hpp"
#include "stream/link_format.hpp"
#include "util/manifest.hpp"

#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

namespace {

using namespace spikeline::stream;

std::vector<unsigned char> one_millisecond_packet(int channels) {
    LinkHeader header;
    header.stream_id = 1;
    header.n_channels = static_cast<std::uint16_t>(channels);
    header.samples_per_packet = 30;
    std::vector<std::int16_t> frames(static_cast<std::size_t>(channels) * 30);
    for (std::size_t i = 0; i < frames.size(); ++i)
        frames[i] = static_cast<std::int16_t>(i * 31);
    std::vector<unsigned char> packet;
    encode_link_packet(header, frames.data(), packet);
    return packet;
}

LinkKey bench_key() {
    LinkKey key{};
    for (std::size_t i = 0; i < key.size(); ++i)
        key[i] = static_cast<unsigned char>(i);
    return key;
}

void BM_Seal(benchmark::State& state) {
    const std::vector<unsigned char> packet = one_millisecond_packet(static_cast<int>(state.range(0)));
    LinkSealer sealer(bench_key(), 1);
    std::vector<unsigned char> sealed;
    for (auto _ : state) {
        sealer.seal(packet.data(), packet.size(), sealed);
        benchmark::DoNotOptimize(sealed.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * packet.size()));
}
BENCHMARK(BM_Seal)->Arg(64)->Arg(1024);

void BM_OpenWithReplayWindow(benchmark::State& state) {
    const std::vector<unsigned char> packet = one_millisecond_packet(static_cast<int>(state.range(0)));
    // Frames sealed ahead (fresh counters), opened in turn: what a receiver does per datagram.
    constexpr std::size_t kFrames = 1024;
    LinkSealer sealer(bench_key(), 1);
    std::vector<std::vector<unsigned char>> sealed(kFrames);
    for (auto& frame : sealed)
        sealer.seal(packet.data(), packet.size(), frame);
    std::size_t next = 0;
    std::optional<LinkOpener> opener(std::in_place, bench_key());
    for (auto _ : state) {
        if (next == kFrames) { // a new receiver, so every counter stays fresh
            state.PauseTiming();
            opener.emplace(bench_key());
            next = 0;
            state.ResumeTiming();
        }
        const unsigned char* opened = nullptr;
        std::size_t n = 0;
        benchmark::DoNotOptimize(opener->open(sealed[next].data(), sealed[next].size(), opened, n));
        ++next;
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * packet.size()));
}
BENCHMARK(BM_OpenWithReplayWindow)->Arg(64)->Arg(1024);

void BM_ParsePlainPacketCrc(benchmark::State& state) {
    const std::vector<unsigned char> packet = one_millisecond_packet(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        LinkHeader header;
        const unsigned char* payload = nullptr;
        benchmark::DoNotOptimize(parse_link_packet(packet.data(), packet.size(), header, payload));
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * packet.size()));
}
BENCHMARK(BM_ParsePlainPacketCrc)->Arg(64)->Arg(1024);

void BM_Sha256(benchmark::State& state) {
    const std::filesystem::path path = std::filesystem::temp_directory_path() / "spikeline_bench_sha256.bin";
    {
        std::ofstream out(path, std::ios::binary);
        const std::vector<char> data(16 << 20, 0x5A);
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
    }
    for (auto _ : state)
        benchmark::DoNotOptimize(spikeline::sha256_file(path));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * (16 << 20));
    std::filesystem::remove(path);
}
BENCHMARK(BM_Sha256);

} // namespace
