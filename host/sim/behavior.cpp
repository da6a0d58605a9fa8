#include "sim/behavior.hpp"

#include <cmath>

namespace spikeline::sim {
namespace {

constexpr double kMinReachCm = 3.0;
constexpr double kPauseMinS = 0.2;
constexpr double kPauseMaxS = 0.6;
constexpr double kReachBaseS = 0.4;

} // namespace

ReachTrajectory::ReachTrajectory(std::uint64_t seed) : rng_(seed, Stream::reaches) {
    plan_next(0.0);
}

KinematicsSample ReachTrajectory::at(double t) {
    while (t >= reach_end_)
        plan_next(reach_end_);
    KinematicsSample sample;
    sample.time_s = t;
    if (t < reach_start_) {
        sample.x_cm = from_x_;
        sample.y_cm = from_y_;
        return sample;
    }
    // Minimum jerk: s = 10 u^3 - 15 u^4 + 6 u^5 of the normalised time u.
    const double duration = reach_end_ - reach_start_;
    const double u = (t - reach_start_) / duration;
    const double s = u * u * u * (10.0 + u * (-15.0 + 6.0 * u));
    const double ds = 30.0 * u * u * (1.0 - u) * (1.0 - u) / duration;
    sample.x_cm = from_x_ + (to_x_ - from_x_) * s;
    sample.y_cm = from_y_ + (to_y_ - from_y_) * s;
    sample.vx_cm_s = (to_x_ - from_x_) * ds;
    sample.vy_cm_s = (to_y_ - from_y_) * ds;
    return sample;
}

void ReachTrajectory::plan_next(double start) {
    from_x_ = to_x_;
    from_y_ = to_y_;
    double distance = 0.0;
    do {
        to_x_ = rng_.uniform(-kWorkspaceHalfWidthCm, kWorkspaceHalfWidthCm);
        to_y_ = rng_.uniform(-kWorkspaceHalfWidthCm, kWorkspaceHalfWidthCm);
        distance = std::hypot(to_x_ - from_x_, to_y_ - from_y_);
    } while (distance < kMinReachCm);
    reach_start_ = start + rng_.uniform(kPauseMinS, kPauseMaxS);
    reach_end_ = reach_start_ + kReachBaseS + kReachPerCmS * distance;
}

} // namespace spikeline::sim
