#include "util/threads.hpp"

#include <cstring>
#include <pthread.h>
#include <sched.h>

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

} // namespace spikeline
