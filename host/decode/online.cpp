#include "decode/online.hpp"

#include <algorithm>
#include <cmath>

namespace spikeline::decode {

OnlineDecoder::OnlineDecoder(const DecoderModel& model) : model_(model) {
    const Eigen::Index n = static_cast<Eigen::Index>(model.n_inputs());
    counts_ = Eigen::VectorXd::Zero(n);
    smoothed_ = Eigen::VectorXd::Zero(n);
    const double width_bins =
        model.bins.smooth_ms / 1000.0 / (static_cast<double>(model.bin_samples) / model.sample_rate);
    if (model.bins.smoothing == Smoothing::exponential)
        keep_ = std::exp(-1.0 / width_bins);
    if (model.bins.smoothing == Smoothing::boxcar) {
        boxcar_ = Eigen::MatrixXd::Zero(n, std::max<Eigen::Index>(1, std::llround(width_bins)));
        boxcar_sum_ = Eigen::VectorXd::Zero(n);
    }
    if (model.kind == DecoderKind::kalman)
        kalman_ = std::make_unique<KalmanFilter>(*model.kalman);
    else
        wiener_ = std::make_unique<WienerFilter>(*model.wiener);
}

OnlineDecoder::~OnlineDecoder() = default;

void OnlineDecoder::add_spike(std::uint64_t sample, std::int32_t label) {
    const auto& ids = model_.unit_ids;
    const auto found = std::lower_bound(ids.begin(), ids.end(), label);
    if (found == ids.end() || *found != label) {
        ++unknown_labels_;
        return;
    }
    if (sample / model_.bin_samples < bin_) {
        ++late_spikes_;
        return;
    }
    // A spike of a later bin than the open one arrives before advance_to closed it: bins are closed first.
    if (sample / model_.bin_samples > bin_) {
        std::vector<BinEstimate> ignored;
        while (sample / model_.bin_samples > bin_)
            close_bin(ignored);
        pending_.insert(pending_.end(), ignored.begin(), ignored.end());
    }
    counts_(found - ids.begin()) += 1.0;
}

std::vector<BinEstimate> OnlineDecoder::advance_to(std::uint64_t sample) {
    std::vector<BinEstimate> out = std::move(pending_);
    pending_.clear();
    while ((bin_ + 1) * model_.bin_samples <= sample)
        close_bin(out);
    return out;
}

void OnlineDecoder::close_bin(std::vector<BinEstimate>& out) {
    const Eigen::VectorXd* input = &counts_;
    if (model_.bins.smoothing == Smoothing::exponential) {
        smoothed_ = keep_ * smoothed_ + (1.0 - keep_) * counts_;
        input = &smoothed_;
    } else if (model_.bins.smoothing == Smoothing::boxcar) {
        boxcar_sum_ += counts_ - boxcar_.col(boxcar_next_);
        boxcar_.col(boxcar_next_) = counts_;
        boxcar_next_ = (boxcar_next_ + 1) % boxcar_.cols();
        smoothed_ = boxcar_sum_ / static_cast<double>(boxcar_.cols());
        input = &smoothed_;
    }
    const Eigen::Vector2d v = kalman_ ? kalman_->step(*input) : wiener_->step(*input);
    out.push_back({bin_, (bin_ + 1) * model_.bin_samples, v(0), v(1)});
    counts_.setZero();
    ++bin_;
}

} // namespace spikeline::decode
