#pragma once
// Jobs run one after another, in the order given, on one background thread: work that must keep its order but need
// not hold up the thread that gives it (a pass's handling of chunks behind their detection).
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace spikeline {

class SerialTasks {
public:
    /// At most max_waiting jobs wait (add() blocks until one starts): what they hold stays bounded.
    explicit SerialTasks(std::size_t max_waiting);
    /// Waits for the job running; drops the others (call wait() first to run them all and see their errors).
    ~SerialTasks();
    SerialTasks(const SerialTasks&) = delete;
    SerialTasks& operator=(const SerialTasks&) = delete;

    /// Queues a job (waiting for room); rethrows the error of an earlier one (and then runs no more of them).
    void add(std::function<void()> job);
    /// Waits until every job given has run; rethrows the first error.
    void wait();

private:
    void run();
    void rethrow_locked();

    std::size_t max_waiting_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<std::function<void()>> jobs_;
    bool running_job_ = false;
    bool stopping_ = false;
    std::exception_ptr error_;
    std::thread thread_;
};

} // namespace spikeline
