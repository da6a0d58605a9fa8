#include "decode/binning.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <cmath>

namespace spikeline::decode {

const char* to_string(Smoothing smoothing) {
    switch (smoothing) {
    case Smoothing::none:
        return "none";
    case Smoothing::exponential:
        return "exponential";
    case Smoothing::boxcar:
        return "boxcar";
    }
    return "?";
}

Smoothing parse_smoothing(const std::string& text) {
    if (text == "none")
        return Smoothing::none;
    if (text == "exponential")
        return Smoothing::exponential;
    if (text == "boxcar")
        return Smoothing::boxcar;
    throw InputError("unknown smoothing '" + text + "': use none, exponential or boxcar");
}

void check_bin_settings(const BinSettings& settings, double sample_rate) {
    require(std::isfinite(settings.bin_ms) && settings.bin_ms > 0 && settings.bin_ms <= 10000,
            "the bin length must be in (0, 10000] ms (got " + std::to_string(settings.bin_ms) + ")");
    require(settings.bin_ms * sample_rate / 1000.0 >= 0.5,
            "a bin of " + std::to_string(settings.bin_ms) + " ms is shorter than one sample: use longer bins");
    if (settings.smoothing != Smoothing::none)
        require(std::isfinite(settings.smooth_ms) && settings.smooth_ms > 0 && settings.smooth_ms <= 1e6,
                std::string(to_string(settings.smoothing)) + " smoothing needs a positive --smooth-ms");
}

std::uint64_t bin_samples(double bin_ms, double sample_rate) {
    return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(bin_ms * sample_rate / 1000.0)));
}

Eigen::MatrixXd bin_counts(const SpikeTrains& spikes, const std::vector<std::int32_t>& unit_ids,
                           std::uint64_t bin_length, std::size_t n_bins) {
    Eigen::MatrixXd counts =
        Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(unit_ids.size()), static_cast<Eigen::Index>(n_bins));
    const std::uint64_t end_sample = bin_length * n_bins;
    for (std::size_t i = 0; i < spikes.times.size(); ++i) {
        const std::int32_t label = spikes.labels[i];
        const auto found = std::lower_bound(unit_ids.begin(), unit_ids.end(), label);
        if (found == unit_ids.end() || *found != label)
            throw InputError("spike label " + std::to_string(label) + " (" + to_string(spikes.source) +
                             ") is not one of the decoder's " + std::to_string(unit_ids.size()) +
                             " inputs: the spikes come from another sorting than the model was trained on; train a "
                             "model on these spikes");
        if (spikes.times[i] >= end_sample)
            continue;
        counts(found - unit_ids.begin(), static_cast<Eigen::Index>(spikes.times[i] / bin_length)) += 1.0;
    }
    return counts;
}

void smooth_causal(Eigen::MatrixXd& binned, Smoothing smoothing, double width_bins) {
    const Eigen::Index n_bins = binned.cols();
    if (smoothing == Smoothing::exponential) {
        const double keep = std::exp(-1.0 / width_bins);
        if (n_bins > 0)
            binned.col(0) *= 1.0 - keep; // the state before bin 0 is 0
        for (Eigen::Index k = 1; k < n_bins; ++k)
            binned.col(k) = keep * binned.col(k - 1) + (1.0 - keep) * binned.col(k);
    } else if (smoothing == Smoothing::boxcar) {
        const Eigen::Index width = std::max<Eigen::Index>(1, std::llround(width_bins));
        // Running sum of the last `width` raw bins.
        const Eigen::MatrixXd raw = binned;
        Eigen::VectorXd sum = Eigen::VectorXd::Zero(binned.rows());
        for (Eigen::Index k = 0; k < n_bins; ++k) {
            sum += raw.col(k);
            if (k >= width)
                sum -= raw.col(k - width);
            binned.col(k) = sum / static_cast<double>(width);
        }
    }
}

BinRange bins_with_kinematics(const Kinematics& kinematics, double bin_s) {
    BinRange range;
    if (kinematics.size() == 0)
        return range;
    // Centre of bin k: (k + 0.5) bin_s.
    const double first = std::ceil(kinematics.time_s.front() / bin_s - 0.5);
    const double last = std::floor(kinematics.time_s.back() / bin_s - 0.5);
    range.first = static_cast<std::size_t>(std::max(first, 0.0));
    range.end = last < 0 ? 0 : static_cast<std::size_t>(last) + 1;
    return range;
}

Eigen::MatrixXd velocity_at_bins(const Kinematics& kinematics, double bin_s, BinRange range) {
    Eigen::MatrixXd velocity(2, static_cast<Eigen::Index>(range.size()));
    const std::vector<double>& t = kinematics.time_s;
    std::size_t j = 0;
    for (std::size_t k = range.first; k < range.end; ++k) {
        const double centre = (static_cast<double>(k) + 0.5) * bin_s;
        while (j + 2 < t.size() && t[j + 1] < centre)
            ++j;
        const double fraction = std::clamp((centre - t[j]) / (t[j + 1] - t[j]), 0.0, 1.0);
        const Eigen::Index column = static_cast<Eigen::Index>(k - range.first);
        velocity(0, column) = kinematics.vx[j] + fraction * (kinematics.vx[j + 1] - kinematics.vx[j]);
        velocity(1, column) = kinematics.vy[j] + fraction * (kinematics.vy[j + 1] - kinematics.vy[j]);
    }
    return velocity;
}

} // namespace spikeline::decode
