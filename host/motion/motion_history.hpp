#pragma once
// Where the tissue was, looking back. A live estimate is a prediction: the window measured up to now, carried on by a
// velocity that overshoots at a reversal and lags at a step. Once the windows around a past time have been measured,
// that time's displacement is known better: each window's own measurement, at its centre, interpolated in time between
// centres (and in depth between blocks). Calibrations learn from past spikes, so they use this.
#include "backend/backend.hpp"
#include "motion/motion_estimator.hpp"
#include "probe/probe.hpp"

#include <cstdint>
#include <vector>

namespace spikeline::motion {

class MotionHistory {
public:
    /// A copy of what is needed (usable on another thread): estimates as MotionEstimator::add made them.
    MotionHistory(const MotionEstimator& estimator, const probe::Probe& probe, double sample_rate,
                  const std::vector<MotionEstimate>& estimates);

    /// The displacement (um) at a channel's contact at a sample, between the two measured window centres around it;
    /// `otherwise` before the first centre or after the last.
    double at(int channel, std::uint64_t sample, double otherwise) const;

    /// A live displacement this close to the measured one stands: the units are placed by live estimates while they
    /// label, so a unit learnt in the same frame lands where its spikes are (measured on the non-rigid recordings:
    /// replacing every displacement lost 0.005-0.01 there, docs/ACCURACY.md).
    static constexpr double kConfirmedWithinUm = 5.0;

    /// Each spike's displacement (as it was tracked live) replaced by the measured one where they differ by more than
    /// kConfirmedWithinUm: a prediction that overshot a reversal or lagged a step.
    void refine(const std::vector<hw::SortedSpike>& spikes, std::vector<double>& displacement_um) const;

private:
    std::vector<MotionEstimator::BlockWeights> weights_; ///< per channel
    std::vector<double> centres_;                        ///< window centres, in samples, increasing
    std::vector<std::vector<double>> measured_;          ///< per centre: per block
};

} // namespace spikeline::motion
