#pragma once
// Reads a recording in chunks, the next chunk in the background while the caller processes the current one.
#include "io/recording.hpp"

#include <cstdint>
#include <future>
#include <vector>

namespace spikeline {

class ChunkReader {
public:
    ChunkReader(io::RecordingSource& source, std::size_t chunk_frames);
    ~ChunkReader();
    /// The next chunk (n_frames frames, 0 at the end); valid until the next call.
    const std::int16_t* next(std::size_t& n_frames);

private:
    io::RecordingSource& source_;
    std::size_t chunk_frames_;
    std::vector<std::int16_t> buffers_[2];
    int current_ = 0;
    std::future<std::size_t> pending_;
};

} // namespace spikeline
