// The CPU backend: L1 stages over blocks of frames, channels split across threads.
// Per block: (A) each thread band-passes its channel range and sums its part of every reference group;
// (B) each thread subtracts the group means and runs the detector on its range; (C) one thread feeds the
// candidates, frame by frame and in channel order, to the de-duplication. (A) and the first half of (B) are the
// vectorised rewrites of cpu_kernels.hpp; the rest are the L1 functions themselves. tests/test_backend.cpp checks
// that the events equal the reference backend's.
#include "backend/backend.hpp"

#include "backend/cpu_kernels.hpp"
#include "spikeline/hw/common_reference.hpp"
#include "spikeline/hw/spatial_dedup.hpp"
#include "spikeline/hw/threshold_detector.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace spikeline {
namespace {

/// Runs a function on `size` workers (the caller is worker 0) and waits for all of them.
class WorkerPool {
public:
    explicit WorkerPool(int size) {
        for (int w = 1; w < size; ++w)
            threads_.emplace_back([this, w] { worker_loop(w); });
    }

    ~WorkerPool() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
            ++generation_;
        }
        wake_.notify_all();
        for (auto& t : threads_)
            t.join();
    }

    void run(const std::function<void(int)>& job) {
        if (threads_.empty()) {
            job(0);
            return;
        }
        {
            std::lock_guard lock(mutex_);
            job_ = &job;
            pending_ = static_cast<int>(threads_.size());
            ++generation_;
        }
        wake_.notify_all();
        job(0);
        std::unique_lock lock(mutex_);
        done_.wait(lock, [this] { return pending_ == 0; });
    }

private:
    void worker_loop(int index) {
        std::uint64_t seen = 0;
        for (;;) {
            const std::function<void(int)>* job = nullptr;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                if (stopping_)
                    return;
                job = job_;
            }
            (*job)(index);
            {
                std::lock_guard lock(mutex_);
                --pending_;
            }
            done_.notify_one();
        }
    }

    std::vector<std::thread> threads_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    const std::function<void(int)>* job_ = nullptr;
    std::uint64_t generation_ = 0;
    int pending_ = 0;
    bool stopping_ = false;
};

void widen(const std::int16_t* __restrict in, std::int32_t* __restrict out, int begin, int end) {
    for (int ch = begin; ch < end; ++ch)
        out[ch] = in[ch];
}

struct TimedCandidate {
    std::uint64_t emitted_at;
    SpikeEvent event;
};

class CpuBackend final : public Backend {
public:
    static constexpr std::size_t kBlockFrames = 512;

    CpuBackend(const HwParams& params, int threads)
        : params_(std::make_unique<HwParams>(params)), bandpass_(params, params.n_channels),
          detector_(std::make_unique<hw::DetectorState<HwConfig>>()),
          dedup_(std::make_unique<hw::DedupState<HwConfig>>()), n_channels_(params.n_channels),
          n_workers_(std::clamp(threads, 1, std::max(1, params.n_channels / 32))), pool_(n_workers_),
          widened_(static_cast<std::size_t>(n_workers_) * static_cast<std::size_t>(n_channels_)),
          filtered_(kBlockFrames * static_cast<std::size_t>(n_channels_)), referenced_(filtered_.size()),
          partial_sums_(static_cast<std::size_t>(n_workers_) * kBlockFrames * HwConfig::max_groups),
          candidates_(static_cast<std::size_t>(n_workers_)) {
        hw::reset_detector(*detector_, *params_);
        // Equal channel ranges, multiples of 32 so that threads never share a cache line of state.
        const int per_worker = (n_channels_ + n_workers_ - 1) / n_workers_;
        const int aligned = (per_worker + 31) / 32 * 32;
        for (int w = 0; w <= n_workers_; ++w)
            bounds_.push_back(std::min(n_channels_, w * aligned));
        for (int w = 0; w < n_workers_; ++w)
            runs_.push_back(cpu::reference_runs(params, bounds_[static_cast<std::size_t>(w)],
                                                bounds_[static_cast<std::size_t>(w) + 1]));
    }

    std::string name() const override { return "cpu"; }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        for (std::size_t start = 0; start < n_frames; start += kBlockFrames)
            process_block(frames + start * static_cast<std::size_t>(n_channels_),
                          std::min(kBlockFrames, n_frames - start), events);
    }

    void finish(std::vector<SpikeEvent>& events) override {
        auto add = [this](const SpikeEvent& c) { hw::dedup_add(*dedup_, c); };
        hw::flush_detector(*detector_, frame_, 0, n_channels_, add);
        hw::dedup_advance(*dedup_, *params_, frame_, true, [&events](const SpikeEvent& e) { events.push_back(e); });
    }

    StageSeconds stage_seconds() const override { return seconds_; }
    std::uint64_t dropped_candidates() const override { return dedup_->dropped; }

private:
    using Clock = std::chrono::steady_clock;

    void process_block(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) {
        const std::size_t stride = static_cast<std::size_t>(n_channels_);
        const auto t0 = Clock::now();
        pool_.run([&](int w) {
            const auto& runs = runs_[static_cast<std::size_t>(w)];
            std::int32_t* sums = &partial_sums_[static_cast<std::size_t>(w) * kBlockFrames * HwConfig::max_groups];
            std::fill(sums, sums + n_frames * HwConfig::max_groups, 0);
            const int begin = bounds_[static_cast<std::size_t>(w)];
            const int end = bounds_[static_cast<std::size_t>(w) + 1];
            // Frame by frame over the whole range: sequential access lets the prefetchers keep up (channel chunks
            // over many frames were 3x slower: strided rows defeat them).
            for (std::size_t f = 0; f < n_frames; ++f) {
                std::int32_t* filtered = &filtered_[f * stride];
                widen(frames + f * stride, &widened_[static_cast<std::size_t>(w) * stride], begin, end);
                for (const cpu::ChannelRun& run : runs) {
                    const std::int32_t sum =
                        bandpass_.filter(&widened_[static_cast<std::size_t>(w) * stride], filtered, run.begin, run.end);
                    if (run.group >= 0)
                        sums[f * HwConfig::max_groups + static_cast<std::size_t>(run.group)] += sum;
                }
            }
        });
        const auto t1 = Clock::now();
        pool_.run([&](int w) {
            const int begin = bounds_[static_cast<std::size_t>(w)];
            const int end = bounds_[static_cast<std::size_t>(w) + 1];
            auto& mine = candidates_[static_cast<std::size_t>(w)];
            mine.clear();
            std::int32_t totals[HwConfig::max_groups];
            std::int32_t means[HwConfig::max_groups];
            for (std::size_t f = 0; f < n_frames; ++f) {
                std::fill(std::begin(totals), std::end(totals), 0);
                for (int other = 0; other < n_workers_; ++other) {
                    const std::int32_t* sums =
                        &partial_sums_[(static_cast<std::size_t>(other) * kBlockFrames + f) * HwConfig::max_groups];
                    for (int g = 0; g < HwConfig::max_groups; ++g)
                        totals[g] += sums[g];
                }
                hw::group_means(*params_, totals, means);
                const std::uint64_t frame = frame_ + f;
                bool any = false;
                for (const cpu::ChannelRun& run : runs_[static_cast<std::size_t>(w)])
                    any |= cpu::reference_and_flag(*detector_, *params_, run, run.group >= 0 ? means[run.group] : 0,
                                                   frame, &filtered_[f * stride], &referenced_[f * stride]);
                if (any)
                    hw::align_flagged(*detector_, *params_, frame, &referenced_[f * stride], begin, end,
                                      [&mine, frame](const SpikeEvent& c) {
                                          mine.push_back({frame, c});
                                      });
            }
        });
        const auto t2 = Clock::now();
        std::vector<std::size_t> next(static_cast<std::size_t>(n_workers_), 0);
        auto emit = [&events](const SpikeEvent& e) { events.push_back(e); };
        for (std::size_t f = 0; f < n_frames; ++f) {
            const std::uint64_t frame = frame_ + f;
            for (std::size_t w = 0; w < candidates_.size(); ++w)
                for (; next[w] < candidates_[w].size() && candidates_[w][next[w]].emitted_at == frame; ++next[w])
                    hw::dedup_add(*dedup_, candidates_[w][next[w]].event);
            hw::dedup_advance(*dedup_, *params_, frame, false, emit);
        }
        frame_ += n_frames;
        const auto t3 = Clock::now();
        seconds_.bandpass += std::chrono::duration<double>(t1 - t0).count();
        seconds_.detect += std::chrono::duration<double>(t2 - t1).count();
        seconds_.dedup += std::chrono::duration<double>(t3 - t2).count();
    }

    std::unique_ptr<HwParams> params_;
    cpu::DoubleBandpass bandpass_;
    std::unique_ptr<hw::DetectorState<HwConfig>> detector_;
    std::unique_ptr<hw::DedupState<HwConfig>> dedup_;
    int n_channels_;
    int n_workers_;
    WorkerPool pool_;
    std::vector<int> bounds_;
    std::vector<std::vector<cpu::ChannelRun>> runs_;
    std::vector<std::int32_t> widened_; ///< one frame per worker, int16 samples widened for the filter
    std::vector<std::int32_t> filtered_;
    std::vector<std::int32_t> referenced_;
    std::vector<std::int32_t> partial_sums_;
    std::vector<std::vector<TimedCandidate>> candidates_;
    std::uint64_t frame_ = 0;
    StageSeconds seconds_;
};

} // namespace

std::unique_ptr<Backend> make_cpu_backend(const HwParams& params, int threads) {
    return std::make_unique<CpuBackend>(params, threads);
}

} // namespace spikeline
