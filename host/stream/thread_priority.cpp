#include "stream/thread_priority.hpp"

#include <cstring>
#include <pthread.h>
#include <sched.h>

namespace spikeline::stream {

std::string make_thread_realtime(int priority) {
    if (priority <= 0)
        return "";
    sched_param parameters{};
    parameters.sched_priority = priority;
    const int error = ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &parameters);
    return error == 0 ? "" : std::string("SCHED_FIFO refused: ") + std::strerror(error);
}

void make_thread_idle() {
    sched_param idle{};
    ::sched_setscheduler(0, SCHED_IDLE, &idle); // with pid 0 on Linux: this thread only
}

} // namespace spikeline::stream
