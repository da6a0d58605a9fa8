#include "pipeline/serial_tasks.hpp"

namespace spikeline {

SerialTasks::SerialTasks(std::size_t max_waiting) : max_waiting_(max_waiting), thread_([this] { run(); }) {}

SerialTasks::~SerialTasks() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        jobs_.clear(); // (an exception unwinds past them: the running one ends, the others are not needed)
    }
    changed_.notify_all();
    thread_.join();
}

void SerialTasks::add(std::function<void()> job) {
    {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return jobs_.size() < max_waiting_ || error_; });
        rethrow_locked();
        jobs_.push_back(std::move(job));
    }
    changed_.notify_all();
}

void SerialTasks::wait() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return (jobs_.empty() && !running_job_) || error_; });
    rethrow_locked();
}

void SerialTasks::rethrow_locked() {
    if (error_)
        std::rethrow_exception(error_);
}

void SerialTasks::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        changed_.wait(lock, [this] { return !jobs_.empty() || stopping_; });
        if (jobs_.empty()) // stopping, every job run
            return;
        std::function<void()> job = std::move(jobs_.front());
        jobs_.pop_front();
        running_job_ = true;
        lock.unlock();
        changed_.notify_all(); // room for add()
        std::exception_ptr error;
        try {
            job();
        } catch (...) {
            error = std::current_exception();
        }
        lock.lock();
        running_job_ = false;
        if (error && !error_) {
            error_ = error;
            jobs_.clear(); // the jobs after a failed one would build on it
        }
        changed_.notify_all();
    }
}

} // namespace spikeline
