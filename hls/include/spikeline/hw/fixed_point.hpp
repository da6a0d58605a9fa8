#pragma once
/// @file fixed_point.hpp
/// Explicit rounding and saturation helpers: every narrowing in L1 goes through one of these, so the RTL and
/// any vectorised rewrite know exactly which bits to produce.
#include <cstdint>

namespace spikeline {
namespace hw {

/// Arithmetic shift right by `shift` bits with rounding half up: floor(value / 2^shift + 1/2).
inline constexpr std::int64_t round_shift(std::int64_t value, int shift) {
    return (value + (std::int64_t{1} << (shift - 1))) >> shift;
}

/// Clamps value to [low, high].
inline constexpr std::int64_t saturate(std::int64_t value, std::int64_t low, std::int64_t high) {
    return value < low ? low : (value > high ? high : value);
}

/// Clamps to the range of a signed integer of `bits` bits.
inline constexpr std::int32_t saturate_bits(std::int64_t value, int bits) {
    return static_cast<std::int32_t>(
        saturate(value, -(std::int64_t{1} << (bits - 1)), (std::int64_t{1} << (bits - 1)) - 1));
}

} // namespace hw
} // namespace spikeline
