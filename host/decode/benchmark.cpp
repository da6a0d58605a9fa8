#include "decode/benchmark.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <random>

namespace spikeline::decode {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point start, Clock::time_point end) {
    return std::chrono::duration<double>(end - start).count();
}

template <class Filter> void time_steps(Filter& filter, const Eigen::MatrixXd& counts, int passes, DecoderTiming& out) {
    std::vector<double> step_us;
    step_us.reserve(static_cast<std::size_t>(counts.cols()) * static_cast<std::size_t>(passes));
    Eigen::Vector2d sink = Eigen::Vector2d::Zero();
    for (int pass = 0; pass < passes; ++pass) {
        filter.reset();
        for (Eigen::Index k = 0; k < counts.cols(); ++k) {
            const auto start = Clock::now();
            sink += filter.step(counts.col(k));
            step_us.push_back(1e6 * seconds_between(start, Clock::now()));
        }
    }
    // The estimates must be used, or the steps could be optimised away.
    if (!sink.allFinite())
        step_us.push_back(0.0);
    std::sort(step_us.begin(), step_us.end());
    out.step_us_median = step_us[step_us.size() / 2];
    out.step_us_p99 =
        step_us[std::min(step_us.size() - 1, static_cast<std::size_t>(0.99 * static_cast<double>(step_us.size())))];
    out.step_us_max = step_us.back();
}

} // namespace

SyntheticSession synthetic_session(Eigen::Index n_inputs, Eigen::Index n_bins, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    SyntheticSession session;
    session.velocity.resize(2, n_bins);
    Eigen::Vector2d v = Eigen::Vector2d::Zero();
    for (Eigen::Index k = 0; k < n_bins; ++k) {
        v = 0.95 * v + 3.0 * Eigen::Vector2d(normal(rng), normal(rng)); // cm/s, a few seconds' correlation
        session.velocity.col(k) = v;
    }
    constexpr double kBinS = 0.02;
    session.counts.resize(n_inputs, n_bins);
    for (Eigen::Index i = 0; i < n_inputs; ++i) {
        const double baseline_hz = 2.0 + 10.0 * uniform(rng);
        const bool tuned = uniform(rng) < 0.6;
        const double depth = tuned ? baseline_hz / 20.0 : 0.0; // full modulation at 20 cm/s
        const double direction = 2.0 * std::numbers::pi * uniform(rng);
        for (Eigen::Index k = 0; k < n_bins; ++k) {
            const double drive =
                session.velocity(0, k) * std::cos(direction) + session.velocity(1, k) * std::sin(direction);
            const double rate_hz = std::max(0.0, baseline_hz + depth * drive);
            session.counts(i, k) = std::poisson_distribution<int>(rate_hz * kBinS)(rng);
        }
    }
    return session;
}

std::vector<DecoderTiming> time_decoders(const SyntheticSession& session, int wiener_lags, int passes) {
    std::vector<DecoderTiming> timings;
    for (const bool steady : {false, true}) {
        DecoderTiming timing;
        timing.name = steady ? "kalman_steady_state" : "kalman";
        KalmanOptions options;
        options.steady_state = steady;
        const auto start = Clock::now();
        const KalmanModel model = train_kalman(session.counts, session.velocity, options);
        timing.train_seconds = seconds_between(start, Clock::now());
        KalmanFilter filter(model);
        time_steps(filter, session.counts, passes, timing);
        timings.push_back(timing);
    }
    DecoderTiming timing;
    timing.name = "wiener";
    WienerOptions options;
    options.lags = wiener_lags;
    const auto start = Clock::now();
    const WienerModel model = train_wiener(session.counts, 0, session.velocity, options);
    timing.train_seconds = seconds_between(start, Clock::now());
    WienerFilter filter(model);
    time_steps(filter, session.counts, passes, timing);
    timings.push_back(timing);
    return timings;
}

} // namespace spikeline::decode
