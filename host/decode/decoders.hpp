#pragma once
// Linear decoders of 2-D velocity from binned spike counts: a Kalman filter and a Wiener filter (ridge regression
// over lagged bins). Counts are one column per bin (rows = units), velocities one column per bin (vx, vy).
#include <Eigen/Core>

#include <cstddef>

namespace spikeline::decode {

enum class ObservationNoise { full, diagonal };

struct KalmanOptions {
    ObservationNoise observation_noise = ObservationNoise::full;
    bool steady_state = false; ///< precompute the converged gain: a step is then one 2 x n product
};

/// Velocity Kalman filter. State v = (vx, vy); a constant input carries the offsets:
///   v_(k+1) = A v_k + a + w,  w ~ N(0, W)        (transition)
///   y_k     = H v_k + d + q,  q ~ N(0, Q)        (observation: the counts of bin k)
/// Filtering runs in information form, so a step never inverts an n x n matrix: only H^T Q^-1 (2 x n) and
/// H^T Q^-1 H (2 x 2) are needed.
struct KalmanModel {
    Eigen::Matrix2d transition = Eigen::Matrix2d::Zero(); ///< A
    Eigen::Vector2d transition_offset = Eigen::Vector2d::Zero();
    Eigen::Matrix2d process_noise = Eigen::Matrix2d::Zero(); ///< W
    Eigen::MatrixXd observation;                             ///< H, n x 2
    Eigen::VectorXd observation_offset;                      ///< d, n
    Eigen::VectorXd observation_variance;                    ///< diag(Q), n (for inspection)
    ObservationNoise observation_noise = ObservationNoise::full;
    Eigen::MatrixXd information;                                  ///< H^T Q^-1, 2 x n
    Eigen::Matrix2d information_matrix = Eigen::Matrix2d::Zero(); ///< H^T Q^-1 H
    Eigen::Vector2d initial_velocity = Eigen::Vector2d::Zero();
    Eigen::Matrix2d initial_covariance = Eigen::Matrix2d::Zero();
    bool steady_state = false;
    Eigen::MatrixXd steady_state_gain;                                 ///< K = P H^T Q^-1, 2 x n
    Eigen::Matrix2d steady_state_covariance = Eigen::Matrix2d::Zero(); ///< converged posterior P

    Eigen::Index n_inputs() const { return observation.rows(); }
};

/// Least-squares fit of A, a, W, H, d, Q on aligned counts (n x T) and velocities (2 x T), T >= 3 consecutive bins.
/// Q gets a small ridge (1e-6 of its mean variance) so that silent inputs do not make it singular.
KalmanModel train_kalman(const Eigen::MatrixXd& counts, const Eigen::MatrixXd& velocity, const KalmanOptions& options);

/// Iterates the Riccati recursion from the initial covariance until the posterior covariance converges and stores
/// the steady-state gain in the model.
void compute_steady_state(KalmanModel& model);

/// Runs a KalmanModel bin by bin (the model must outlive the filter: it is referenced, not copied).
class KalmanFilter {
public:
    explicit KalmanFilter(const KalmanModel& model);
    void reset();
    /// Counts of the newest bin (n) in, velocity estimate after it out.
    Eigen::Vector2d step(const Eigen::Ref<const Eigen::VectorXd>& counts);

private:
    const KalmanModel& model_;
    Eigen::Vector2d information_offset_; ///< H^T Q^-1 d
    Eigen::Vector2d gain_offset_;        ///< K d (steady state)
    Eigen::Matrix2d steady_update_;      ///< I - K H (steady state)
    Eigen::Vector2d velocity_;
    Eigen::Matrix2d covariance_;
};

struct WienerOptions {
    int lags = 5;       ///< bins k, k-1, ..., k-lags+1 feed the estimate of bin k
    double ridge = 1.0; ///< penalty relative to the mean energy of a (centred) feature
};

/// Wiener filter: v_k = b + sum_l W_l^T c_(k-l). Stored as one 2 x (n * lags) matrix, lag-major: columns
/// [l n, (l + 1) n) hold W_l^T.
struct WienerModel {
    int lags = 1;
    double ridge = 0;
    Eigen::MatrixXd weights; ///< 2 x (n * lags)
    Eigen::Vector2d intercept = Eigen::Vector2d::Zero();

    Eigen::Index n_inputs() const { return lags > 0 ? weights.cols() / lags : 0; }
};

/// Ridge regression of velocity (2 x T) on the lagged counts. counts holds `history` extra bins before the first
/// target (history <= lags - 1; missing history is zero). Solves in the primal (features x features) or dual
/// (bins x bins) form, whichever is smaller; both give the same weights.
WienerModel train_wiener(const Eigen::MatrixXd& counts, std::size_t history, const Eigen::MatrixXd& velocity,
                         const WienerOptions& options);

/// Same as train_wiener, forcing the dual (kernel) form; for tests.
WienerModel train_wiener_dual(const Eigen::MatrixXd& counts, std::size_t history, const Eigen::MatrixXd& velocity,
                              const WienerOptions& options);

/// Runs a WienerModel bin by bin, keeping the last `lags` count vectors (the model must outlive the filter).
class WienerFilter {
public:
    explicit WienerFilter(const WienerModel& model);
    void reset();
    Eigen::Vector2d step(const Eigen::Ref<const Eigen::VectorXd>& counts);

private:
    const WienerModel& model_;
    Eigen::MatrixXd history_; ///< n x lags ring buffer
    Eigen::Index newest_ = 0;
};

/// Coefficient of determination 1 - SS_res / SS_tot per row (about each row's own mean) and Pearson correlation.
struct AxisScore {
    double r2 = 0;
    double correlation = 0;
};
AxisScore score_axis(const Eigen::Ref<const Eigen::RowVectorXd>& truth,
                     const Eigen::Ref<const Eigen::RowVectorXd>& estimate);

} // namespace spikeline::decode
