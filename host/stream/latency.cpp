#include "stream/latency.hpp"

#include <algorithm>
#include <cmath>

namespace spikeline::stream {
namespace {

constexpr std::size_t kBins = 100'000; // 1 us each: 0..100 ms, then the overflow bin

} // namespace

LatencyHistogram::LatencyHistogram() : bins_(kBins + 1, 0) {}

void LatencyHistogram::add(std::int64_t nanoseconds) {
    const std::int64_t ns = std::max<std::int64_t>(0, nanoseconds);
    const auto bin = std::min<std::size_t>(static_cast<std::size_t>(ns / 1000), kBins);
    ++bins_[bin];
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
            return bin == kBins ? max_us() : static_cast<double>(bin) + 1.0; // upper edge of the bin
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
