#pragma once
// A decoder fed spike by spike, as a live stream delivers them: counts per bin, causal smoothing and one filter step
// per completed bin. Gives the same estimates as decode_bins on the same spikes (tested).
#include "decode/model_file.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace spikeline::decode {

struct BinEstimate {
    std::uint64_t bin = 0;        ///< bin index k: samples [k * bin_samples, (k + 1) * bin_samples)
    std::uint64_t end_sample = 0; ///< first sample after the bin: when the estimate became available
    double vx = 0, vy = 0;
};

/// Runs a DecoderModel online. Spikes should arrive in time order; a spike of a bin already closed is late and
/// counted, not binned; a spike of a later bin closes the bins before it. Labels the model does not know are
/// counted and ignored (for example units added by a recalibration), so a live run never stops on them.
/// The model must outlive the decoder.
class OnlineDecoder {
public:
    explicit OnlineDecoder(const DecoderModel& model);
    ~OnlineDecoder();
    OnlineDecoder(const OnlineDecoder&) = delete;
    OnlineDecoder& operator=(const OnlineDecoder&) = delete;

    void add_spike(std::uint64_t sample, std::int32_t label);
    /// Closes every bin that ends at or before `sample` (the stream has delivered all spikes before it) and
    /// returns their estimates in order.
    std::vector<BinEstimate> advance_to(std::uint64_t sample);

    std::uint64_t unknown_label_spikes() const { return unknown_labels_; }
    std::uint64_t late_spikes() const { return late_spikes_; }

private:
    void close_bin(std::vector<BinEstimate>& out);

    const DecoderModel& model_;
    std::unique_ptr<KalmanFilter> kalman_;
    std::unique_ptr<WienerFilter> wiener_;
    Eigen::VectorXd counts_;   ///< the open bin's raw counts
    Eigen::VectorXd smoothed_; ///< exponential state
    Eigen::MatrixXd boxcar_;   ///< last `width` raw bins (ring), boxcar smoothing
    Eigen::VectorXd boxcar_sum_;
    Eigen::Index boxcar_next_ = 0;
    double keep_ = 0; ///< exponential smoothing factor
    std::uint64_t bin_ = 0;
    std::uint64_t unknown_labels_ = 0;
    std::uint64_t late_spikes_ = 0;
    std::vector<BinEstimate> pending_; ///< bins closed by add_spike, returned by the next advance_to
};

} // namespace spikeline::decode
