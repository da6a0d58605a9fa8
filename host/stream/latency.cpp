#include "stream/latency.hpp"

#include <algorithm>
#include <cmath>

namespace spikeline::stream {
namespace {

constexpr std::int64_t kFineBins = 100'000;  // 1 us each: 0..100 ms
constexpr std::int64_t kCoarseBins = 99'000; // 100 us each: 100 ms..10 s, then the overflow bin
constexpr std::int64_t kCoarseUs = 100;
constexpr std::size_t kOverflow = static_cast<std::size_t>(kFineBins + kCoarseBins);

std::size_t bin_of(std::int64_t us) {
    if (us < kFineBins)
        return static_cast<std::size_t>(us);
    return static_cast<std::size_t>(std::min(kFineBins + (us - kFineBins) / kCoarseUs, kFineBins + kCoarseBins));
}

double upper_edge_us(std::size_t bin) {
    const auto b = static_cast<std::int64_t>(bin);
    return static_cast<double>(b < kFineBins ? b + 1 : kFineBins + (b - kFineBins + 1) * kCoarseUs);
}

} // namespace

LatencyHistogram::LatencyHistogram() : bins_(kOverflow + 1, 0) {}

void LatencyHistogram::add(std::int64_t nanoseconds) {
    const std::int64_t ns = std::max<std::int64_t>(0, nanoseconds);
    ++bins_[bin_of(ns / 1000)];
    ++count_;
    max_ns_ = std::max(max_ns_, ns);
    sum_ns_ += static_cast<long double>(ns);
}

double LatencyHistogram::percentile_us(double q) const {
    if (count_ == 0)
        return 0;
    const auto rank = static_cast<std::uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_)));
    std::uint64_t seen = 0;
    for (std::size_t bin = 0; bin < bins_.size(); ++bin) {
        seen += bins_[bin];
        if (seen >= std::max<std::uint64_t>(rank, 1))
            return bin == kOverflow ? max_us() : std::min(upper_edge_us(bin), max_us());
    }
    return max_us();
}

nlohmann::json LatencyHistogram::to_json() const {
    return {{"count", count_},
            {"p50_us", percentile_us(0.5)},
            {"p90_us", percentile_us(0.9)},
            {"p99_us", percentile_us(0.99)},
            {"max_us", max_us()},
            {"mean_us", mean_us()}};
}

} // namespace spikeline::stream
