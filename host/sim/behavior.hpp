#pragma once
// Behaviour: a 2-D cursor making minimum-jerk reaches to random targets in a square workspace, with a pause at
// every target, and the limits of the units tuned to its velocity. Positions in cm from the workspace centre, times
// in seconds.
#include "sim/random.hpp"
#include "sim/simulator.hpp"

#include <cstdint>

namespace spikeline::sim {

constexpr double kWorkspaceHalfWidthCm = 10.0;
constexpr double kReachPerCmS = 0.04; // reach duration = base + per_cm * distance (longer reaches are faster)
// Minimum-jerk peak speed is 1.875 distance / duration < 1.875 / kReachPerCmS for any distance.
constexpr double kMaxCursorSpeedCmS = 1.875 / kReachPerCmS;
constexpr double kTuningReferenceSpeedCmS = 20.0;
constexpr double kMinModulationHz = 5.0; // low-rate units still modulate by a few Hz at the reference speed
constexpr double kMaxTunedRateHz = 200.0;

// The cursor path, generated segment by segment (pause, then reach) so that memory does not grow with time.
// at() must be called with non-decreasing times: two instances with the same seed give the same path.
class ReachTrajectory {
public:
    explicit ReachTrajectory(std::uint64_t seed);
    KinematicsSample at(double t);

private:
    void plan_next(double start);

    Rng rng_;
    double from_x_ = 0, from_y_ = 0, to_x_ = 0, to_y_ = 0;
    double reach_start_ = 0, reach_end_ = 0;
};

} // namespace spikeline::sim
