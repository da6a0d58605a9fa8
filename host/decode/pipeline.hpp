#pragma once
// Training a decoder on the head of a recording and scoring it on the held-out tail.
#include "decode/model_file.hpp"

namespace spikeline::decode {

struct TrainSettings {
    DecoderKind kind = DecoderKind::kalman;
    BinSettings bins;
    double train_fraction = 0.8; ///< the first share of the bins with kinematics trains; the rest is held out
    KalmanOptions kalman;
    WienerOptions wiener;
};

/// Bins the spikes (all of spikes.unit_ids are inputs), aligns them with the kinematics and fits the decoder on
/// the first train_fraction of the bins whose centre has kinematics.
/// Throws InputError when the kinematics and the spikes cover recordings of different lengths: the kinematics' end
/// differs from the recording's length (when the spike folder states it) or the spikes go on past the kinematics.
void check_kinematics_match(const SpikeTrains& spikes, const Kinematics& kinematics);

DecoderModel train_decoder(const SpikeTrains& spikes, const Kinematics& kinematics, const TrainSettings& settings);

/// Binned (and smoothed) counts of bins [0, n_bins) as the model expects them: n_inputs x n_bins.
Eigen::MatrixXd model_inputs(const DecoderModel& model, const SpikeTrains& spikes, std::size_t n_bins);

/// Runs the model causally over every bin from 0: 2 x counts.cols() velocity estimates.
Eigen::MatrixXd decode_bins(const DecoderModel& model, const Eigen::MatrixXd& inputs);

struct Evaluation {
    BinRange test_bins;       ///< held-out bins scored
    double bin_s = 0;         ///< bin length in seconds
    Eigen::MatrixXd truth;    ///< 2 x test_bins.size()
    Eigen::MatrixXd estimate; ///< 2 x test_bins.size()
    AxisScore vx, vy;
};

/// Decodes the whole recording (causally, from bin 0) and scores the bins after the model's training bins, or
/// every bin with kinematics when all_bins (for a recording the model was not trained on). Throws InputError
/// when the spikes do not match the model (unit set, sample rate) or nothing is left to score.
Evaluation evaluate_decoder(const DecoderModel& model, const SpikeTrains& spikes, const Kinematics& kinematics,
                            bool all_bins = false);

} // namespace spikeline::decode
