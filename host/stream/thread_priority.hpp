#pragma once
// Scheduling classes of the stream's threads: SCHED_FIFO for the reader and the pipeline (latency), SCHED_IDLE for
// calibration (never in their way).
#include <string>

namespace spikeline::stream {

/// Puts the calling thread in the SCHED_FIFO class, so that compilers and other batch work cannot delay it; returns
/// an empty string or why the kernel refused (it needs root or CAP_SYS_NICE). priority <= 0: does nothing.
std::string make_thread_realtime(int priority);

/// Puts the calling thread in the SCHED_IDLE class (best effort), so that it only gets otherwise idle CPU time.
void make_thread_idle();

} // namespace spikeline::stream
