#pragma once
// Latency percentiles over any number of samples in constant memory: a histogram of 1 us bins up to 100 ms, 100 us
// bins up to 10 s (a run that falls behind still gets its real percentiles), one overflow bin beyond (its samples
// still set the maximum).
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace spikeline::stream {

class LatencyHistogram {
public:
    LatencyHistogram();
    void add(std::int64_t nanoseconds);
    std::uint64_t count() const { return count_; }
    /// The q-quantile (0..1) in microseconds, to the bin's upper edge (1 us, 100 us beyond 100 ms; the maximum in the
    /// overflow bin); 0 without samples.
    double percentile_us(double q) const;
    double max_us() const { return static_cast<double>(max_ns_) / 1000.0; }
    double mean_us() const { return count_ ? static_cast<double>(sum_ns_) / 1000.0 / static_cast<double>(count_) : 0; }
    /// {count, p50_us, p90_us, p99_us, max_us, mean_us}
    nlohmann::json to_json() const;

private:
    std::vector<std::uint64_t> bins_;
    std::uint64_t count_ = 0;
    std::int64_t max_ns_ = 0;
    long double sum_ns_ = 0;
};

} // namespace spikeline::stream
