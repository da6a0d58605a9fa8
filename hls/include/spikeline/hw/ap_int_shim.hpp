#pragma once
/// @file ap_int_shim.hpp
/// Arbitrary-width integers with the API subset of Vitis HLS's ap_int<W> / ap_uint<W> that L1 and the kernels use:
/// construction from any integer (the value wraps to W bits, two's complement for ap_int), implicit conversion to a
/// native integer (so +, -, *, comparisons and shifts compute on the full native value, as ap_int's arithmetic
/// widens), range(hi, lo) and bit select, to_int / to_uint / to_int64 / to_uint64, and the product of two widths
/// as the sum of their widths (what tells HLS the multiplier's size). W is at most 64.
/// Under Vitis HLS (__SYNTHESIS__) the vendor's <ap_int.h> replaces this file: the code using it is unchanged.
#ifdef __SYNTHESIS__
#include <ap_int.h>
#else
#include <cstdint>

template <int W> class ap_uint;

/// Signed integer of W bits (1..64).
template <int W> class ap_int {
    static_assert(W >= 1 && W <= 64, "ap_int width must be 1..64 in this shim");

public:
    ap_int() = default;
    template <class T> ap_int(T value) : value_(wrap(static_cast<std::int64_t>(value))) {}
    template <int V> ap_int(const ap_int<V>& other) : value_(wrap(other.to_int64())) {}
    template <int V> ap_int(const ap_uint<V>& other) : value_(wrap(static_cast<std::int64_t>(other.to_uint64()))) {}

    operator std::int64_t() const { return value_; }
    int to_int() const { return static_cast<int>(value_); }
    unsigned to_uint() const { return static_cast<unsigned>(value_); }
    std::int64_t to_int64() const { return value_; }
    std::uint64_t to_uint64() const { return static_cast<std::uint64_t>(value_); }

    /// Bits hi..lo (hi >= lo) as an unsigned value.
    std::uint64_t range(int hi, int lo) const {
        const int width = hi - lo + 1;
        const std::uint64_t bits = static_cast<std::uint64_t>(value_) >> lo;
        return width >= 64 ? bits : bits & ((std::uint64_t{1} << width) - 1);
    }
    bool operator[](int bit) const { return ((static_cast<std::uint64_t>(value_) >> bit) & 1u) != 0; }

    template <class T> ap_int& operator+=(T rhs) { return *this = ap_int(value_ + static_cast<std::int64_t>(rhs)); }
    template <class T> ap_int& operator-=(T rhs) { return *this = ap_int(value_ - static_cast<std::int64_t>(rhs)); }

private:
    // Sign-extends the low W bits (arithmetic right shift of a left-aligned value).
    static std::int64_t wrap(std::int64_t value) {
        constexpr int unused = 64 - W;
        return unused == 0 ? value : static_cast<std::int64_t>(static_cast<std::uint64_t>(value) << unused) >> unused;
    }
    std::int64_t value_ = 0;
};

/// Unsigned integer of W bits (1..64).
template <int W> class ap_uint {
    static_assert(W >= 1 && W <= 64, "ap_uint width must be 1..64 in this shim");

public:
    ap_uint() = default;
    template <class T> ap_uint(T value) : value_(wrap(static_cast<std::uint64_t>(value))) {}
    template <int V> ap_uint(const ap_uint<V>& other) : value_(wrap(other.to_uint64())) {}
    template <int V> ap_uint(const ap_int<V>& other) : value_(wrap(other.to_uint64())) {}

    operator std::uint64_t() const { return value_; }
    int to_int() const { return static_cast<int>(value_); }
    unsigned to_uint() const { return static_cast<unsigned>(value_); }
    std::int64_t to_int64() const { return static_cast<std::int64_t>(value_); }
    std::uint64_t to_uint64() const { return value_; }

    std::uint64_t range(int hi, int lo) const {
        const int width = hi - lo + 1;
        const std::uint64_t bits = value_ >> lo;
        return width >= 64 ? bits : bits & ((std::uint64_t{1} << width) - 1);
    }
    bool operator[](int bit) const { return ((value_ >> bit) & 1u) != 0; }

    template <class T> ap_uint& operator+=(T rhs) { return *this = ap_uint(value_ + static_cast<std::uint64_t>(rhs)); }
    template <class T> ap_uint& operator-=(T rhs) { return *this = ap_uint(value_ - static_cast<std::uint64_t>(rhs)); }

private:
    static std::uint64_t wrap(std::uint64_t value) {
        return W == 64 ? value : value & ((std::uint64_t{1} << (W % 64)) - 1);
    }
    std::uint64_t value_ = 0;
};

/// The product of two signed widths is exact in W1 + W2 bits (what the vendor's operator* returns).
template <int W1, int W2> ap_int<W1 + W2> operator*(const ap_int<W1>& a, const ap_int<W2>& b) {
    static_assert(W1 + W2 <= 64, "product wider than 64 bits");
    return ap_int<W1 + W2>(a.to_int64() * b.to_int64());
}
#endif
