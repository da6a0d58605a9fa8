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
