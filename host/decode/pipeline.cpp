#include "decode/pipeline.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace spikeline::decode {

namespace {

double bin_seconds(std::uint64_t bin_length, double sample_rate) {
    return static_cast<double>(bin_length) / sample_rate;
}

double smoothing_width_bins(const BinSettings& bins, std::uint64_t bin_length, double sample_rate) {
    return bins.smooth_ms / 1000.0 / bin_seconds(bin_length, sample_rate);
}

} // namespace

void check_kinematics_match(const SpikeTrains& spikes, const Kinematics& kinematics) {
    const std::vector<double>& t = kinematics.time_s;
    if (t.size() < 2)
        return; // too short to train or score: reported where the bins are counted
    // The kinematics' own sampling step, and a few bins, bound how far the two ends may honestly differ.
    const double step = (t.back() - t.front()) / static_cast<double>(t.size() - 1);
    const double tolerance = std::max(2.0 * step, 0.05);
    const auto seconds = [](double s) {
        char text[32];
        std::snprintf(text, sizeof text, "%.3f s", s);
        return std::string(text);
    };
    if (spikes.recording_s)
        require(std::abs(t.back() - *spikes.recording_s) <= tolerance,
                "the kinematics end at " + seconds(t.back()) + " but the spikes' recording lasts " +
                    seconds(*spikes.recording_s) + " (n_frames in " + spikes.recording_s_origin +
                    "): they come from recordings of different lengths; pass the kinematics of the same recording");
    const auto last = std::max_element(spikes.times.begin(), spikes.times.end());
    if (last != spikes.times.end()) {
        const double last_spike_s = static_cast<double>(*last) / spikes.sample_rate;
        require(last_spike_s <= t.back() + tolerance,
                "the spikes go on until " + seconds(last_spike_s) + " but the kinematics end at " + seconds(t.back()) +
                    ": they come from recordings of different lengths; pass the kinematics of the same recording");
    }
}

DecoderModel train_decoder(const SpikeTrains& spikes, const Kinematics& kinematics, const TrainSettings& settings) {
    check_bin_settings(settings.bins, spikes.sample_rate);
    check_kinematics_match(spikes, kinematics);
    require(std::isfinite(settings.train_fraction) && settings.train_fraction > 0 && settings.train_fraction <= 1,
            "--train-fraction must be in (0, 1]");
    require(!spikes.unit_ids.empty(), "the spike folder has no spikes: nothing to decode from");
    DecoderModel model;
    model.kind = settings.kind;
    model.bins = settings.bins;
    model.sample_rate = spikes.sample_rate;
    model.bin_samples = bin_samples(settings.bins.bin_ms, spikes.sample_rate);
    model.unit_source = spikes.source;
    model.unit_ids = spikes.unit_ids;
    model.train_fraction = settings.train_fraction;

    const double bin_s = bin_seconds(model.bin_samples, model.sample_rate);
    const BinRange covered = bins_with_kinematics(kinematics, bin_s);
    require(covered.size() >= 10, "the kinematics cover " + std::to_string(covered.size()) +
                                      " bins: at least 10 are needed (longer kinematics or shorter --bin-ms)");
    const std::size_t n_train =
        static_cast<std::size_t>(std::floor(settings.train_fraction * static_cast<double>(covered.size())));
    model.training_bins = {covered.first, covered.first + n_train};

    const Eigen::MatrixXd inputs = model_inputs(model, spikes, model.training_bins.end);
    const Eigen::MatrixXd velocity = velocity_at_bins(kinematics, bin_s, model.training_bins);
    const Eigen::Index first = static_cast<Eigen::Index>(model.training_bins.first);
    const Eigen::Index count = static_cast<Eigen::Index>(n_train);
    if (settings.kind == DecoderKind::kalman) {
        model.kalman = train_kalman(inputs.middleCols(first, count), velocity, settings.kalman);
    } else {
        const Eigen::Index history = std::min<Eigen::Index>(first, settings.wiener.lags - 1);
        model.wiener = train_wiener(inputs.middleCols(first - history, count + history),
                                    static_cast<std::size_t>(history), velocity, settings.wiener);
    }
    return model;
}

Eigen::MatrixXd model_inputs(const DecoderModel& model, const SpikeTrains& spikes, std::size_t n_bins) {
    Eigen::MatrixXd inputs = bin_counts(spikes, model.unit_ids, model.bin_samples, n_bins);
    smooth_causal(inputs, model.bins.smoothing, smoothing_width_bins(model.bins, model.bin_samples, model.sample_rate));
    return inputs;
}

Eigen::MatrixXd decode_bins(const DecoderModel& model, const Eigen::MatrixXd& inputs) {
    // Fixed 2 rows: assigning a Vector2d to a column of a dynamic matrix trips GCC 12's -Warray-bounds in Eigen.
    Eigen::Matrix<double, 2, Eigen::Dynamic> estimate(2, inputs.cols());
    if (model.kind == DecoderKind::kalman) {
        KalmanFilter filter(*model.kalman);
        for (Eigen::Index k = 0; k < inputs.cols(); ++k)
            estimate.col(k) = filter.step(inputs.col(k));
    } else {
        WienerFilter filter(*model.wiener);
        for (Eigen::Index k = 0; k < inputs.cols(); ++k)
            estimate.col(k) = filter.step(inputs.col(k));
    }
    return estimate;
}

Evaluation evaluate_decoder(const DecoderModel& model, const SpikeTrains& spikes, const Kinematics& kinematics,
                            bool all_bins) {
    check_inputs_match(model, spikes);
    check_kinematics_match(spikes, kinematics);
    require(std::abs(spikes.sample_rate - model.sample_rate) <= 1e-6 * model.sample_rate,
            "the model was trained at " + std::to_string(model.sample_rate) + " Hz but the spikes are at " +
                std::to_string(spikes.sample_rate) + " Hz: pass --sample-rate or use the matching recording");
    Evaluation evaluation;
    evaluation.bin_s = bin_seconds(model.bin_samples, model.sample_rate);
    const BinRange covered = bins_with_kinematics(kinematics, evaluation.bin_s);
    evaluation.test_bins = {all_bins ? covered.first : std::max(covered.first, model.training_bins.end), covered.end};
    require(evaluation.test_bins.size() >= 2,
            "no held-out bins: the model was trained on bins up to " + std::to_string(model.training_bins.end) +
                " and the kinematics end at bin " + std::to_string(covered.end) +
                "; train with --train-fraction below 1, or score another recording with --all-bins");
    const Eigen::MatrixXd estimate = decode_bins(model, model_inputs(model, spikes, covered.end));
    const Eigen::Index first = static_cast<Eigen::Index>(evaluation.test_bins.first);
    const Eigen::Index count = static_cast<Eigen::Index>(evaluation.test_bins.size());
    evaluation.estimate = estimate.middleCols(first, count);
    evaluation.truth = velocity_at_bins(kinematics, evaluation.bin_s, evaluation.test_bins);
    evaluation.vx = score_axis(evaluation.truth.row(0), evaluation.estimate.row(0));
    evaluation.vy = score_axis(evaluation.truth.row(1), evaluation.estimate.row(1));
    return evaluation;
}

} // namespace spikeline::decode
