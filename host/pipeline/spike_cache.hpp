#pragma once
// The first pass's sorted spikes on disk, chunk by chunk, for the second pass of a two-pass sort to label again on the
// host instead of detecting the recording again. A scratch file of this process: raw structs, not an exchange format.
#include "backend/backend.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

namespace spikeline {

/// One handled chunk: its frames, the spikes the backend returned with their snippets, and its artefacts.
struct CachedChunk {
    std::uint64_t n_frames = 0;
    SortOutput sorted;
    std::vector<hw::ArtifactEvent> artifacts;
};

/// Bytes a cache of n_spikes spikes takes (their structs and snippets; chunk headers and artefacts aside).
std::uint64_t spike_cache_bytes(std::uint64_t n_spikes, std::size_t values_per_spike);

/// Throws InputError, before any of it is written, when the filesystem holding `folder` has less than `bytes` free
/// (plus a tenth for the estimate's error): better than failing when the disk fills hours later.
void require_cache_space(const std::filesystem::path& folder, std::uint64_t bytes);

/// Appends chunks to `path` (created or truncated). Throws InputError naming the file when it cannot be written
/// (e.g. a full disk).
class SpikeCacheWriter {
public:
    SpikeCacheWriter(const std::filesystem::path& path, std::size_t values_per_spike);
    void append(const SortOutput& sorted, const std::vector<hw::ArtifactEvent>& artifacts, std::uint64_t n_frames);
    /// Flushes and closes; throws InputError when the data did not all reach the file.
    void finish();
    std::uint64_t bytes() const { return bytes_; }

private:
    void write(const void* data, std::size_t size);

    std::filesystem::path path_;
    std::size_t values_per_spike_;
    std::ofstream out_;
    std::uint64_t bytes_ = 0;
};

/// Reads back what a SpikeCacheWriter wrote, one chunk at a time.
class SpikeCacheReader {
public:
    SpikeCacheReader(const std::filesystem::path& path, std::size_t values_per_spike);
    /// The next chunk into `chunk` (its vectors reused); false at the end of the file.
    bool next(CachedChunk& chunk);

private:
    void read(void* data, std::size_t size);

    std::filesystem::path path_;
    std::size_t values_per_spike_;
    std::ifstream in_;
};

} // namespace spikeline
