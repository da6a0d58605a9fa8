#include "pipeline/spike_reservoir.hpp"

#include <algorithm>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace spikeline {

namespace {

/// Room in data and displacement_um for every spike of the chunks.
template <class CHUNKS> void reserve_for(const CHUNKS& chunks, SortOutput& data, std::vector<double>& displacement_um) {
    std::size_t spikes = 0, values = 0;
    for (const auto& chunk : chunks) {
        spikes += chunk->spikes.size();
        values += chunk->snippets.size();
    }
    data.spikes.reserve(data.spikes.size() + spikes);
    data.snippets.reserve(data.snippets.size() + values);
    displacement_um.reserve(displacement_um.size() + spikes);
}

void append(const SpikeReservoir::Chunk& chunk, SortOutput& data, std::vector<double>& displacement_um) {
    data.spikes.insert(data.spikes.end(), chunk.spikes.begin(), chunk.spikes.end());
    data.snippets.insert(data.snippets.end(), chunk.snippets.begin(), chunk.snippets.end());
    displacement_um.insert(displacement_um.end(), chunk.displacement_um.begin(), chunk.displacement_um.end());
}

} // namespace

SpikeReservoir::SpikeReservoir(std::size_t max_spikes, std::size_t values_per_spike, bool with_motion)
    : max_spikes_(max_spikes), values_per_spike_(values_per_spike), with_motion_(with_motion) {}

void SpikeReservoir::restart() {
    chunks_.clear();
    size_ = 0;
    offered_ = 0;
}

SpikeReservoir::Chunk& SpikeReservoir::writable(std::size_t slot) {
    const std::size_t index = slot / kChunkSpikes;
    if (index == chunks_.size()) {
        chunks_.push_back(std::make_shared<Chunk>());
        chunks_.back()->spikes.reserve(kChunkSpikes);
        chunks_.back()->snippets.reserve(kChunkSpikes * values_per_spike_);
    } else if (chunks_[index].use_count() > 1) {
        chunks_[index] = std::make_shared<Chunk>(*chunks_[index]);
    }
    return *chunks_[index];
}

void SpikeReservoir::add(const SortOutput& sorted, const MotionTracking* tracking) {
    for (std::size_t i = 0; i < sorted.spikes.size(); ++i, ++offered_) {
        std::size_t slot = size_;
        if (slot == max_spikes_) {
            slot = static_cast<std::size_t>(rng_() % (offered_ + 1));
            if (slot >= max_spikes_)
                continue;
        }
        const double displacement = tracking ? tracking->displacement_at_channel(sorted.spikes[i].event.channel) : 0;
        const auto snippet = sorted.snippets.begin() + static_cast<std::ptrdiff_t>(i * values_per_spike_);
        Chunk& chunk = writable(slot);
        const std::size_t at = slot % kChunkSpikes;
        if (slot == size_) {
            chunk.spikes.push_back(sorted.spikes[i]);
            chunk.snippets.insert(chunk.snippets.end(), snippet,
                                  snippet + static_cast<std::ptrdiff_t>(values_per_spike_));
            if (with_motion_)
                chunk.displacement_um.push_back(displacement);
            ++size_;
        } else {
            chunk.spikes[at] = sorted.spikes[i];
            std::copy(snippet, snippet + static_cast<std::ptrdiff_t>(values_per_spike_),
                      chunk.snippets.begin() + static_cast<std::ptrdiff_t>(at * values_per_spike_));
            if (with_motion_)
                chunk.displacement_um[at] = displacement;
        }
    }
}

void SpikeReservoir::move_to(SortOutput& data, std::vector<double>& displacement_um) {
    reserve_for(chunks_, data, displacement_um);
    for (std::size_t k = 0; k < chunks_.size(); ++k) {
        append(*chunks_[k], data, displacement_um);
        chunks_[k].reset();
#if defined(__GLIBC__)
        // Freed chunks mostly stay in the heap, below blocks still in use: hand their pages back now and then.
        if (k % 32 == 31)
            malloc_trim(0);
#endif
    }
    restart();
}

SpikeReservoir::Snapshot SpikeReservoir::snapshot() const {
    return {std::vector<std::shared_ptr<const Chunk>>(chunks_.begin(), chunks_.end())};
}

void SpikeReservoir::Snapshot::copy_to(SortOutput& data, std::vector<double>& displacement_um) const {
    reserve_for(chunks, data, displacement_um);
    for (const std::shared_ptr<const Chunk>& chunk : chunks)
        append(*chunk, data, displacement_um);
}

} // namespace spikeline
