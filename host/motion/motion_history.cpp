#include "motion/motion_history.hpp"

#include <algorithm>
#include <cmath>

namespace spikeline::motion {

MotionHistory::MotionHistory(const MotionEstimator& estimator, const probe::Probe& probe, double sample_rate,
                             const std::vector<MotionEstimate>& estimates) {
    for (const probe::Contact& contact : probe.contacts)
        weights_.push_back(estimator.block_weights(contact.shank, contact.y_um));
    const double half_window_s = estimator.settings().window_s / 2;
    for (const MotionEstimate& e : estimates) {
        centres_.push_back((e.time_s - half_window_s) * sample_rate);
        measured_.push_back(e.measured);
    }
}

double MotionHistory::at(int channel, std::uint64_t sample, double otherwise) const {
    const auto t = static_cast<double>(sample);
    const MotionEstimator::BlockWeights& w = weights_[static_cast<std::size_t>(channel)];
    if (centres_.empty() || t < centres_.front() || t > centres_.back() || w.lower < 0)
        return otherwise;
    auto value = [&](std::size_t i) {
        return (1 - w.weight) * measured_[i][static_cast<std::size_t>(w.lower)] +
               w.weight * measured_[i][static_cast<std::size_t>(w.upper)];
    };
    // The centres j <= t <= k around t (equal at the last centre).
    const auto k = static_cast<std::size_t>(std::lower_bound(centres_.begin(), centres_.end(), t) - centres_.begin());
    if (centres_[k] == t)
        return value(k);
    const std::size_t j = k - 1;
    const double f = (t - centres_[j]) / (centres_[k] - centres_[j]);
    return (1 - f) * value(j) + f * value(k);
}

void MotionHistory::refine(const std::vector<hw::SortedSpike>& spikes, std::vector<double>& displacement_um) const {
    for (std::size_t i = 0; i < spikes.size(); ++i) {
        const double measured = at(spikes[i].event.channel, spikes[i].event.sample, displacement_um[i]);
        if (std::abs(measured - displacement_um[i]) > kConfirmedWithinUm)
            displacement_um[i] = measured;
    }
}

} // namespace spikeline::motion
