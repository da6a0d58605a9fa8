#include "util/memory.hpp"

#include <sys/resource.h>

namespace spikeline {

std::size_t peak_rss_bytes() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::size_t>(usage.ru_maxrss) * 1024; // Linux reports kilobytes
}

} // namespace spikeline
