#include "pipeline/chunk_reader.hpp"

namespace spikeline {

ChunkReader::ChunkReader(io::RecordingSource& source, std::size_t chunk_frames)
    : source_(source), chunk_frames_(chunk_frames), in_place_(io::in_place_source(source)) {
    if (in_place_)
        return;
    for (auto& b : buffers_)
        b.resize(chunk_frames * static_cast<std::size_t>(source.info().n_channels));
    pending_ = std::async(std::launch::async, [this] { return source_.read(buffers_[0].data(), chunk_frames_); });
}

ChunkReader::~ChunkReader() {
    if (pending_.valid())
        pending_.wait();
}

const std::int16_t* ChunkReader::next(std::size_t& n_frames) {
    if (in_place_)
        return in_place_->view(chunk_frames_, n_frames);
    n_frames = pending_.get();
    const std::int16_t* chunk = buffers_[current_].data();
    if (n_frames == 0)
        return chunk;
    current_ ^= 1;
    std::int16_t* other = buffers_[current_].data();
    pending_ = std::async(std::launch::async, [this, other] { return source_.read(other, chunk_frames_); });
    return chunk;
}

} // namespace spikeline
