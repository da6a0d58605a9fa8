#include "util/threads.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <pthread.h>
#include <sched.h>
#include <thread>
#include <vector>

namespace spikeline {

void name_this_thread(const char* name) {
    ::pthread_setname_np(::pthread_self(), name);
}

std::string make_thread_realtime(int priority) {
    if (priority <= 0)
        return "";
    sched_param parameters{};
    parameters.sched_priority = priority;
    const int error = ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &parameters);
    return error == 0 ? "" : std::string("SCHED_FIFO refused: ") + std::strerror(error);
}

void make_thread_batch() {
    sched_param none{};
    ::sched_setscheduler(0, SCHED_BATCH, &none); // with pid 0 on Linux: this thread only
}

void make_thread_idle() {
    sched_param none{};
    ::sched_setscheduler(0, SCHED_IDLE, &none); // with pid 0 on Linux: this thread only
}

void parallel_for(int threads, std::size_t n, const std::function<void(std::size_t)>& body) {
    std::atomic<std::size_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto work = [&] {
        for (std::size_t k = next++; k < n; k = next++) {
            try {
                body(k);
            } catch (...) {
                const std::lock_guard<std::mutex> lock(error_mutex);
                if (!error)
                    error = std::current_exception();
                next = n; // the others stop at their next index
            }
        }
    };
    const std::size_t helpers = std::min<std::size_t>(static_cast<std::size_t>(std::max(threads, 1)), n) - (n > 0);
    std::vector<std::thread> started;
    for (std::size_t t = 0; t < helpers; ++t)
        started.emplace_back(work);
    work();
    for (std::thread& thread : started)
        thread.join();
    if (error)
        std::rethrow_exception(error);
}

} // namespace spikeline
