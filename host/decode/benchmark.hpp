#pragma once
// Timing of the decoders on synthetic sessions, for `spikeline bench --decoder` and bench/bench_decode.cpp.
#include "decode/decoders.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace spikeline::decode {

/// Counts (n x bins) and velocity (2 x bins) of a synthetic session: the velocity is a smooth random 2-D process
/// (AR(1) per bin), 60 % of the inputs are Poisson with a rate cosine-tuned to it (the rest untuned), rates of a
/// few Hz in 20 ms bins. Only the sizes matter for timing; the tuning makes the fits well posed.
struct SyntheticSession {
    Eigen::MatrixXd counts;
    Eigen::MatrixXd velocity;
};
SyntheticSession synthetic_session(Eigen::Index n_inputs, Eigen::Index n_bins, std::uint64_t seed);

/// Training wall time and per-bin step latencies of one decoder configuration.
struct DecoderTiming {
    std::string name;
    double train_seconds = 0;
    double step_us_median = 0;
    double step_us_p99 = 0;
    double step_us_max = 0;
};

/// Trains each configuration (Kalman with full update, Kalman steady-state, Wiener with `wiener_lags`) on the whole
/// session, then times every filter step over `passes` passes of the session's bins.
std::vector<DecoderTiming> time_decoders(const SyntheticSession& session, int wiener_lags, int passes);

} // namespace spikeline::decode
