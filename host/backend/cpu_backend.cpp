// The CPU backend: L1 stages over blocks of frames, channels split across threads.
// Per block: (A) each thread band-passes its channel range, tile by tile, and sums its part of every reference group;
// (B) each thread subtracts the group means and runs the detector on its range; (C) thread 0 feeds the candidates,
// frame by frame and in channel order, to the de-duplication, and sorts the spikes whose post-peak samples are in (the
// referenced frames of the block are kept in a ring for it). (A) and the first half of (B) are the vectorised rewrites
// of cpu_kernels.hpp; the rest are the L1 functions themselves. tests/test_backend.cpp checks that the events equal the
// reference backend's.
//
// (C) of a block runs while the other threads band-pass the next one (with a barrier after (C) two threads reached
// 1.4-1.7x one). Thread 0's extra work is not balanced by giving it fewer channels or by lending its tiles to others:
// both were slower than keeping each range's data in its own thread's cache (docs/PERFORMANCE.md).
#include "backend/backend.hpp"

#include "backend/cpu_kernels.hpp"
#include "backend/sort_stage.hpp"
#include "backend/worker_pool.hpp"
#include "spikeline/hw/bandpass.hpp"
#include "spikeline/hw/common_reference.hpp"
#include "spikeline/hw/spatial_dedup.hpp"
#include "spikeline/hw/threshold_detector.hpp"

#include <algorithm>
#include <chrono>
#include <deque>

namespace spikeline {
namespace {

struct TimedCandidate {
    std::uint64_t emitted_at;
    SpikeEvent event;
};

/// Everything one thread touches, in its own allocations: threads sharing arrays (even on disjoint ranges) ran
/// slower together than one thread alone.
struct Worker {
    Worker(const HwParams& params, int first, int last)
        : begin(first), end(last), runs(cpu::reference_runs(params, first, last)),
          bandpass(std::make_unique<hw::BandpassState<HwConfig>>()),
          reference(std::make_unique<hw::ReferenceState<HwConfig>>()),
          detector(std::make_unique<hw::DetectorState<HwConfig>>()),
          referenced(static_cast<std::size_t>(params.n_channels)) {
        hw::reset_detector(*detector, params);
    }

    int begin, end; ///< channel range
    std::vector<cpu::ChannelRun> runs;
    std::unique_ptr<hw::BandpassState<HwConfig>> bandpass;
    std::unique_ptr<hw::ReferenceState<HwConfig>> reference; ///< the range's clip levels
    std::unique_ptr<hw::DetectorState<HwConfig>> detector;
    std::vector<std::int32_t> filtered;   ///< the block, frame-major, only this range's columns used
    std::vector<std::int32_t> referenced; ///< the current frame after the common reference
    /// [g * kBlockFrames + f]: this thread's tiles' part of group g's hw::GroupSums, frame f
    std::vector<std::int32_t> plain_sums, clipped_sums, beyond_counts;
    std::vector<TimedCandidate> candidates;
    std::vector<cpu::ChannelRun> tiles; ///< the range's band-pass tiles (of one group, at most cpu::kBandpassTile)
};

/// Where the threads of a process() call are: threads that finished band-pass and detection (counted over the call's
/// blocks).
struct BlockProgress {
    PhaseCounter filtered;
    PhaseCounter detected;
};

class CpuBackend final : public Backend {
public:
    // A worker's filtered block (256 frames x its columns of 4 KiB rows) fits its L2 cache; smaller blocks cost more
    // in barriers (two per block): 64-frame blocks gave 1.3x with two threads, 256-frame blocks 1.6x.
    static constexpr std::size_t kBlockFrames = 256;

    CpuBackend(const HwParams& params, int threads)
        : params_(std::make_unique<HwParams>(params)), dedup_(std::make_unique<hw::DedupState<HwConfig>>()),
          states_may_saturate_(cpu::bandpass_states_may_saturate(params)), n_channels_(params.n_channels) {
        // Equal channel ranges, multiples of 32 channels.
        const int n_workers = std::clamp(threads, 1, std::max(1, n_channels_ / 32));
        const int per_worker = ((n_channels_ + n_workers - 1) / n_workers + 31) / 32 * 32;
        for (int first = 0; first < n_channels_; first += per_worker) {
            workers_.push_back(std::make_unique<Worker>(params, first, std::min(n_channels_, first + per_worker)));
            Worker& worker = *workers_.back();
            worker.filtered.resize(kBlockFrames * static_cast<std::size_t>(n_channels_));
            for (auto* sums : {&worker.plain_sums, &worker.clipped_sums, &worker.beyond_counts})
                sums->resize(kBlockFrames * HwConfig::max_groups);
            for (const cpu::ChannelRun& run : worker.runs)
                n_groups_ = std::max(n_groups_, run.group + 1);
            for (const cpu::ChannelRun& run : worker.runs)
                for (int tile = run.begin; tile < run.end; tile += cpu::kBandpassTile)
                    worker.tiles.push_back({tile, std::min(run.end, tile + cpu::kBandpassTile), run.group});
        }
        spin_budgets_.assign(workers_.size(), PhaseCounter::kMaxSpin);
        pool_ = std::make_unique<WorkerPool>(static_cast<int>(workers_.size()));
    }

    std::string name() const override { return "cpu"; }

    void enable_sorting(std::shared_ptr<const HwSortParams> params, bool keep_snippets) override {
        sorting_.enable(std::move(params), keep_snippets);
        ring_.resize(kRingFrames * static_cast<std::size_t>(n_channels_));
    }
    void take_sorted(SortOutput& out) override { sorting_.take(out); }
    void queue_table_writes(const std::vector<hw::TableWrite>& writes) override {
        sorting_.queue_writes(writes, frame_);
    }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        if (n_frames == 0)
            return;
        // No thread runs between calls (WorkerPool::run has returned): the counters start again from 0.
        progress_.filtered.reset();
        progress_.detected.reset();
        const auto n_blocks = static_cast<std::uint32_t>((n_frames + kBlockFrames - 1) / kBlockFrames);
        pool_->run([&](int thread) { run_blocks(thread, frames, n_frames, n_blocks, progress_, events); });
        frame_ += n_frames;
    }

    void finish(std::vector<SpikeEvent>& events) override {
        auto add = [this](const SpikeEvent& c) { hw::dedup_add(*dedup_, *params_, c); };
        for (auto& worker : workers_) // ascending ranges: candidates in channel order
            hw::flush_detector(*worker->detector, frame_, worker->begin, worker->end, add);
        hw::dedup_advance(*dedup_, *params_, frame_, true, [&](const SpikeEvent& e) { add_event(e, events); });
        take_logged_artifacts(dedup_->artifacts, artifacts_taken_, artifacts_);
        if (sorting_.enabled()) {
            // Samples past the end read as 0, as in hw::sort_flush.
            const int post = sorting_.params().post;
            for (int i = 0; i < post; ++i)
                std::fill_n(ring_row(frame_ + static_cast<std::uint64_t>(i)), n_channels_, 0);
            sort_ready(frame_ + static_cast<std::uint64_t>(post));
        }
    }

    StageSeconds stage_seconds() const override { return seconds_; }
    std::uint64_t lost_events() const override {
        return dedup_->dropped + sorting_.dropped_events() + sorting_.dropped_writes();
    }
    void take_artifacts(std::vector<hw::ArtifactEvent>& out) override {
        out.insert(out.end(), artifacts_.begin(), artifacts_.end());
        artifacts_.clear();
    }
    std::uint64_t artifact_candidates() const override { return dedup_->artifacts.dropped_candidates; }

private:
    using Clock = std::chrono::steady_clock;

    // (A) band-pass and partial group sums of the thread's own range, tile by tile through the whole block: a tile's
    // filter history stays in registers and L1 instead of streaming through the cache once per frame. Threads do not
    // take each other's tiles: the filtered block then stays in the cache of the thread that detects on it (taking
    // them to make up for thread 0's de-duplication was 4 % slower with two threads on machine D).
    // A block crosses at most one start of a period of clip levels (kBlockFrames <= reference_period): the tiles
    // run in two parts there.
    void filter_block(Worker& self, const std::int16_t* frames, std::uint64_t first_frame, std::size_t n_frames) {
        static_assert(kBlockFrames <= HwConfig::reference_period, "a block crosses at most one period start");
        // Only the groups in use: the other threads read these lines in (B), so each one zeroed costs a transfer.
        for (int g = 0; g < n_groups_; ++g)
            for (auto* sums : {&self.plain_sums, &self.clipped_sums, &self.beyond_counts})
                std::fill_n(&(*sums)[static_cast<std::size_t>(g) * kBlockFrames], n_frames, 0);
        const std::size_t stride = static_cast<std::size_t>(n_channels_);
        const std::size_t to_period_end =
            HwConfig::reference_period - static_cast<std::size_t>(first_frame % HwConfig::reference_period);
        const std::size_t split = std::min(n_frames, to_period_end);
        for (const cpu::ChannelRun& tile : self.tiles) {
            for (std::size_t start : {std::size_t{0}, split}) {
                const std::size_t count = start == 0 ? split : n_frames - split;
                if (count == 0)
                    continue;
                cpu::TileSums sums{};
                if (tile.group >= 0) {
                    const std::size_t at = static_cast<std::size_t>(tile.group) * kBlockFrames + start;
                    const int bank = hw::reference_bank<HwConfig>(first_frame + start);
                    sums = {&self.plain_sums[at], &self.clipped_sums[at], &self.beyond_counts[at],
                            self.reference->clip[bank]};
                }
                cpu::bandpass_tile(*self.bandpass, *params_, states_may_saturate_, frames + start * stride,
                                   self.filtered.data() + start * stride, stride, count, tile.begin, tile.end, sums);
            }
        }
    }

    // (B) group means from every worker's sums, reference, noise, threshold and alignment.
    void detect_block(Worker& worker, std::uint64_t first_frame, std::size_t n_frames) {
        const std::size_t stride = static_cast<std::size_t>(n_channels_);
        worker.candidates.clear();
        hw::GroupSums<HwConfig> totals;
        hw::clear_group_sums(totals); // groups from n_groups_ on stay 0
        std::int32_t means[HwConfig::max_groups];
        for (std::size_t f = 0; f < n_frames; ++f) {
            for (int g = 0; g < n_groups_; ++g) {
                const std::size_t at = static_cast<std::size_t>(g) * kBlockFrames + f;
                totals.plain[g] = totals.clipped[g] = totals.beyond[g] = 0;
                for (const auto& other : workers_) {
                    totals.plain[g] += other->plain_sums[at];
                    totals.clipped[g] += other->clipped_sums[at];
                    totals.beyond[g] += other->beyond_counts[at];
                }
            }
            hw::group_means(*params_, totals, means);
            const std::uint64_t frame = first_frame + f;
            hw::take_reference_clips(*worker.reference, *params_, frame, worker.detector->noise, worker.begin,
                                     worker.end);
            // With sorting on, the referenced frame is written straight into the snippet ring (no copy per frame).
            std::int32_t* referenced = ring_.empty() ? worker.referenced.data() : ring_row(frame);
            bool any = false;
            for (const cpu::ChannelRun& run : worker.runs)
                any |= cpu::reference_and_flag(*worker.detector, *params_, run, run.group >= 0 ? means[run.group] : 0,
                                               frame, &worker.filtered[f * stride], referenced);
            // The spatial rule's partners may lie in another worker's range: their referenced sample is computed
            // from its filtered block (complete since the band-pass barrier), as hw::subtract_reference does.
            auto sample_of = [&](int p) {
                if (p >= worker.begin && p < worker.end)
                    return referenced[p];
                const int group = params_->group_of[p];
                return hw::saturate_bits(std::int64_t{owner_of(p).filtered[f * stride + static_cast<std::size_t>(p)]} -
                                             (group >= 0 ? means[group] : 0),
                                         HwConfig::sample_bits);
            };
            if (any)
                cpu::align_flagged_sparse(*worker.detector, *params_, frame, referenced, worker.begin, worker.end,
                                          sample_of, [&worker, frame](const SpikeEvent& c) {
                                              worker.candidates.push_back({frame, c});
                                          });
        }
    }

    const Worker& owner_of(int channel) const {
        for (const auto& worker : workers_)
            if (channel < worker->end)
                return *worker;
        return *workers_.back();
    }
    // One thread's part of a process() call. Block b: wait until every thread has detected block b-1 (its filtered
    // buffers and sums are then free); thread 0 de-duplicates block b-1 meanwhile others band-pass block b; band-pass;
    // wait for every thread's band-pass; detect the own range. Thread 0 de-duplicates the last block at the end.
    void run_blocks(int thread, const std::int16_t* frames, std::size_t n_frames, std::uint32_t n_blocks,
                    BlockProgress& progress, std::vector<SpikeEvent>& events) {
        const auto n_threads = static_cast<std::uint32_t>(workers_.size());
        std::chrono::microseconds& spin = spin_budgets_[static_cast<std::size_t>(thread)];
        auto block_frames = [&](std::uint32_t block) {
            return std::min(kBlockFrames, n_frames - std::size_t{block} * kBlockFrames);
        };
        for (std::uint32_t block = 0; block < n_blocks; ++block) {
            const auto t0 = Clock::now();
            if (block > 0) {
                progress.detected.wait_for(block * n_threads, spin);
                if (thread == 0)
                    dedup_block(frame_ + std::uint64_t{block - 1} * kBlockFrames, block_frames(block - 1), events);
            }
            const auto t1 = Clock::now();
            filter_block(*workers_[static_cast<std::size_t>(thread)],
                         frames + std::size_t{block} * kBlockFrames * static_cast<std::size_t>(n_channels_),
                         frame_ + std::uint64_t{block} * kBlockFrames, block_frames(block));
            progress.filtered.advance();
            progress.filtered.wait_for((block + 1) * n_threads, spin);
            const auto t2 = Clock::now();
            detect_block(*workers_[static_cast<std::size_t>(thread)], frame_ + std::uint64_t{block} * kBlockFrames,
                         block_frames(block));
            progress.detected.advance();
            if (thread == 0)
                add_stage_seconds(t0, t1, t2, Clock::now());
        }
        if (thread == 0) {
            const auto t0 = Clock::now();
            progress.detected.wait_for(n_blocks * n_threads, spin);
            dedup_block(frame_ + std::uint64_t{n_blocks - 1} * kBlockFrames, block_frames(n_blocks - 1), events);
            const auto t1 = Clock::now();
            add_stage_seconds(t0, t1, t1, t1);
        }
    }

    // Thread 0's view of the stages (waits included): de-duplication, band-pass, detection.
    void add_stage_seconds(Clock::time_point t0, Clock::time_point t1, Clock::time_point t2, Clock::time_point t3) {
        seconds_.dedup += std::chrono::duration<double>(t1 - t0).count();
        seconds_.bandpass += std::chrono::duration<double>(t2 - t1).count();
        seconds_.detect += std::chrono::duration<double>(t3 - t2).count();
    }

    // (C) de-duplication, frame by frame, candidates in channel order (workers hold ascending ranges).
    void dedup_block(std::uint64_t first_frame, std::size_t n_frames, std::vector<SpikeEvent>& events) {
        std::vector<std::size_t> next(workers_.size(), 0);
        auto emit = [&](const SpikeEvent& e) { add_event(e, events); };
        for (std::size_t f = 0; f < n_frames; ++f) {
            const std::uint64_t frame = first_frame + f;
            for (std::size_t w = 0; w < workers_.size(); ++w) {
                const auto& candidates = workers_[w]->candidates;
                for (; next[w] < candidates.size() && candidates[next[w]].emitted_at == frame; ++next[w])
                    hw::dedup_add(*dedup_, *params_, candidates[next[w]].event);
            }
            hw::dedup_advance(*dedup_, *params_, frame, false, emit);
            take_logged_artifacts(dedup_->artifacts, artifacts_taken_, artifacts_);
            if (sorting_.enabled())
                sort_ready(frame);
        }
        const std::uint64_t end = first_frame + n_frames;
        if (sorting_.enabled() && end > HwSortConfig::ring_frames)
            sorting_.apply_writes_until(end - HwSortConfig::ring_frames); // every spike before is sorted
    }

    std::int32_t* ring_row(std::uint64_t frame) {
        return &ring_[(frame % kRingFrames) * static_cast<std::size_t>(n_channels_)];
    }

    void add_event(const SpikeEvent& e, std::vector<SpikeEvent>& events) {
        events.push_back(e);
        if (sorting_.enabled())
            sorting_.wait(e);
    }

    void sort_ready(std::uint64_t frame) {
        sorting_.sort_ready(frame, ring_.data(), static_cast<int>(kRingFrames), n_channels_);
    }

    // Holds a block and the frames before it that waiting spikes may still need (pre + max(post, dedup latency)
    // < HwSortConfig::ring_frames).
    static constexpr std::size_t kRingFrames = kBlockFrames + HwSortConfig::ring_frames;

    std::unique_ptr<HwParams> params_;
    std::unique_ptr<hw::DedupState<HwConfig>> dedup_;
    std::vector<hw::ArtifactEvent> artifacts_;
    std::uint64_t artifacts_taken_ = 0;
    SortStageOutput sorting_;
    std::vector<std::int32_t> ring_;
    bool states_may_saturate_; ///< cpu::bandpass_states_may_saturate of the parameters
    int n_channels_;
    std::vector<std::unique_ptr<Worker>> workers_;
    int n_groups_ = 0;                                    ///< reference groups in use (0 .. n_groups_ - 1)
    std::unique_ptr<WorkerPool> pool_;                    ///< one thread per worker (the caller is worker 0)
    std::vector<std::chrono::microseconds> spin_budgets_; ///< per thread, adapted by PhaseCounter::wait_for
    BlockProgress progress_;                              ///< of the process() call running
    std::uint64_t frame_ = 0;
    StageSeconds seconds_;
};

} // namespace

std::unique_ptr<Backend> make_cpu_backend(const HwParams& params, int threads) {
    return std::make_unique<CpuBackend>(params, threads);
}

} // namespace spikeline
