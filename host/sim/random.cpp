#include "sim/random.hpp"

namespace spikeline::sim {

const std::vector<float>& gaussian_table() {
    static const std::vector<float> table = [] {
        constexpr std::size_t size = std::size_t{1} << 16;
        constexpr std::size_t half = size / 2;
        std::vector<double> quantiles(size);
        double x = 0.0;
        for (std::size_t i = 0; i < half; ++i) {
            // Upper-tail probability of level half + i; Newton on Q(x) = erfc(x / sqrt 2) / 2 from the previous level.
            const double tail = (static_cast<double>(half - i) - 0.5) / static_cast<double>(size);
            for (int iteration = 0; iteration < 60; ++iteration) {
                const double density = std::exp(-0.5 * x * x) / std::sqrt(2.0 * std::numbers::pi);
                const double step = (0.5 * std::erfc(x / std::numbers::sqrt2) - tail) / density;
                x += step;
                if (std::abs(step) < 1e-13)
                    break;
            }
            quantiles[half + i] = x;
            quantiles[half - 1 - i] = -x;
        }
        double power = 0.0;
        for (double q : quantiles)
            power += q * q;
        const double scale = 1.0 / std::sqrt(power / static_cast<double>(size));
        std::vector<float> result(size);
        for (std::size_t i = 0; i < size; ++i)
            result[i] = static_cast<float>(quantiles[i] * scale);
        return result;
    }();
    return table;
}

} // namespace spikeline::sim
