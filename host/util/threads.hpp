#pragma once
// Names and scheduling classes of the threads a run starts. A live stream's reader and pipeline may run as SCHED_FIFO
// (latency); background work runs as SCHED_BATCH (never preempts them when it wakes) or SCHED_IDLE (only otherwise idle
// CPU time); names tell the threads apart in `top -H`, `perf sched` and a debugger.
#include <cstddef>
#include <functional>
#include <string>

namespace spikeline {

/// Names the calling thread (at most 15 characters are kept); the process's main thread keeps its name.
void name_this_thread(const char* name);

/// Puts the calling thread in the SCHED_FIFO class, so that compilers and other batch work cannot delay it; returns
/// an empty string or why the kernel refused (it needs root or CAP_SYS_NICE). priority <= 0: does nothing.
std::string make_thread_realtime(int priority);

/// Puts the calling thread in the SCHED_BATCH class: its fair share of the CPU, but waking up it never preempts a
/// running thread (on 2 cores a woken worker would otherwise take the core of the thread that woke it).
void make_thread_batch();

/// Puts the calling thread in the SCHED_IDLE class (best effort), so that it only gets otherwise idle CPU time.
void make_thread_idle();

/// Runs body(0) ... body(n - 1) on up to `threads` threads (the caller is one of them), each index once, in no
/// particular order; returns when all are done and rethrows the first exception a body threw.
void parallel_for(int threads, std::size_t n, const std::function<void(std::size_t)>& body);

} // namespace spikeline
