#pragma once
// Reads a recording in chunks. A file mapped in place (io::InPlaceSource) needs neither a copy nor a thread; other
// sources (decompression, channels to skip) read the next chunk in the background while the caller processes one.
#include "io/raw.hpp"
#include "io/recording.hpp"

#include <cstdint>
#include <future>
#include <vector>

namespace spikeline {

class ChunkReader {
public:
    ChunkReader(io::RecordingSource& source, std::size_t chunk_frames);
    ~ChunkReader();
    ChunkReader(const ChunkReader&) = delete;
    ChunkReader& operator=(const ChunkReader&) = delete;
    /// The next chunk (n_frames frames, 0 at the end); valid until the next call.
    const std::int16_t* next(std::size_t& n_frames);

private:
    io::RecordingSource& source_;
    std::size_t chunk_frames_;
    /// Mapped in place: on two cores a background reader only competed with the backend's workers (0.94x one thread
    /// with two, docs/PERFORMANCE.md), and its copy was most of the reading's cost.
    io::InPlaceSource* in_place_;
    std::vector<std::int16_t> buffers_[2];
    int current_ = 0;
    std::future<std::size_t> pending_;
};

} // namespace spikeline
