#include "backend/worker_pool.hpp"

#include "util/threads.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace spikeline {
namespace {

/// Tells the core this is a spin-wait loop (frees resources for the other hyperthread, saves power).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

// Longer than a block's phase on one core (about 0.1 ms for 256 frames of 1024 channels), short enough that an
// idle live stream (a block per millisecond) leaves the cores to its reader.
constexpr auto kMaxSpin = PhaseCounter::kMaxSpin;
constexpr auto kMinSpin = std::chrono::microseconds(2);

/// Spins until done() or `budget` has passed; returns done(). The budget adapts: a wait that spinning did not
/// shorten (the other thread was not running, e.g. the machine is oversubscribed) quarters it, a successful one
/// doubles it, so that an oversubscribed pool behaves like a plain sleeping one.
template <class DONE> bool spin_until(std::chrono::microseconds& budget, DONE&& done) {
    const auto deadline = std::chrono::steady_clock::now() + budget;
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (done()) {
                budget = std::min(kMaxSpin, budget * 2);
                return true;
            }
            cpu_relax();
        }
        if (std::chrono::steady_clock::now() > deadline) {
            budget = std::max(kMinSpin, budget / 4);
            return done();
        }
        // Lets another runnable thread have this core: on an oversubscribed machine it may be the one waited for.
        std::this_thread::yield();
    }
}

} // namespace

void PhaseCounter::wait_for(std::uint32_t target, std::chrono::microseconds& spin_budget) const {
    auto reached = [this, target] { return value_.load(std::memory_order_acquire) >= target; };
    if (spin_until(spin_budget, reached))
        return;
    for (std::uint32_t seen = value_.load(std::memory_order_acquire); seen < target;
         seen = value_.load(std::memory_order_acquire))
        value_.wait(seen, std::memory_order_acquire);
}

WorkerPool::WorkerPool(int size) : spin_budget_(kMaxSpin) {
    for (int w = 1; w < size; ++w)
        threads_.emplace_back([this, w] {
            name_this_thread("sl-worker");
            worker_loop(w);
        });
}

WorkerPool::~WorkerPool() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        ++generation_;
    }
    wake_.notify_all();
    for (auto& t : threads_)
        t.join();
}

void WorkerPool::run(const std::function<void(int)>& job) {
    if (threads_.empty()) {
        job(0);
        return;
    }
    job_ = &job;
    pending_.store(static_cast<int>(threads_.size()), std::memory_order_relaxed);
    {
        // Under the mutex so that a worker checking generation_ before it sleeps cannot miss the change.
        std::lock_guard lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    job(0);
    auto finished = [this] { return pending_.load(std::memory_order_acquire) == 0; };
    if (spin_until(spin_budget_, finished))
        return;
    std::unique_lock lock(mutex_);
    done_.wait(lock, finished);
}

void WorkerPool::worker_loop(int index) {
    std::uint64_t seen = 0;
    auto spin_budget = kMaxSpin;
    for (;;) {
        auto started = [this, &seen] { return generation_.load(std::memory_order_acquire) != seen; };
        if (!spin_until(spin_budget, started)) {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, started);
        }
        seen = generation_.load(std::memory_order_acquire);
        if (stopping_)
            return;
        (*job_)(index);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            // Taking the mutex orders this notification after a sleeping caller's check of pending_.
            { std::lock_guard lock(mutex_); }
            done_.notify_one();
        }
    }
}

} // namespace spikeline
