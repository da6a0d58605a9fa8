#include "pipeline/spike_cache.hpp"

#include "util/errors.hpp"

#include <cstdio>
#include <cstring>
#include <type_traits>

namespace spikeline {
namespace {

constexpr char kMagic[8] = {'S', 'L', 'S', 'P', 'K', 'C', '0', '1'};

static_assert(std::is_trivially_copyable<hw::SortedSpike>::value, "spikes are stored as raw bytes");
static_assert(std::is_trivially_copyable<hw::ArtifactEvent>::value, "artefacts are stored as raw bytes");

} // namespace

std::uint64_t spike_cache_bytes(std::uint64_t n_spikes, std::size_t values_per_spike) {
    return n_spikes * (sizeof(hw::SortedSpike) + values_per_spike * sizeof(std::int32_t));
}

void require_cache_space(const std::filesystem::path& folder, std::uint64_t bytes) {
    std::error_code error;
    const std::filesystem::space_info space = std::filesystem::space(folder, error);
    if (error)
        return; // unknown: the writes say it if the disk fills
    const std::uint64_t needed = bytes + bytes / 10;
    constexpr double kGb = 1e9;
    char numbers[160];
    std::snprintf(numbers, sizeof numbers, "about %.1f GB, %.1f GB free", static_cast<double>(needed) / kGb,
                  static_cast<double>(space.available) / kGb);
    require(space.available >= needed, "the first pass keeps every spike's snippet in " + folder.string() + " (" +
                                           numbers +
                                           "): free space, write --out to a larger disk, or sort with "
                                           "--one-pass (which keeps none)");
}

SpikeCacheWriter::SpikeCacheWriter(const std::filesystem::path& path, std::size_t values_per_spike)
    : path_(path), values_per_spike_(values_per_spike), out_(path, std::ios::binary | std::ios::trunc) {
    require(out_.good(), "cannot create " + path.string() + " (the first pass's spikes): is its folder writable?");
    write(kMagic, sizeof kMagic);
    const std::uint64_t values = values_per_spike;
    write(&values, sizeof values);
}

void SpikeCacheWriter::write(const void* data, std::size_t size) {
    out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    require(out_.good(), "cannot write " + path_.string() +
                             " (the first pass's spikes; about 1.5 kB per spike): is the disk full? Free space or "
                             "sort with --one-pass");
    bytes_ += size;
}

void SpikeCacheWriter::append(const SortOutput& sorted, const std::vector<hw::ArtifactEvent>& artifacts,
                              std::uint64_t n_frames) {
    const std::uint64_t counts[3] = {n_frames, sorted.spikes.size(), artifacts.size()};
    if (sorted.snippets.size() != sorted.spikes.size() * values_per_spike_)
        throw std::logic_error("SpikeCacheWriter: every spike needs its snippet");
    write(counts, sizeof counts);
    write(sorted.spikes.data(), sorted.spikes.size() * sizeof(hw::SortedSpike));
    write(sorted.snippets.data(), sorted.snippets.size() * sizeof(std::int32_t));
    write(artifacts.data(), artifacts.size() * sizeof(hw::ArtifactEvent));
}

void SpikeCacheWriter::finish() {
    out_.close();
    require(!out_.fail(), "cannot write " + path_.string() + " (the first pass's spikes): is the disk full?");
}

SpikeCacheReader::SpikeCacheReader(const std::filesystem::path& path, std::size_t values_per_spike)
    : path_(path), values_per_spike_(values_per_spike), in_(path, std::ios::binary) {
    char magic[sizeof kMagic];
    std::uint64_t values = 0;
    read(magic, sizeof magic);
    read(&values, sizeof values);
    require(std::memcmp(magic, kMagic, sizeof kMagic) == 0 && values == values_per_spike,
            path.string() + " is not the first pass's spikes of this run");
}

void SpikeCacheReader::read(void* data, std::size_t size) {
    in_.read(static_cast<char*>(data), static_cast<std::streamsize>(size));
    require(in_.gcount() == static_cast<std::streamsize>(size),
            "cannot read " + path_.string() + " (the first pass's spikes): cut short");
}

bool SpikeCacheReader::next(CachedChunk& chunk) {
    std::uint64_t counts[3];
    if (in_.peek() == std::char_traits<char>::eof())
        return false;
    read(counts, sizeof counts);
    chunk.n_frames = counts[0];
    chunk.sorted.spikes.resize(counts[1]);
    chunk.sorted.snippets.resize(counts[1] * values_per_spike_);
    chunk.artifacts.resize(counts[2]);
    read(chunk.sorted.spikes.data(), chunk.sorted.spikes.size() * sizeof(hw::SortedSpike));
    read(chunk.sorted.snippets.data(), chunk.sorted.snippets.size() * sizeof(std::int32_t));
    read(chunk.artifacts.data(), chunk.artifacts.size() * sizeof(hw::ArtifactEvent));
    return true;
}

} // namespace spikeline
