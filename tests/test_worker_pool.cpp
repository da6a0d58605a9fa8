// The CPU backend's barrier: every worker runs every job exactly once and run() returns only after all of them,
// whether the threads meet while spinning or have to sleep and be woken. SerialTasks: sort's jobs behind detection.
#include "backend/worker_pool.hpp"
#include "pipeline/serial_tasks.hpp"
#include "util/threads.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace spikeline {
namespace {

void expect_every_worker_runs_every_job(int size, int runs, std::chrono::microseconds job_time,
                                        std::chrono::microseconds idle_between_runs) {
    WorkerPool pool(size);
    std::vector<std::atomic<int>> done(static_cast<std::size_t>(size));
    std::atomic<bool> caller_ran_as_worker_0{false};
    const auto caller = std::this_thread::get_id();
    for (int r = 0; r < runs; ++r) {
        pool.run([&](int w) {
            if (w == 0 && std::this_thread::get_id() == caller)
                caller_ran_as_worker_0 = true;
            // Worker 1 is the slowest: run() must still wait for it.
            if (w == 1)
                std::this_thread::sleep_for(job_time);
            done[static_cast<std::size_t>(w)].fetch_add(1);
        });
        for (int w = 0; w < size; ++w)
            ASSERT_EQ(done[static_cast<std::size_t>(w)].load(), r + 1) << "worker " << w << ", run " << r;
        if (idle_between_runs.count() > 0)
            std::this_thread::sleep_for(idle_between_runs);
    }
    EXPECT_TRUE(caller_ran_as_worker_0);
}

TEST(WorkerPool, BackToBackShortJobsMeetWhileSpinning) {
    expect_every_worker_runs_every_job(2, 20000, std::chrono::microseconds(0), std::chrono::microseconds(0));
}

TEST(WorkerPool, JobsLongerThanTheSpinWakeTheSleepingCaller) {
    expect_every_worker_runs_every_job(2, 50, std::chrono::microseconds(2000), std::chrono::microseconds(0));
}

TEST(WorkerPool, IdleWorkersAreWokenForTheNextJob) {
    expect_every_worker_runs_every_job(2, 50, std::chrono::microseconds(0), std::chrono::microseconds(2000));
}

TEST(WorkerPool, MoreWorkersThanCores) {
    expect_every_worker_runs_every_job(5, 500, std::chrono::microseconds(50), std::chrono::microseconds(0));
}

TEST(WorkerPool, OneWorkerRunsTheJobOnTheCaller) {
    expect_every_worker_runs_every_job(1, 10, std::chrono::microseconds(0), std::chrono::microseconds(0));
}

// The CPU backend's one-sided barriers: a waiter returns only once the count is reached, whether it meets the others
// while spinning or sleeps (here the last advance comes long after any spin budget).
TEST(PhaseCounter, WaitersReturnOnlyWhenEveryThreadHasAdvanced) {
    for (auto delay : {std::chrono::microseconds(0), std::chrono::microseconds(3000)}) {
        SCOPED_TRACE("delay " + std::to_string(delay.count()) + " us");
        constexpr int kThreads = 3, kRounds = 200;
        PhaseCounter counter;
        std::vector<std::atomic<int>> rounds_done(kThreads);
        std::atomic<bool> early{false};
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t)
            threads.emplace_back([&, t] {
                auto budget = PhaseCounter::kMaxSpin;
                for (int r = 0; r < kRounds; ++r) {
                    if (t == kThreads - 1 && r % 50 == 0)
                        std::this_thread::sleep_for(delay);
                    rounds_done[static_cast<std::size_t>(t)].store(r + 1);
                    counter.advance();
                    counter.wait_for(static_cast<std::uint32_t>((r + 1) * kThreads), budget);
                    for (const auto& done : rounds_done)
                        if (done.load() < r + 1)
                            early = true;
                }
            });
        for (auto& thread : threads)
            thread.join();
        EXPECT_FALSE(early) << "a thread passed a round before every thread had finished it";
    }
}

TEST(ParallelFor, RunsEveryIndexOnceOnAsManyThreadsAsAskedAndRethrowsAFailure) {
    for (const int threads : {1, 2, 5}) {
        for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000}}) {
            std::vector<std::atomic<int>> runs(n);
            parallel_for(threads, n, [&](std::size_t k) { runs[k].fetch_add(1); });
            for (std::size_t k = 0; k < n; ++k)
                EXPECT_EQ(runs[k].load(), 1) << "index " << k << " of " << n << " on " << threads << " threads";
        }
    }
    std::atomic<int> ran{0};
    EXPECT_THROW(parallel_for(2, 100,
                              [&](std::size_t k) {
                                  ran.fetch_add(1);
                                  if (k == 7)
                                      throw std::runtime_error("index 7 failed");
                              }),
                 std::runtime_error);
    EXPECT_GE(ran.load(), 8);
}

TEST(SerialTasks, RunsJobsInTheirOrderOnAnotherThread) {
    SerialTasks tasks(4);
    std::vector<int> order; // touched by the tasks' thread only, until wait()
    std::atomic<bool> on_caller{false};
    const auto caller = std::this_thread::get_id();
    for (int i = 0; i < 200; ++i)
        tasks.add([&, i] {
            on_caller = on_caller || std::this_thread::get_id() == caller;
            order.push_back(i);
        });
    tasks.wait();
    ASSERT_EQ(order.size(), 200u);
    for (int i = 0; i < 200; ++i)
        EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
    EXPECT_FALSE(on_caller);
}

TEST(SerialTasks, AddWaitsForRoomBeyondMaxWaiting) {
    SerialTasks tasks(2);
    std::atomic<bool> release{false};
    std::atomic<int> added{0}, ran{0};
    std::thread adder([&] {
        for (int i = 0; i < 4; ++i) {
            tasks.add([&, i] {
                while (i == 0 && !release)
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                ran.fetch_add(1);
            });
            added.fetch_add(1);
        }
    });
    // The first job runs (and holds), two wait: the fourth add() waits for room.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (added < 3 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    EXPECT_EQ(added.load(), 3);
    EXPECT_EQ(ran.load(), 0);
    release = true;
    adder.join();
    tasks.wait();
    EXPECT_EQ(ran.load(), 4);
}

TEST(SerialTasks, AFailedJobStopsTheOthersAndItsErrorReachesTheCaller) {
    SerialTasks tasks(8);
    std::atomic<bool> release{false};
    std::atomic<int> ran_after{0};
    tasks.add([&] {
        while (!release)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        throw std::runtime_error("chunk 1 failed");
    });
    tasks.add([&] { ran_after.fetch_add(1); });
    release = true;
    EXPECT_THROW(tasks.wait(), std::runtime_error);
    EXPECT_THROW(tasks.add([&] { ran_after.fetch_add(1); }), std::runtime_error);
    EXPECT_EQ(ran_after.load(), 0);
}

} // namespace
} // namespace spikeline
