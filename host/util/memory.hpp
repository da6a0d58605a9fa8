#pragma once
#include <cstddef>

namespace spikeline {

/// Peak resident set size of this process so far, in bytes (getrusage).
std::size_t peak_rss_bytes();

} // namespace spikeline
