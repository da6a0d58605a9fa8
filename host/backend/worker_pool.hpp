#pragma once
// A fixed set of threads that run one job together and wait for each other: the CPU backend's per-block barrier.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace spikeline {

/// A count that the threads of a WorkerPool job advance and wait for: a one-sided barrier, so that a thread waits only
/// for the phase it needs (the CPU backend's de-duplication of one block overlaps the next block's band-pass).
class PhaseCounter {
public:
    /// Adds one and wakes the threads sleeping in wait_for.
    void advance() {
        value_.fetch_add(1, std::memory_order_release);
        value_.notify_all();
    }
    /// Back to 0; only while no thread uses the counter.
    void reset() { value_.store(0, std::memory_order_relaxed); }
    /// Returns once the count is at least target: spins within spin_budget (adapted as WorkerPool's), then sleeps.
    void wait_for(std::uint32_t target, std::chrono::microseconds& spin_budget) const;

    /// The longest spin before sleeping (and the budget a thread starts with).
    static constexpr std::chrono::microseconds kMaxSpin{200};

private:
    std::atomic<std::uint32_t> value_{0};
};

/// Runs a function on `size` workers (the caller is worker 0) and waits for all of them.
///
/// Threads spin for a short while before they sleep: a phase of a block lasts tens of microseconds, about as long
/// as waking a sleeping thread takes in a VM, so sleeping at every barrier cost most of the second thread's gain
/// (1.15x instead of 1.7x with two threads, docs/PERFORMANCE.md).
class WorkerPool {
public:
    explicit WorkerPool(int size);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    void run(const std::function<void(int)>& job);

private:
    void worker_loop(int index);

    std::vector<std::thread> threads_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    const std::function<void(int)>* job_ = nullptr;
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stopping_{false};
    std::chrono::microseconds spin_budget_; ///< the caller's (see spin_until in worker_pool.cpp)
};

} // namespace spikeline
