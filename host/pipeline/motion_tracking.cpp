#include "pipeline/motion_tracking.hpp"

namespace spikeline {
namespace {

/// Frames at the end of what has been processed whose spikes may still be inside a backend: its de-duplication and
/// sorting latency (below the sorter's ring) plus the pipeline depth of the RTL core.
constexpr std::uint64_t kSettleFrames = 2 * HwSortConfig::ring_frames;
constexpr std::size_t kWriteColumns = 7 + HwSortConfig::n_values;

} // namespace

MotionTracking::MotionTracking(const probe::Probe& probe, double sample_rate,
                               std::shared_ptr<const HwSortParams> geometry, const motion::MotionSettings& settings,
                               bool estimate_motion)
    : probe_(probe), sample_rate_(sample_rate), geometry_(std::move(geometry)), localiser_(geometry_, probe),
      estimator_(probe, sample_rate, settings),
      // Both tables allocated here, before any data: follow() on a live stream then only copies into them.
      backend_table_(std::make_unique<HwSortParams>(*geometry_)),
      spare_table_(std::make_unique<HwSortParams>(*geometry_)), estimate_motion_(estimate_motion) {}

bool MotionTracking::add(const SortOutput& sorted, std::uint64_t processed_frames) {
    if (!estimate_motion_)
        return false;
    const std::uint64_t settled = processed_frames > kSettleFrames ? processed_frames - kSettleFrames : 0;
    std::vector<motion::MotionEstimate> made;
    if (estimator_.replaying()) {
        made = estimator_.add({}, {}, settled);
    } else {
        const int width = geometry_->pre + 1 + geometry_->post;
        const std::size_t values = static_cast<std::size_t>(HwSortConfig::snippet_channels * width);
        for (std::size_t i = 0; i < sorted.spikes.size(); ++i) {
            held_events_.push_back(sorted.spikes[i].event);
            held_positions_.push_back(localiser_.locate(sorted.spikes[i].event, &sorted.snippets[i * values]));
        }
        std::size_t n = 0;
        while (n < held_events_.size() && held_events_[n].sample < settled)
            ++n;
        const auto end = static_cast<std::ptrdiff_t>(n);
        const std::vector<SpikeEvent> events(held_events_.begin(), held_events_.begin() + end);
        const std::vector<motion::SpikePosition> positions(held_positions_.begin(), held_positions_.begin() + end);
        held_events_.erase(held_events_.begin(), held_events_.begin() + end);
        held_positions_.erase(held_positions_.begin(), held_positions_.begin() + end);
        made = estimator_.add(events, positions, settled);
    }
    estimates_.insert(estimates_.end(), made.begin(), made.end());
    new_estimate_ |= !made.empty();
    return !made.empty();
}

double MotionTracking::displacement_at_channel(int channel) const {
    const probe::Contact& c = probe_.contacts[static_cast<std::size_t>(channel)];
    return estimator_.displacement_at(c.shank, c.y_um);
}

void MotionTracking::follow(const sort::Calibration& calibration, bool loaded) {
    const bool first = moving_ == nullptr;
    std::unique_ptr<HwSortParams> table = first ? std::move(spare_table_) : moving_->release_table();
    moving_ = std::make_unique<sort::MovingUnits>(calibration, probe_, sort::MovingUnitsSettings{}, std::move(table));
    if (loaded || first)
        *backend_table_ = *calibration.params;
    new_estimate_ = true;
}

std::vector<hw::TableWrite> MotionTracking::table_writes(std::uint64_t sample) {
    if (!moving_ || !new_estimate_)
        return {};
    new_estimate_ = false;
    const HwSortParams& after = moving_->render(
        [this](int shank, double y) { return estimate_motion_ ? estimator_.displacement_at(shank, y) : 0.0; });
    std::vector<hw::TableWrite> writes = sort::table_writes(*backend_table_, after, sample);
    for (const hw::TableWrite& w : writes)
        hw::apply_table_write(*backend_table_, w);
    n_writes_ += writes.size();
    return writes;
}

void MotionTracking::write_motion(const std::filesystem::path& out_dir) const {
    const std::size_t n_blocks = estimator_.blocks().size();
    std::vector<double> displacement, times, blocks;
    for (const motion::MotionEstimate& e : estimates_) {
        times.push_back(e.time_s);
        displacement.insert(displacement.end(), e.displacement.begin(), e.displacement.end());
    }
    for (const motion::MotionBlock& b : estimator_.blocks()) {
        blocks.push_back(b.shank);
        blocks.push_back(b.depth_um);
    }
    io::write_npy(out_dir / "motion.npy", displacement.data(), {estimates_.size(), n_blocks});
    io::write_npy(out_dir / "motion_times_s.npy", times);
    io::write_npy(out_dir / "motion_blocks.npy", blocks.data(), {n_blocks, 2});
}

TableWriteLog::TableWriteLog(const std::filesystem::path& path) : file_(path, {kWriteColumns}) {}

void TableWriteLog::append(const std::vector<hw::TableWrite>& writes) {
    std::int64_t row[kWriteColumns];
    for (const hw::TableWrite& w : writes) {
        row[0] = static_cast<std::int64_t>(w.sample);
        row[1] = w.channel;
        row[2] = w.slot;
        row[3] = w.n_entries;
        row[4] = w.entry.unit;
        row[5] = w.entry.template_id;
        row[6] = w.entry.gate;
        for (int v = 0; v < HwSortConfig::n_values; ++v)
            row[7 + v] = w.entry.centroid[v];
        file_.append(row, kWriteColumns);
    }
}

} // namespace spikeline
