#pragma once
// The sample a learning calibration learns from: a uniform sample of every spike so far, or since restart() (reservoir
// sampling, deterministic), kept in chunks that snapshots share copy-on-write. sort and stream learn from it alike.
// A calibration takes a snapshot without the pipeline copying the sample (up to max_calibration_spikes snippets,
// hundreds of MB): the calibration thread concatenates it, and the pipeline copies a chunk only when it replaces a
// spike in one a snapshot still holds.
#include "backend/backend.hpp"
#include "pipeline/motion_tracking.hpp"

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace spikeline {

class SpikeReservoir {
public:
    struct Chunk {
        std::vector<hw::SortedSpike> spikes;
        std::vector<std::int32_t> snippets;
        std::vector<double> displacement_um;
    };
    /// What the reservoir held when it was taken, immutable.
    struct Snapshot {
        std::vector<std::shared_ptr<const Chunk>> chunks;
        /// The spikes and snippets in reservoir order, and with motion their displacements.
        void copy_to(SortOutput& data, std::vector<double>& displacement_um) const;
    };

    /// with_motion: record each spike's displacement (motion tracking on).
    SpikeReservoir(std::size_t max_spikes, std::size_t values_per_spike, bool with_motion);

    /// Offers every spike of sorted (with snippets); tracking gives the displacement they were seen at.
    void add(const SortOutput& sorted, const MotionTracking* tracking);
    Snapshot snapshot() const;
    /// Starts a new sample (snapshots taken keep theirs): what learning sees after it adds units.
    void restart();
    /// Appends the sample to data (as a snapshot's copy_to) and restarts, releasing each chunk once it is copied and
    /// its memory to the system as it goes: the sample (hundreds of MB) is not held twice.
    void move_to(SortOutput& data, std::vector<double>& displacement_um);
    std::size_t size() const { return size_; }

private:
    static constexpr std::size_t kChunkSpikes = 1024;
    /// The chunk holding slot, copied first when a snapshot shares it.
    Chunk& writable(std::size_t slot);

    std::size_t max_spikes_, values_per_spike_;
    bool with_motion_;
    std::vector<std::shared_ptr<Chunk>> chunks_;
    std::size_t size_ = 0;
    std::uint64_t offered_ = 0;
    std::mt19937_64 rng_{1};
};

} // namespace spikeline
