#pragma once
// A bounded multi-producer, multi-consumer queue between the stream's threads. Producers choose the overrun policy
// per call: push() waits for room (back-pressure), try_push() refuses when full so the caller can count the loss.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

namespace spikeline::stream {

template <class T> class BoundedQueue {
public:
    explicit BoundedQueue(std::size_t capacity) : capacity_(capacity) {}

    /// Waits for room; false when the queue was closed.
    bool push(T item) {
        std::unique_lock lock(mutex_);
        not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
        if (closed_)
            return false;
        add(std::move(item));
        lock.unlock();
        not_empty_.notify_one();
        return true;
    }

    /// Adds only if there is room; false when full or closed (item is left untouched).
    bool try_push(T& item) {
        std::unique_lock lock(mutex_);
        if (closed_ || items_.size() >= capacity_)
            return false;
        add(std::move(item));
        lock.unlock();
        not_empty_.notify_one();
        return true;
    }

    /// The next item; nullopt when the queue is closed and empty, or after timeout.
    std::optional<T> pop(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        if (!not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); }) || items_.empty())
            return std::nullopt;
        T item = std::move(items_.front());
        items_.pop_front();
        lock.unlock();
        not_full_.notify_one();
        return item;
    }

    /// No more pushes; consumers drain what is left.
    void close() {
        {
            std::lock_guard lock(mutex_);
            closed_ = true;
        }
        not_empty_.notify_all();
        not_full_.notify_all();
    }

    bool closed_and_empty() const {
        std::lock_guard lock(mutex_);
        return closed_ && items_.empty();
    }
    std::size_t depth() const {
        std::lock_guard lock(mutex_);
        return items_.size();
    }
    std::size_t high_water() const {
        std::lock_guard lock(mutex_);
        return high_water_;
    }
    std::size_t capacity() const { return capacity_; }

private:
    void add(T&& item) {
        items_.push_back(std::move(item));
        if (items_.size() > high_water_)
            high_water_ = items_.size();
    }

    const std::size_t capacity_;
    mutable std::mutex mutex_;
    std::condition_variable not_empty_, not_full_;
    std::deque<T> items_;
    std::size_t high_water_ = 0;
    bool closed_ = false;
};

} // namespace spikeline::stream
