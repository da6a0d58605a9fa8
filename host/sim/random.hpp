#pragma once
// Random numbers for the simulator: xoshiro256** seeded through splitmix64, one independent stream per purpose so
// that, e.g., the noise is identical whether or not units are simulated.
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <vector>

namespace spikeline::sim {

inline std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

enum class Stream : std::uint64_t {
    noise_parameters = 1,
    noise = 2,
    unit_parameters = 3,
    reaches = 4,
    tuning = 5,
    bursting_units = 6,
    distal_shapes = 7,
    background_units = 8,
    first_unit_spikes = 1000,
    first_unit_bursts = 1ULL << 32,
    first_background_spikes = 1ULL << 33
};

class Rng {
public:
    Rng() = default;
    Rng(std::uint64_t seed, std::uint64_t stream) {
        std::uint64_t mixer = seed;
        const std::uint64_t stream_key = splitmix64(mixer) ^ (stream * 0xd1b54a32d192ed03ULL);
        mixer = stream_key;
        for (std::uint64_t& word : state_)
            word = splitmix64(mixer);
    }
    Rng(std::uint64_t seed, Stream stream) : Rng(seed, static_cast<std::uint64_t>(stream)) {}

    std::uint64_t next() {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t shifted = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= shifted;
        state_[3] = rotl(state_[3], 45);
        return result;
    }
    // Uniform in [0, 1).
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    double uniform(double low, double high) { return low + (high - low) * uniform(); }
    double log_uniform(double low, double high) { return std::exp(uniform(std::log(low), std::log(high))); }
    double normal() {
        const double radius = std::sqrt(-2.0 * std::log(1.0 - uniform()));
        return radius * std::cos(2.0 * std::numbers::pi * uniform());
    }
    double exponential(double rate) { return -std::log(1.0 - uniform()) / rate; }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> state_{};
};

// Unit-variance Gaussian quantiles at 2^16 equally likely levels: 16 random bits give one normal deviate with a
// table lookup, which is what makes a billion noise samples a minute affordable. Tails reach +-4.3 sigma.
const std::vector<float>& gaussian_table();

// Fills count (a multiple of 4) unit normal deviates. Inline because it sits in the noise's per-frame loop.
inline void fill_normals(Rng& rng, const float* table, float* out, std::size_t count) {
    for (std::size_t i = 0; i < count; i += 4) {
        const std::uint64_t bits = rng.next();
        out[i] = table[bits & 0xffff];
        out[i + 1] = table[(bits >> 16) & 0xffff];
        out[i + 2] = table[(bits >> 32) & 0xffff];
        out[i + 3] = table[bits >> 48];
    }
}

} // namespace spikeline::sim
