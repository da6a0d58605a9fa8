#!/usr/bin/env bash
# Builds with AddressSanitizer and UndefinedBehaviorSanitizer into build-sanitize/ (or $SPIKELINE_SANITIZE_BUILD_DIR)
# and runs the default tests under them. Every finding fails the run, except those in third-party code listed in
# scripts/sanitizers/*.supp (each entry says why).
# --thread: ThreadSanitizer instead, into build-tsan/, on the tests whose threads share data (the CPU backend's
# workers, parallel clustering, sort's background chunk handling, the command line with several threads).
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizers=address,undefined
default_dir=build-sanitize
if [ "${1:-}" = "--thread" ]; then
    shift
    sanitizers=thread
    default_dir=build-tsan
fi
SPIKELINE_BUILD_DIR="${SPIKELINE_SANITIZE_BUILD_DIR:-$default_dir}"
export SPIKELINE_BUILD_DIR
if [ ! -f "$SPIKELINE_BUILD_DIR/build.ninja" ]; then
    scripts/setup.sh --packages-only
    cmake -S . -B "$SPIKELINE_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPIKELINE_SANITIZE=$sanitizers >/dev/null
fi
if [ "$sanitizers" = thread ]; then
    cmake --build "$SPIKELINE_BUILD_DIR" -j "$(nproc)" --target spikeline test_worker_pool test_backend test_sort test_cli
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
    threaded='^(PhaseCounter|ParallelFor|SerialTasks|WorkerPool)[.]|^BackendEquality[.]CpuEqualsReferenceForEveryThread'
    threaded+='|^SortCalibration[.]ClusteringOnSeveralThreads|^SortBackends[.]CpuEqualsReference'
    threaded+='|^CliTest[.](ThreadsAndBackends|SortThreadsAndChunks)'
    exec ctest --test-dir "$SPIKELINE_BUILD_DIR" -L default -R "$threaded" --output-on-failure -j "$(nproc)" "$@"
fi
cmake --build "$SPIKELINE_BUILD_DIR" -j "$(nproc)"
here="$(pwd)/scripts/sanitizers"
# (detect_stack_use_after_return is left off: with GCC 12 at -O3 it faults reading initializer_list constants.)
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$here/ubsan.supp"
# Not run here: the XRT noop-shim tests. XRT's libxrt_coreutil calls aligned_alloc(4096, n) with n not a multiple of
# 4096, which AddressSanitizer rejects as invalid (a check no runtime option or suppression turns off).
ctest --test-dir "$SPIKELINE_BUILD_DIR" -L default -E "^FpgaNoopXrtTest\." --output-on-failure -j "$(nproc)" "$@"
