#include "decode/decoders.hpp"

#include "util/errors.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <Eigen/LU>

#include <cmath>
#include <stdexcept>
#include <string>

namespace spikeline::decode {

namespace {

/// Rows of X (features x T) plus a row of ones.
Eigen::MatrixXd with_constant(const Eigen::MatrixXd& x) {
    Eigen::MatrixXd out(x.rows() + 1, x.cols());
    out.topRows(x.rows()) = x;
    out.row(x.rows()).setOnes();
    return out;
}

/// B minimising |Y - B X|^2 (Y: m x T, X: p x T) through the normal equations; p is small here (3).
Eigen::MatrixXd least_squares(const Eigen::MatrixXd& y, const Eigen::MatrixXd& x) {
    const Eigen::MatrixXd gram = x * x.transpose();
    const Eigen::VectorXd eigenvalues = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(gram).eigenvalues();
    require(eigenvalues.minCoeff() > 1e-10 * eigenvalues.maxCoeff(),
            "the training kinematics do not vary (the velocities are constant or collinear): train on a stretch "
            "with movement in both axes");
    return gram.ldlt().solve(x * y.transpose()).transpose();
}

void require_finite(const Eigen::MatrixXd& m, const char* what) {
    require(m.allFinite(), std::string("training produced non-finite ") + what +
                               ": check the spikes and kinematics for overflowing or empty data");
}

} // namespace

KalmanModel train_kalman(const Eigen::MatrixXd& counts, const Eigen::MatrixXd& velocity, const KalmanOptions& options) {
    const Eigen::Index n_bins = counts.cols();
    require(velocity.rows() == 2 && velocity.cols() == n_bins, "train_kalman: counts and velocities differ in length");
    require(n_bins >= 3, "at least 3 training bins are needed (got " + std::to_string(n_bins) +
                             "): use a longer recording or a larger --train-fraction");
    require(counts.rows() >= 1, "the spikes have no units: nothing to decode from");
    KalmanModel model;
    model.observation_noise = options.observation_noise;

    // Transition: v_(k+1) regressed on (v_k, 1).
    const Eigen::MatrixXd previous = with_constant(velocity.leftCols(n_bins - 1));
    const Eigen::MatrixXd next = velocity.rightCols(n_bins - 1);
    const Eigen::MatrixXd transition = least_squares(next, previous); // 2 x 3
    model.transition = transition.leftCols(2);
    model.transition_offset = transition.col(2);
    const Eigen::MatrixXd transition_residual = next - transition * previous;
    model.process_noise = transition_residual * transition_residual.transpose() / static_cast<double>(n_bins - 1);

    // Observation: counts regressed on (v, 1).
    const Eigen::MatrixXd state = with_constant(velocity);
    const Eigen::MatrixXd observation = least_squares(counts, state); // n x 3
    model.observation = observation.leftCols(2);
    model.observation_offset = observation.col(2);
    const Eigen::MatrixXd residual = counts - observation * state;
    model.observation_variance = residual.rowwise().squaredNorm() / static_cast<double>(n_bins);
    const double mean_variance = model.observation_variance.mean();
    const double ridge = 1e-6 * (mean_variance > 0 ? mean_variance : 1.0);

    if (options.observation_noise == ObservationNoise::full) {
        Eigen::MatrixXd noise = residual * residual.transpose() / static_cast<double>(n_bins);
        noise.diagonal().array() += ridge;
        const Eigen::LLT<Eigen::MatrixXd> cholesky(noise);
        require(cholesky.info() == Eigen::Success,
                "the observation noise covariance is not positive definite: use --observation-noise diagonal");
        model.information = cholesky.solve(model.observation).transpose();
    } else {
        const Eigen::VectorXd inverse = (model.observation_variance.array() + ridge).inverse();
        model.information = (model.observation.array().colwise() * inverse.array()).matrix().transpose();
    }
    model.information_matrix = model.information * model.observation;

    model.initial_velocity = velocity.rowwise().mean();
    const Eigen::MatrixXd centred = velocity.colwise() - model.initial_velocity;
    model.initial_covariance = centred * centred.transpose() / static_cast<double>(n_bins);

    require_finite(model.transition, "transition");
    require_finite(model.process_noise, "process noise");
    require_finite(model.observation, "observation model");
    require_finite(model.information, "observation noise");
    if (options.steady_state)
        compute_steady_state(model);
    return model;
}

void compute_steady_state(KalmanModel& model) {
    constexpr int kMaxIterations = 100000;
    Eigen::Matrix2d posterior = model.initial_covariance;
    for (int iteration = 0; iteration < kMaxIterations; ++iteration) {
        const Eigen::Matrix2d prior = model.transition * posterior * model.transition.transpose() + model.process_noise;
        const Eigen::Matrix2d next = (prior.inverse() + model.information_matrix).inverse();
        const double change = (next - posterior).cwiseAbs().maxCoeff();
        posterior = next;
        if (change <= 1e-14 * std::max(posterior.cwiseAbs().maxCoeff(), 1e-300))
            break;
        if (iteration == kMaxIterations - 1)
            throw InputError("the Kalman gain did not converge: train without --steady-state");
    }
    model.steady_state = true;
    model.steady_state_covariance = posterior;
    model.steady_state_gain = posterior * model.information;
}

KalmanFilter::KalmanFilter(const KalmanModel& model) : model_(model) {
    information_offset_ = model.information * model.observation_offset;
    if (model.steady_state) {
        gain_offset_ = model.steady_state_gain * model.observation_offset;
        steady_update_ = Eigen::Matrix2d::Identity() - model.steady_state_covariance * model.information_matrix;
    }
    reset();
}

void KalmanFilter::reset() {
    velocity_ = model_.initial_velocity;
    covariance_ = model_.initial_covariance;
}

Eigen::Vector2d KalmanFilter::step(const Eigen::Ref<const Eigen::VectorXd>& counts) {
    const Eigen::Vector2d predicted = model_.transition * velocity_ + model_.transition_offset;
    if (model_.steady_state) {
        // v = (I - K H) v_pred + K (y - d)
        velocity_.noalias() = steady_update_ * predicted + model_.steady_state_gain * counts - gain_offset_;
        return velocity_;
    }
    const Eigen::Matrix2d prior =
        model_.transition * covariance_ * model_.transition.transpose() + model_.process_noise;
    covariance_ = (prior.inverse() + model_.information_matrix).inverse();
    const Eigen::Vector2d innovation =
        model_.information * counts - information_offset_ - model_.information_matrix * predicted;
    velocity_ = predicted + covariance_ * innovation;
    return velocity_;
}

namespace {

/// Centred lagged features of bins [history, history + T): rows lag-major (lag 0 first), one column per target.
Eigen::MatrixXd lagged_features(const Eigen::MatrixXd& counts, std::size_t history, int lags, Eigen::Index n_targets) {
    const Eigen::Index n = counts.rows();
    Eigen::MatrixXd features = Eigen::MatrixXd::Zero(n * lags, n_targets);
    for (int lag = 0; lag < lags; ++lag)
        for (Eigen::Index t = 0; t < n_targets; ++t) {
            const Eigen::Index source = t + static_cast<Eigen::Index>(history) - lag;
            if (source >= 0)
                features.block(lag * n, t, n, 1) = counts.col(source);
        }
    return features;
}

WienerModel train_wiener_impl(const Eigen::MatrixXd& counts, std::size_t history, const Eigen::MatrixXd& velocity,
                              const WienerOptions& options, bool force_dual) {
    require(options.lags >= 1 && options.lags <= 1000, "--lags must be between 1 and 1000");
    require(std::isfinite(options.ridge) && options.ridge >= 0, "--ridge must be a non-negative number");
    const Eigen::Index n_targets = velocity.cols();
    require(velocity.rows() == 2 && counts.cols() == n_targets + static_cast<Eigen::Index>(history),
            "train_wiener: counts and velocities differ in length");
    require(n_targets >= 2, "at least 2 training bins are needed (got " + std::to_string(n_targets) +
                                "): use a longer recording or a larger --train-fraction");
    require(counts.rows() >= 1, "the spikes have no units: nothing to decode from");

    Eigen::MatrixXd x = lagged_features(counts, history, options.lags, n_targets);
    const Eigen::VectorXd x_mean = x.rowwise().mean();
    const Eigen::Vector2d y_mean = velocity.rowwise().mean();
    x.colwise() -= x_mean;
    const Eigen::MatrixXd y = velocity.colwise() - y_mean;

    const double energy = x.squaredNorm() / static_cast<double>(x.rows());
    const double penalty = options.ridge * (energy > 0 ? energy : 1.0) + 1e-12;
    WienerModel model;
    model.lags = options.lags;
    model.ridge = options.ridge;
    if (!force_dual && x.rows() <= x.cols()) {
        // Primal: (X X^T + p I) B = X Y^T, features x features.
        Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(x.rows(), x.rows());
        gram.selfadjointView<Eigen::Lower>().rankUpdate(x);
        gram.diagonal().array() += penalty;
        const Eigen::LLT<Eigen::MatrixXd> solver(gram.selfadjointView<Eigen::Lower>());
        model.weights = solver.solve(x * y.transpose()).transpose();
    } else {
        // Dual: B = Y (X^T X + p I)^-1 X^T, bins x bins.
        Eigen::MatrixXd kernel = Eigen::MatrixXd::Zero(x.cols(), x.cols());
        kernel.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
        kernel.diagonal().array() += penalty;
        const Eigen::LLT<Eigen::MatrixXd> solver(kernel.selfadjointView<Eigen::Lower>());
        model.weights = (x * solver.solve(y.transpose())).transpose();
    }
    model.intercept = y_mean - model.weights * x_mean;
    require_finite(model.weights, "Wiener weights");
    return model;
}

} // namespace

WienerModel train_wiener(const Eigen::MatrixXd& counts, std::size_t history, const Eigen::MatrixXd& velocity,
                         const WienerOptions& options) {
    return train_wiener_impl(counts, history, velocity, options, false);
}

WienerModel train_wiener_dual(const Eigen::MatrixXd& counts, std::size_t history, const Eigen::MatrixXd& velocity,
                              const WienerOptions& options) {
    return train_wiener_impl(counts, history, velocity, options, true);
}

WienerFilter::WienerFilter(const WienerModel& model) : model_(model) {
    history_ = Eigen::MatrixXd::Zero(model.n_inputs(), model.lags);
    reset();
}

void WienerFilter::reset() {
    history_.setZero();
    newest_ = 0;
}

Eigen::Vector2d WienerFilter::step(const Eigen::Ref<const Eigen::VectorXd>& counts) {
    const Eigen::Index n = history_.rows();
    const Eigen::Index lags = model_.lags;
    newest_ = (newest_ + 1) % lags;
    history_.col(newest_) = counts;
    Eigen::Vector2d out = model_.intercept;
    for (Eigen::Index lag = 0; lag < lags; ++lag)
        out.noalias() += model_.weights.middleCols(lag * n, n) * history_.col((newest_ - lag + lags) % lags);
    return out;
}

AxisScore score_axis(const Eigen::Ref<const Eigen::RowVectorXd>& truth,
                     const Eigen::Ref<const Eigen::RowVectorXd>& estimate) {
    if (truth.size() != estimate.size())
        throw std::logic_error("score_axis: lengths differ");
    AxisScore score;
    const double truth_mean = truth.mean();
    const double estimate_mean = estimate.mean();
    const double total = (truth.array() - truth_mean).square().sum();
    const double residual = (truth - estimate).squaredNorm();
    score.r2 = total > 0 ? 1.0 - residual / total : std::nan("");
    const double covariance = ((truth.array() - truth_mean) * (estimate.array() - estimate_mean)).sum();
    const double estimate_spread = (estimate.array() - estimate_mean).square().sum();
    score.correlation =
        total > 0 && estimate_spread > 0 ? covariance / std::sqrt(total * estimate_spread) : std::nan("");
    return score;
}

} // namespace spikeline::decode
