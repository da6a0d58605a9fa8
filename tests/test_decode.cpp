// Neural decoding: binning, Kalman and Wiener training and filtering (against straightforward references written
// here), model files and their errors, spike folders, and the simulator's behaviour task.
#include "decode/online.hpp"
#include "decode/pipeline.hpp"
#include "io/npy.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"

#include <Eigen/LU>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace spikeline;
using namespace spikeline::decode;
namespace fs = std::filesystem;
using spikeline::testing::TempDirTest;

/// Runs f and returns the InputError's message (fails the test if nothing or something else is thrown).
template <class F> std::string input_error_of(F&& f) {
    try {
        f();
    } catch (const InputError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no InputError thrown";
    return {};
}

/// Velocity as a stable AR(1) process with an offset: v_(k+1) = A v_k + a + noise.
Eigen::MatrixXd ar_velocity(std::mt19937& rng, const Eigen::Matrix2d& a, const Eigen::Vector2d& offset, double sigma,
                            Eigen::Index n_bins) {
    std::normal_distribution<double> normal(0.0, sigma);
    Eigen::MatrixXd v(2, n_bins);
    v.col(0).setZero();
    for (Eigen::Index k = 1; k < n_bins; ++k)
        v.col(k) = a * v.col(k - 1) + offset + Eigen::Vector2d(normal(rng), normal(rng));
    return v;
}

/// Poisson counts with rates d + H v (clamped at 0).
Eigen::MatrixXd poisson_counts(std::mt19937& rng, const Eigen::MatrixXd& h, const Eigen::VectorXd& d,
                               const Eigen::MatrixXd& v) {
    Eigen::MatrixXd counts(h.rows(), v.cols());
    for (Eigen::Index k = 0; k < v.cols(); ++k)
        for (Eigen::Index i = 0; i < h.rows(); ++i) {
            const double rate = std::max(0.0, d(i) + h.row(i).dot(v.col(k)));
            counts(i, k) = std::poisson_distribution<int>(rate)(rng);
        }
    return counts;
}

struct LinearSystem {
    Eigen::Matrix2d a;
    Eigen::Vector2d offset;
    Eigen::MatrixXd h;
    Eigen::VectorXd d;
    Eigen::MatrixXd velocity, counts;
};

LinearSystem make_system(unsigned seed, Eigen::Index n_units, Eigen::Index n_bins) {
    std::mt19937 rng(seed);
    LinearSystem s;
    s.a << 0.9, 0.05, -0.04, 0.85;
    s.offset << 0.1, -0.05;
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    s.h = Eigen::MatrixXd(n_units, 2);
    s.d = Eigen::VectorXd(n_units);
    for (Eigen::Index i = 0; i < n_units; ++i) {
        s.h(i, 0) = uniform(rng);
        s.h(i, 1) = uniform(rng);
        s.d(i) = 6.0 + 2.0 * uniform(rng);
    }
    s.velocity = ar_velocity(rng, s.a, s.offset, 0.5, n_bins);
    s.counts = poisson_counts(rng, s.h, s.d, s.velocity);
    return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Kalman

TEST(Kalman, RecoversAKnownLinearModelFromPoissonCounts) {
    const LinearSystem s = make_system(1, 8, 60000);
    const KalmanModel model = train_kalman(s.counts, s.velocity, {});
    EXPECT_LT((model.transition - s.a).cwiseAbs().maxCoeff(), 0.01);
    EXPECT_LT((model.transition_offset - s.offset).cwiseAbs().maxCoeff(), 0.01);
    EXPECT_NEAR(model.process_noise(0, 0), 0.25, 0.01);
    EXPECT_NEAR(model.process_noise(1, 1), 0.25, 0.01);
    EXPECT_NEAR(model.process_noise(0, 1), 0.0, 0.01);
    EXPECT_LT((model.observation - s.h).cwiseAbs().maxCoeff(), 0.03);
    EXPECT_LT((model.observation_offset - s.d).cwiseAbs().maxCoeff(), 0.05);
    // Poisson: the residual variance is the mean rate.
    for (Eigen::Index i = 0; i < s.h.rows(); ++i)
        EXPECT_NEAR(model.observation_variance(i), s.counts.row(i).mean(), 0.05 * s.counts.row(i).mean()) << i;
}

/// Textbook Kalman filter on the augmented state z = (vx, vy, 1) with the full n x n innovation covariance,
/// in plain loops (Gauss-Jordan inversion), from the model's A, a, W, H, d and a separately computed Q.
class ReferenceKalman {
public:
    ReferenceKalman(const KalmanModel& m, std::vector<std::vector<double>> q) : q_(std::move(q)) {
        n_ = static_cast<std::size_t>(m.observation.rows());
        f_ = {{{m.transition(0, 0), m.transition(0, 1), m.transition_offset(0)},
               {m.transition(1, 0), m.transition(1, 1), m.transition_offset(1)},
               {0.0, 0.0, 1.0}}};
        for (int r = 0; r < 2; ++r)
            for (int c = 0; c < 2; ++c) {
                w_[r][c] = m.process_noise(r, c);
                p_[r][c] = m.initial_covariance(r, c);
            }
        h_.assign(n_, {});
        for (std::size_t i = 0; i < n_; ++i)
            h_[i] = {m.observation(static_cast<Eigen::Index>(i), 0), m.observation(static_cast<Eigen::Index>(i), 1),
                     m.observation_offset(static_cast<Eigen::Index>(i))};
        z_ = {m.initial_velocity(0), m.initial_velocity(1), 1.0};
    }

    std::array<double, 2> step(const std::vector<double>& y) {
        // Predict.
        std::array<double, 3> z{};
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 3; ++c)
                z[r] += f_[r][c] * z_[c];
        Matrix3 fp{}, p{};
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 3; ++c)
                for (int k = 0; k < 3; ++k)
                    fp[r][c] += f_[r][k] * p_[k][c];
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 3; ++c) {
                for (int k = 0; k < 3; ++k)
                    p[r][c] += fp[r][k] * f_[c][k];
                p[r][c] += w_[r][c];
            }
        // S = H P H^T + Q, K = P H^T S^-1.
        std::vector<std::array<double, 3>> hp(n_);
        for (std::size_t i = 0; i < n_; ++i)
            for (int c = 0; c < 3; ++c)
                for (int k = 0; k < 3; ++k)
                    hp[i][c] += h_[i][k] * p[k][c];
        std::vector<std::vector<double>> s(n_, std::vector<double>(n_));
        for (std::size_t i = 0; i < n_; ++i)
            for (std::size_t j = 0; j < n_; ++j) {
                s[i][j] = q_[i][j];
                for (int k = 0; k < 3; ++k)
                    s[i][j] += hp[i][k] * h_[j][k];
            }
        const std::vector<std::vector<double>> s_inv = invert(s);
        std::vector<std::array<double, 3>> gain(n_); // K^T, n x 3
        for (std::size_t j = 0; j < n_; ++j)
            for (int r = 0; r < 3; ++r)
                for (std::size_t i = 0; i < n_; ++i)
                    gain[j][r] += hp[i][r] * s_inv[i][j];
        // Update.
        std::vector<double> innovation(n_);
        for (std::size_t i = 0; i < n_; ++i) {
            innovation[i] = y[i];
            for (int k = 0; k < 3; ++k)
                innovation[i] -= h_[i][k] * z[k];
        }
        for (std::size_t i = 0; i < n_; ++i)
            for (int r = 0; r < 3; ++r)
                z[r] += gain[i][r] * innovation[i];
        Matrix3 updated = p;
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 3; ++c)
                for (std::size_t i = 0; i < n_; ++i)
                    updated[r][c] -= gain[i][r] * hp[i][c];
        p_ = updated;
        z_ = z;
        return {z[0], z[1]};
    }

private:
    using Matrix3 = std::array<std::array<double, 3>, 3>;

    static std::vector<std::vector<double>> invert(std::vector<std::vector<double>> a) {
        const std::size_t n = a.size();
        std::vector<std::vector<double>> inv(n, std::vector<double>(n, 0.0));
        for (std::size_t i = 0; i < n; ++i)
            inv[i][i] = 1.0;
        for (std::size_t col = 0; col < n; ++col) {
            std::size_t pivot = col;
            for (std::size_t r = col + 1; r < n; ++r)
                if (std::abs(a[r][col]) > std::abs(a[pivot][col]))
                    pivot = r;
            std::swap(a[col], a[pivot]);
            std::swap(inv[col], inv[pivot]);
            const double scale = 1.0 / a[col][col];
            for (std::size_t c = 0; c < n; ++c) {
                a[col][c] *= scale;
                inv[col][c] *= scale;
            }
            for (std::size_t r = 0; r < n; ++r) {
                if (r == col)
                    continue;
                const double factor = a[r][col];
                for (std::size_t c = 0; c < n; ++c) {
                    a[r][c] -= factor * a[col][c];
                    inv[r][c] -= factor * inv[col][c];
                }
            }
        }
        return inv;
    }

    std::size_t n_ = 0;
    Matrix3 f_{}, w_{}, p_{};
    std::vector<std::array<double, 3>> h_;
    std::vector<std::vector<double>> q_;
    std::array<double, 3> z_{};
};

/// The observation noise covariance as train_kalman defines it, computed in plain loops: the residual covariance
/// of the training counts plus a ridge of 1e-6 of the mean variance (only the diagonal when diagonal).
std::vector<std::vector<double>> reference_noise(const KalmanModel& m, const Eigen::MatrixXd& counts,
                                                 const Eigen::MatrixXd& velocity, bool diagonal) {
    const std::size_t n = static_cast<std::size_t>(counts.rows());
    const Eigen::Index t = counts.cols();
    std::vector<std::vector<double>> residual(n, std::vector<double>(static_cast<std::size_t>(t)));
    for (std::size_t i = 0; i < n; ++i)
        for (Eigen::Index k = 0; k < t; ++k) {
            const Eigen::Index row = static_cast<Eigen::Index>(i);
            residual[i][static_cast<std::size_t>(k)] = counts(row, k) - m.observation(row, 0) * velocity(0, k) -
                                                       m.observation(row, 1) * velocity(1, k) -
                                                       m.observation_offset(row);
        }
    std::vector<std::vector<double>> q(n, std::vector<double>(n, 0.0));
    double mean_variance = 0.0;
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            if (diagonal && i != j)
                continue;
            for (std::size_t k = 0; k < residual[i].size(); ++k)
                q[i][j] += residual[i][k] * residual[j][k];
            q[i][j] /= static_cast<double>(t);
            if (i == j)
                mean_variance += q[i][i] / static_cast<double>(n);
        }
    for (std::size_t i = 0; i < n; ++i)
        q[i][i] += 1e-6 * mean_variance;
    return q;
}

void expect_filter_matches_reference(ObservationNoise noise) {
    const LinearSystem train = make_system(2, 12, 3000);
    const LinearSystem test = make_system(3, 12, 300);
    KalmanOptions options;
    options.observation_noise = noise;
    const KalmanModel model = train_kalman(train.counts, train.velocity, options);
    ReferenceKalman reference(
        model, reference_noise(model, train.counts, train.velocity, noise == ObservationNoise::diagonal));
    KalmanFilter filter(model);
    for (Eigen::Index k = 0; k < test.counts.cols(); ++k) {
        std::vector<double> y(test.counts.col(k).data(), test.counts.col(k).data() + test.counts.rows());
        const std::array<double, 2> expected = reference.step(y);
        const Eigen::Vector2d got = filter.step(test.counts.col(k));
        ASSERT_NEAR(got(0), expected[0], 1e-9 * (1.0 + std::abs(expected[0]))) << "bin " << k;
        ASSERT_NEAR(got(1), expected[1], 1e-9 * (1.0 + std::abs(expected[1]))) << "bin " << k;
    }
}

TEST(Kalman, InformationFormEqualsTextbookFilterWithFullNoise) {
    expect_filter_matches_reference(ObservationNoise::full);
}

TEST(Kalman, InformationFormEqualsTextbookFilterWithDiagonalNoise) {
    expect_filter_matches_reference(ObservationNoise::diagonal);
}

TEST(Kalman, SteadyStateConvergesToTheFullFilter) {
    const LinearSystem train = make_system(4, 10, 3000);
    const LinearSystem test = make_system(5, 10, 400);
    const KalmanModel full = train_kalman(train.counts, train.velocity, {});
    KalmanModel steady = full;
    compute_steady_state(steady);
    KalmanFilter full_filter(full), steady_filter(steady);
    double early_difference = 0.0, late_difference = 0.0;
    for (Eigen::Index k = 0; k < test.counts.cols(); ++k) {
        const double difference =
            (full_filter.step(test.counts.col(k)) - steady_filter.step(test.counts.col(k))).cwiseAbs().maxCoeff();
        if (k < 2)
            early_difference = std::max(early_difference, difference);
        if (k >= 100)
            late_difference = std::max(late_difference, difference);
    }
    // The filters start apart (the full one begins from the stationary covariance) and agree once converged.
    EXPECT_GT(early_difference, 1e-6);
    EXPECT_LT(late_difference, 1e-10);
    // The steady-state gain is K = P H^T Q^-1 with P a fixed point of the Riccati recursion.
    const Eigen::Matrix2d& p = steady.steady_state_covariance;
    const Eigen::Matrix2d prior = steady.transition * p * steady.transition.transpose() + steady.process_noise;
    EXPECT_LT(((prior.inverse() + steady.information_matrix).inverse() - p).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(Kalman, ConstantKinematicsAreRejected) {
    const Eigen::MatrixXd counts = Eigen::MatrixXd::Ones(3, 50);
    const Eigen::MatrixXd velocity = Eigen::MatrixXd::Zero(2, 50);
    EXPECT_NE(input_error_of([&] { train_kalman(counts, velocity, {}); }).find("do not vary"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------------
// Wiener

TEST(Wiener, RecoversAKnownLaggedSystem) {
    std::mt19937 rng(11);
    constexpr Eigen::Index n = 6, lags = 3, bins = 20000;
    Eigen::MatrixXd counts(n, bins);
    std::poisson_distribution<int> poisson(3.0);
    for (Eigen::Index k = 0; k < bins; ++k)
        for (Eigen::Index i = 0; i < n; ++i)
            counts(i, k) = poisson(rng);
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    Eigen::MatrixXd weights(2, n * lags);
    for (Eigen::Index r = 0; r < 2; ++r)
        for (Eigen::Index c = 0; c < n * lags; ++c)
            weights(r, c) = uniform(rng);
    const Eigen::Vector2d intercept(0.5, -1.5);
    std::normal_distribution<double> noise(0.0, 0.1);
    Eigen::MatrixXd velocity(2, bins);
    for (Eigen::Index k = 0; k < bins; ++k) {
        Eigen::Vector2d v = intercept + Eigen::Vector2d(noise(rng), noise(rng));
        for (Eigen::Index lag = 0; lag < lags && lag <= k; ++lag)
            v += weights.middleCols(lag * n, n) * counts.col(k - lag);
        velocity.col(k) = v;
    }
    WienerOptions options;
    options.lags = static_cast<int>(lags);
    options.ridge = 0.0;
    const WienerModel model = train_wiener(counts, 0, velocity, options);
    EXPECT_LT((model.weights - weights).cwiseAbs().maxCoeff(), 0.005);
    EXPECT_LT((model.intercept - intercept).cwiseAbs().maxCoeff(), 0.05);

    // The streaming filter reproduces the system up to its noise.
    WienerFilter filter(model);
    double worst = 0.0;
    for (Eigen::Index k = 0; k < 1000; ++k)
        worst = std::max(worst, (filter.step(counts.col(k)) - velocity.col(k)).cwiseAbs().maxCoeff());
    EXPECT_LT(worst, 0.6); // 6 sigma of the added noise
}

TEST(Wiener, PrimalAndDualRidgeAgree) {
    std::mt19937 rng(12);
    constexpr Eigen::Index n = 5, bins = 80;
    const Eigen::MatrixXd counts = Eigen::MatrixXd::NullaryExpr(
        n, bins + 2, [&]() { return static_cast<double>(std::poisson_distribution<int>(2.0)(rng)); });
    const Eigen::MatrixXd velocity =
        Eigen::MatrixXd::NullaryExpr(2, bins, [&]() { return std::normal_distribution<double>(0.0, 1.0)(rng); });
    WienerOptions options;
    options.lags = 3;
    options.ridge = 0.7;
    const WienerModel primal = train_wiener(counts, 2, velocity, options);
    const WienerModel dual = train_wiener_dual(counts, 2, velocity, options);
    EXPECT_LT((primal.weights - dual.weights).cwiseAbs().maxCoeff(), 1e-10);
    EXPECT_LT((primal.intercept - dual.intercept).cwiseAbs().maxCoeff(), 1e-10);
    // A larger penalty shrinks the weights.
    options.ridge = 50.0;
    EXPECT_LT(train_wiener(counts, 2, velocity, options).weights.norm(), primal.weights.norm());
}

// ---------------------------------------------------------------------------------------------------------------
// Binning

SpikeTrains trains(std::vector<std::uint64_t> times, std::vector<std::int32_t> labels, std::vector<std::int32_t> ids) {
    SpikeTrains s;
    s.times = std::move(times);
    s.labels = std::move(labels);
    s.unit_ids = std::move(ids);
    return s;
}

TEST(Binning, SpikesOnBinEdgesGoToTheBinTheyStart) {
    const SpikeTrains s = trains({0, 599, 600, 1199, 1200, 1799, 1800, 5000}, {3, 3, 7, 3, 7, 7, 3, 3}, {3, 7});
    const Eigen::MatrixXd counts = bin_counts(s, s.unit_ids, 600, 3);
    Eigen::MatrixXd expected(2, 3);
    expected << 2, 1, 0, //
        0, 1, 2;
    EXPECT_EQ(counts, expected); // spikes from sample 1800 on are past the last bin
    EXPECT_EQ(bin_samples(20.0, 30000.0), 600u);
    EXPECT_EQ(bin_samples(20.0, 30000.4), 600u);
    EXPECT_EQ(bin_samples(0.01, 30000.0), 1u);
}

TEST(Binning, UnknownLabelIsAClearError) {
    const SpikeTrains s = trains({10, 20}, {3, 9}, {3, 9});
    const std::string message = input_error_of([&] { bin_counts(s, {3, 7}, 600, 1); });
    EXPECT_NE(message.find("spike label 9"), std::string::npos) << message;
    EXPECT_NE(message.find("train a model on these spikes"), std::string::npos) << message;
}

TEST(Binning, CausalSmoothingOnlyLooksBack) {
    Eigen::MatrixXd impulse = Eigen::MatrixXd::Zero(1, 10);
    impulse(0, 3) = 1.0;

    Eigen::MatrixXd exponential = impulse;
    smooth_causal(exponential, Smoothing::exponential, 2.0);
    const double keep = std::exp(-0.5);
    for (Eigen::Index k = 0; k < 10; ++k)
        EXPECT_NEAR(exponential(0, k), k < 3 ? 0.0 : (1.0 - keep) * std::pow(keep, static_cast<double>(k - 3)), 1e-15)
            << k;
    // From the first bin on (the state before bin 0 is 0).
    Eigen::MatrixXd first = Eigen::MatrixXd::Zero(1, 4);
    first(0, 0) = 1.0;
    smooth_causal(first, Smoothing::exponential, 2.0);
    for (Eigen::Index k = 0; k < 4; ++k)
        EXPECT_NEAR(first(0, k), (1.0 - keep) * std::pow(keep, static_cast<double>(k)), 1e-15) << k;

    Eigen::MatrixXd boxcar = impulse;
    smooth_causal(boxcar, Smoothing::boxcar, 3.0);
    for (Eigen::Index k = 0; k < 10; ++k)
        EXPECT_NEAR(boxcar(0, k), k >= 3 && k <= 5 ? 1.0 / 3.0 : 0.0, 1e-15) << k;

    // A constant input stays constant once the window is full (unit gain).
    Eigen::MatrixXd constant = Eigen::MatrixXd::Constant(1, 10, 4.0);
    smooth_causal(constant, Smoothing::boxcar, 4.0);
    EXPECT_NEAR(constant(0, 2), 3.0, 1e-12); // bins before 0 count as 0
    EXPECT_NEAR(constant(0, 9), 4.0, 1e-12);

    Eigen::MatrixXd none = impulse;
    smooth_causal(none, Smoothing::none, 5.0);
    EXPECT_EQ(none, impulse);
}

TEST(Binning, KinematicsAreInterpolatedAtBinCentres) {
    Kinematics k;
    for (int i = 0; i <= 100; ++i) { // 0..1 s every 10 ms, vx = t, vy = -2 t
        const double t = 0.01 * i;
        k.time_s.push_back(t);
        k.x.push_back(0.5 * t * t);
        k.y.push_back(-t * t);
        k.vx.push_back(t);
        k.vy.push_back(-2.0 * t);
    }
    const BinRange range = bins_with_kinematics(k, 0.025);
    EXPECT_EQ(range.first, 0u);
    EXPECT_EQ(range.end, 40u); // centre of bin 39 = 0.9875 s <= 1 s; bin 40 = 1.0125 s
    const Eigen::MatrixXd v = velocity_at_bins(k, 0.025, range);
    for (Eigen::Index b = 0; b < v.cols(); ++b) {
        EXPECT_NEAR(v(0, b), (static_cast<double>(b) + 0.5) * 0.025, 1e-12);
        EXPECT_NEAR(v(1, b), -2.0 * (static_cast<double>(b) + 0.5) * 0.025, 1e-12);
    }
    // Kinematics that start later leave the first bins out.
    Kinematics late = k;
    for (double& t : late.time_s)
        t += 0.1;
    EXPECT_EQ(bins_with_kinematics(late, 0.025).first, 4u); // centre 0.1125 s
}

// ---------------------------------------------------------------------------------------------------------------
// Model files

class ModelFile : public TempDirTest {
protected:
    DecoderModel trained(DecoderKind kind, bool steady = false) {
        const LinearSystem s = make_system(6, 4, 500);
        DecoderModel model;
        model.kind = kind;
        model.unit_ids = {2, 5, 8, 11};
        model.training_bins = {0, 500};
        if (kind == DecoderKind::kalman) {
            KalmanOptions options;
            options.steady_state = steady;
            model.kalman = train_kalman(s.counts, s.velocity, options);
        } else {
            WienerOptions options;
            options.lags = 2;
            model.wiener = train_wiener(s.counts, 0, s.velocity, options);
        }
        return model;
    }

    nlohmann::json written(const DecoderModel& model) {
        write_model(model, dir_ / "model.json");
        std::ifstream in(dir_ / "model.json");
        return nlohmann::json::parse(in);
    }

    std::string error_reading(const nlohmann::json& j) {
        std::ofstream(dir_ / "bad.json") << j.dump();
        return input_error_of([&] { read_model(dir_ / "bad.json"); });
    }
};

TEST_F(ModelFile, KalmanAndWienerRoundTripExactly) {
    for (const DecoderModel& model :
         {trained(DecoderKind::kalman), trained(DecoderKind::kalman, true), trained(DecoderKind::wiener)}) {
        write_model(model, dir_ / "model.json");
        const DecoderModel back = read_model(dir_ / "model.json");
        EXPECT_EQ(back.kind, model.kind);
        EXPECT_EQ(back.unit_ids, model.unit_ids);
        EXPECT_EQ(back.bin_samples, model.bin_samples);
        EXPECT_EQ(back.training_bins.end, model.training_bins.end);
        if (model.kalman) {
            EXPECT_EQ(back.kalman->information, model.kalman->information);
            EXPECT_EQ(back.kalman->observation, model.kalman->observation);
            EXPECT_EQ(back.kalman->transition, model.kalman->transition);
            EXPECT_EQ(back.kalman->steady_state, model.kalman->steady_state);
            EXPECT_EQ(back.kalman->steady_state_gain, model.kalman->steady_state_gain);
        } else {
            EXPECT_EQ(back.wiener->weights, model.wiener->weights);
            EXPECT_EQ(back.wiener->intercept, model.wiener->intercept);
            EXPECT_EQ(back.wiener->lags, model.wiener->lags);
        }
    }
}

TEST_F(ModelFile, MalformedJsonIsAClearError) {
    std::ofstream(dir_ / "bad.json") << "{\"format\": \"spikeline decoder\", ";
    const std::string message = input_error_of([&] { read_model(dir_ / "bad.json"); });
    EXPECT_NE(message.find("is not valid JSON"), std::string::npos) << message;
    EXPECT_NE(input_error_of([&] { read_model(dir_ / "missing.json"); }).find("cannot open"), std::string::npos);
}

TEST_F(ModelFile, WrongFormatVersionOrKindIsAClearError) {
    nlohmann::json j = written(trained(DecoderKind::kalman));
    nlohmann::json other = j;
    other["format"] = "something else";
    EXPECT_NE(error_reading(other).find("'format'"), std::string::npos);
    other = j;
    other["version"] = 2;
    EXPECT_NE(error_reading(other).find("version 2 is not supported"), std::string::npos);
    other = j;
    other["kind"] = "svm";
    const std::string message = error_reading(other);
    EXPECT_NE(message.find("kind 'svm' is unknown"), std::string::npos) << message;
    EXPECT_NE(message.find("spikeline decode train"), std::string::npos) << message;
    other = j;
    other["kind"] = "wiener"; // the matrices are a Kalman filter's
    EXPECT_NE(error_reading(other).find("missing 'wiener'"), std::string::npos);
}

TEST_F(ModelFile, WrongMatrixShapeOrValuesAreClearErrors) {
    nlohmann::json j = written(trained(DecoderKind::kalman));
    nlohmann::json other = j;
    other["kalman"]["observation"]["rows"] = 3;
    std::string message = error_reading(other);
    EXPECT_NE(message.find("matrix 'observation' is 3 x 2 but 4 x 2 is expected for 4 inputs"), std::string::npos)
        << message;
    other = j;
    other["kalman"]["information"]["data"].erase(0);
    EXPECT_NE(error_reading(other).find("needs 8 numbers"), std::string::npos);
    other = j;
    other["kalman"]["transition"]["data"][0] = "x";
    EXPECT_NE(error_reading(other).find("not a finite number"), std::string::npos);
    other = j;
    other["unit_ids"] = {2, 5, 8}; // one input fewer than the matrices
    EXPECT_NE(error_reading(other).find("expected for 3 inputs"), std::string::npos);
    other = j;
    other["unit_ids"] = {5, 2, 8, 11};
    EXPECT_NE(error_reading(other).find("ascending"), std::string::npos);
    other = j;
    other["unit_ids"] = {2, 5, 8, 4294967307LL}; // would wrap onto unit 11
    EXPECT_NE(error_reading(other).find("32-bit"), std::string::npos);

    nlohmann::json w = written(trained(DecoderKind::wiener));
    w["wiener"]["lags"] = 3;
    EXPECT_NE(error_reading(w).find("matrix 'weights' is 2 x 8 but 2 x 12 is expected"), std::string::npos);
}

TEST_F(ModelFile, MismatchedUnitsAreAClearError) {
    const DecoderModel model = trained(DecoderKind::kalman);
    SpikeTrains spikes = trains({}, {}, {2, 5, 8});
    std::string message = input_error_of([&] { check_inputs_match(model, spikes); });
    EXPECT_NE(message.find("trained on 4 units but the spikes have 3"), std::string::npos) << message;
    EXPECT_NE(message.find("train a model on these spikes"), std::string::npos) << message;
    spikes.unit_ids = {2, 5, 9, 11};
    message = input_error_of([&] { check_inputs_match(model, spikes); });
    EXPECT_NE(message.find("first difference at position 2: 9 vs 8"), std::string::npos) << message;
    spikes.unit_ids = model.unit_ids;
    spikes.source = UnitSource::channels;
    message = input_error_of([&] { check_inputs_match(model, spikes); });
    EXPECT_NE(message.find("decodes units but the spikes are labelled by channels"), std::string::npos) << message;
    spikes.source = UnitSource::units;
    EXPECT_NO_THROW(check_inputs_match(model, spikes));
}

// ---------------------------------------------------------------------------------------------------------------
// Spike folders

class SpikeFolder : public TempDirTest {};

TEST_F(SpikeFolder, RecognisesPhyGroundTruthAndDetectFolders) {
    const std::vector<std::uint64_t> times = {5, 10, 20};
    fs::create_directories(dir_ / "phy");
    io::write_npy(dir_ / "phy" / "spike_times.npy", times);
    io::write_npy(dir_ / "phy" / "spike_clusters.npy", std::vector<std::int32_t>{4, 1, 4});
    std::ofstream(dir_ / "phy" / "params.py") << "dat_path = 'x.bin'\nn_channels_dat = 64\nsample_rate = 25000.0\n";
    const SpikeTrains phy = read_spike_folder(dir_ / "phy");
    EXPECT_EQ(phy.source, UnitSource::clusters);
    EXPECT_EQ(phy.sample_rate, 25000.0);
    EXPECT_EQ(phy.unit_ids, (std::vector<std::int32_t>{1, 4}));

    fs::create_directories(dir_ / "gt");
    io::write_npy(dir_ / "gt" / "spike_times.npy", times);
    io::write_npy(dir_ / "gt" / "spike_units.npy", std::vector<std::int32_t>{0, 2, 2});
    std::ofstream(dir_ / "gt" / "units.tsv") << "unit_id\tpeak_channel\n0\t1\n1\t5\n2\t7\n";
    std::ofstream(dir_ / "gt" / "info.json") << R"({"sample_rate": 20000.0})";
    const SpikeTrains gt = read_spike_folder(dir_ / "gt");
    EXPECT_EQ(gt.source, UnitSource::units);
    EXPECT_EQ(gt.sample_rate, 20000.0);
    EXPECT_EQ(gt.unit_ids, (std::vector<std::int32_t>{0, 1, 2})); // the silent unit 1 is still an input

    fs::create_directories(dir_ / "det");
    io::write_npy(dir_ / "det" / "spike_times.npy", times);
    io::write_npy(dir_ / "det" / "spike_channels.npy", std::vector<std::int32_t>{3, 0, 3});
    std::ofstream(dir_ / "det" / "detect_info.json") << R"({"sample_rate": 30000.0, "n_channels": 4})";
    const SpikeTrains det = read_spike_folder(dir_ / "det");
    EXPECT_EQ(det.source, UnitSource::channels);
    EXPECT_EQ(det.unit_ids, (std::vector<std::int32_t>{0, 1, 2, 3}));
    EXPECT_EQ(read_spike_folder(dir_ / "det", std::nullopt, 1000.0).sample_rate, 1000.0);
}

TEST_F(SpikeFolder, MissingOrInconsistentFilesAreClearErrors) {
    EXPECT_NE(input_error_of([&] { read_spike_folder(dir_); }).find("holds none of"), std::string::npos);
    io::write_npy(dir_ / "spike_times.npy", std::vector<std::uint64_t>{1, 2, 3});
    io::write_npy(dir_ / "spike_channels.npy", std::vector<std::int32_t>{0, 1});
    EXPECT_NE(input_error_of([&] { read_spike_folder(dir_); }).find("has 2 entries but spike_times.npy has 3"),
              std::string::npos);
    EXPECT_NE(
        input_error_of([&] { read_spike_folder(dir_, UnitSource::clusters); }).find("spike_clusters.npy is missing"),
        std::string::npos);
    io::write_npy(dir_ / "spike_channels.npy", std::vector<std::int32_t>{0, 1, 9});
    std::ofstream(dir_ / "detect_info.json") << R"({"sample_rate": 30000.0, "n_channels": 4})";
    EXPECT_NE(input_error_of([&] { read_spike_folder(dir_); }).find("labels outside the 4 channels"),
              std::string::npos);
}

TEST_F(SpikeFolder, KinematicsOfARecordingOfAnotherLengthAreRejected) {
    // A detect folder of a 10 s recording at 1 kHz, spikes until 9.5 s.
    fs::create_directories(dir_ / "det");
    io::write_npy(dir_ / "det" / "spike_times.npy", std::vector<std::uint64_t>{100, 5000, 9500});
    io::write_npy(dir_ / "det" / "spike_channels.npy", std::vector<std::int32_t>{0, 1, 0});
    std::ofstream(dir_ / "det" / "detect_info.json")
        << R"({"sample_rate": 1000.0, "n_channels": 2, "n_frames": 10000})";
    const SpikeTrains spikes = read_spike_folder(dir_ / "det");
    ASSERT_TRUE(spikes.recording_s.has_value());
    EXPECT_DOUBLE_EQ(*spikes.recording_s, 10.0);
    const auto kinematics_until = [](double end_s) {
        Kinematics k;
        for (double t = 0; t <= end_s + 1e-9; t += 0.01) {
            k.time_s.push_back(t);
            k.x.push_back(0);
            k.y.push_back(0);
            k.vx.push_back(std::sin(t));
            k.vy.push_back(std::cos(t));
        }
        return k;
    };
    EXPECT_NO_THROW(check_kinematics_match(spikes, kinematics_until(9.99)));
    EXPECT_NE(input_error_of([&] {
                  check_kinematics_match(spikes, kinematics_until(30));
              }).find("the kinematics end at 30.000 s but the spikes' recording lasts 10.000 s"),
              std::string::npos);
    EXPECT_NE(input_error_of([&] { check_kinematics_match(spikes, kinematics_until(6)); }).find("different lengths"),
              std::string::npos);
    // Without the length in the folder, spikes past the kinematics' end still give the mismatch away.
    SpikeTrains unknown_length = spikes;
    unknown_length.recording_s.reset();
    EXPECT_NO_THROW(check_kinematics_match(unknown_length, kinematics_until(30)));
    EXPECT_NE(input_error_of([&] {
                  check_kinematics_match(unknown_length, kinematics_until(6));
              }).find("the spikes go on until 9.500 s but the kinematics end at 6.000 s"),
              std::string::npos);
}

TEST_F(SpikeFolder, KinematicsMustBeFloat64WithFiveColumns) {
    const std::vector<double> rows = {0.0, 1, 2, 3, 4, 0.01, 1, 2, 3, 4};
    io::write_npy(dir_ / "k.npy", rows.data(), {2, 5});
    EXPECT_EQ(read_kinematics(dir_ / "k.npy").size(), 2u);
    io::write_npy(dir_ / "k.npy", rows.data(), {5, 2});
    EXPECT_NE(input_error_of([&] { read_kinematics(dir_ / "k.npy"); }).find("shape (n, 5)"), std::string::npos);
    const std::vector<float> floats(10, 0.0f);
    io::write_npy(dir_ / "k.npy", floats.data(), {2, 5});
    EXPECT_NE(input_error_of([&] { read_kinematics(dir_ / "k.npy"); }).find("float64"), std::string::npos);
    const std::vector<double> backwards = {0.01, 1, 2, 3, 4, 0.0, 1, 2, 3, 4};
    io::write_npy(dir_ / "k.npy", backwards.data(), {2, 5});
    EXPECT_NE(input_error_of([&] { read_kinematics(dir_ / "k.npy"); }).find("increase strictly"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------------
// The simulator's behaviour task, and decoding it end to end

class Behavior : public TempDirTest {
protected:
    static constexpr double kDurationS = 30.0;

    /// Few channels keep the (noise-dominated) simulation fast; the units only need ground truth here.
    void simulate(const fs::path& out, bool behavior, double duration_s = kDurationS, int units = 20) {
        sim::SimulationConfig config;
        config.n_channels = 16;
        config.n_units = units;
        config.duration_s = duration_s;
        config.seed = 3;
        config.behavior = behavior;
        sim::simulate_to_folder(config, probe::default_probe(config.n_channels), out);
    }
};

TEST_F(Behavior, KinematicsAreConsistentAndTuningIsWritten) {
    simulate(dir_ / "sim", true);
    const fs::path truth = dir_ / "sim" / "ground_truth";
    const io::NpyArray array = io::read_npy(truth / "kinematics.npy");
    ASSERT_EQ(array.shape.size(), 2u);
    EXPECT_EQ(array.shape[0], static_cast<std::size_t>(kDurationS / sim::kKinematicsStepS + 0.5));
    EXPECT_EQ(array.shape[1], 5u);
    const Kinematics k = read_kinematics(truth / "kinematics.npy");
    double top_speed = 0.0, moving = 0.0;
    for (std::size_t i = 0; i < k.size(); ++i) {
        EXPECT_NEAR(k.time_s[i], static_cast<double>(i) * sim::kKinematicsStepS, 1e-12);
        EXPECT_LE(std::abs(k.x[i]), 10.0);
        EXPECT_LE(std::abs(k.y[i]), 10.0);
        const double speed = std::hypot(k.vx[i], k.vy[i]);
        top_speed = std::max(top_speed, speed);
        moving += speed > 1.0 ? 1.0 : 0.0;
        if (i > 0) { // positions integrate velocity (trapezoid rule; minimum-jerk paths are smooth)
            EXPECT_NEAR(k.x[i] - k.x[i - 1], 0.5 * sim::kKinematicsStepS * (k.vx[i] + k.vx[i - 1]), 1e-3) << i;
            EXPECT_NEAR(k.y[i] - k.y[i - 1], 0.5 * sim::kKinematicsStepS * (k.vy[i] + k.vy[i - 1]), 1e-3) << i;
        }
    }
    EXPECT_LT(top_speed, 46.875); // 1.875 * distance / duration is bounded by the duration rule
    EXPECT_GT(top_speed, 10.0);
    EXPECT_GT(moving / static_cast<double>(k.size()), 0.4); // reaches, with pauses between them
    EXPECT_LT(moving / static_cast<double>(k.size()), 0.95);

    std::ifstream tuning(truth / "tuning.tsv");
    std::string line;
    std::getline(tuning, line);
    EXPECT_EQ(line, "unit_id\ttuned\tbaseline_hz\tdepth_hz_per_cm_s\tpreferred_direction_rad");
    int units = 0, tuned = 0;
    while (std::getline(tuning, line)) {
        std::istringstream fields(line);
        int id = 0, is_tuned = 0;
        double baseline = 0, depth = 0;
        fields >> id >> is_tuned >> baseline >> depth;
        EXPECT_EQ(id, units);
        EXPECT_EQ(is_tuned == 1, depth > 0);
        ++units;
        tuned += is_tuned;
    }
    EXPECT_EQ(units, 20);
    EXPECT_EQ(tuned, 12); // 60 %
    std::ifstream info_file(truth / "info.json");
    const nlohmann::json info = nlohmann::json::parse(info_file);
    EXPECT_EQ(info["behavior"]["n_tuned_units"], 12);
}

TEST_F(Behavior, DefaultOutputHasNoBehaviourAndBehaviourIsDeterministic) {
    simulate(dir_ / "plain", false);
    EXPECT_FALSE(fs::exists(dir_ / "plain" / "ground_truth" / "kinematics.npy"));
    EXPECT_FALSE(fs::exists(dir_ / "plain" / "ground_truth" / "tuning.tsv"));
    simulate(dir_ / "a", true);
    simulate(dir_ / "b", true);
    for (const char* name : {"spike_times.npy", "spike_units.npy", "kinematics.npy"})
        EXPECT_EQ(io::read_npy(dir_ / "a" / "ground_truth" / name).data,
                  io::read_npy(dir_ / "b" / "ground_truth" / name).data)
            << name;
    // Only the tuned units' spikes change: the untuned ones are the same as without behaviour.
    const auto plain_units = io::read_npy_vector<std::int32_t>(dir_ / "plain" / "ground_truth" / "spike_units.npy");
    const auto plain_times = io::read_npy_vector<std::uint64_t>(dir_ / "plain" / "ground_truth" / "spike_times.npy");
    const auto units = io::read_npy_vector<std::int32_t>(dir_ / "a" / "ground_truth" / "spike_units.npy");
    const auto times = io::read_npy_vector<std::uint64_t>(dir_ / "a" / "ground_truth" / "spike_times.npy");
    auto times_of = [](const auto& all_times, const auto& all_units, int unit) {
        std::vector<std::uint64_t> out;
        for (std::size_t i = 0; i < all_units.size(); ++i)
            if (all_units[i] == unit)
                out.push_back(all_times[i]);
        return out;
    };
    EXPECT_EQ(times_of(times, units, 0), times_of(plain_times, plain_units, 0)); // unit 0 is untuned at 60 %
    EXPECT_NE(times_of(times, units, 1), times_of(plain_times, plain_units, 1)); // unit 1 is tuned
}

TEST_F(Behavior, TunedUnitsFireMoreTowardsTheirPreferredDirection) {
    simulate(dir_ / "sim", true);
    const fs::path truth = dir_ / "sim" / "ground_truth";
    const SpikeTrains spikes = read_spike_folder(truth);
    const Kinematics k = read_kinematics(truth / "kinematics.npy");
    const double bin_s = 0.02;
    const BinRange range = bins_with_kinematics(k, bin_s);
    const Eigen::MatrixXd counts = bin_counts(spikes, spikes.unit_ids, 600, range.end);
    const Eigen::MatrixXd v = velocity_at_bins(k, bin_s, range);
    std::ifstream tuning(truth / "tuning.tsv");
    std::string line;
    std::getline(tuning, line);
    int checked = 0;
    while (std::getline(tuning, line)) {
        std::istringstream fields(line);
        int id = 0, tuned = 0;
        double baseline = 0, depth = 0, preferred = 0;
        fields >> id >> tuned >> baseline >> depth >> preferred;
        if (!tuned)
            continue;
        // Mean rate while moving towards vs away from the preferred direction at > 10 cm/s.
        double towards = 0, away = 0, n_towards = 0, n_away = 0;
        for (Eigen::Index b = 0; b < v.cols(); ++b) {
            const double drive = v(0, b) * std::cos(preferred) + v(1, b) * std::sin(preferred);
            const double count = counts(id, static_cast<Eigen::Index>(range.first) + b);
            if (drive > 10.0) {
                towards += count;
                ++n_towards;
            } else if (drive < -10.0) {
                away += count;
                ++n_away;
            }
        }
        ASSERT_GT(n_towards, 50);
        ASSERT_GT(n_away, 50);
        EXPECT_GT(towards / n_towards, away / n_away) << "unit " << id;
        ++checked;
    }
    EXPECT_EQ(checked, 12);
}

TEST_F(Behavior, DecodersPredictHeldOutVelocityFromGroundTruthSpikes) {
    simulate(dir_ / "sim", true, 60.0, 80); // 48 tuned units; 12 s held out (about 10 reaches)
    const fs::path truth = dir_ / "sim" / "ground_truth";
    const SpikeTrains spikes = read_spike_folder(truth);
    const Kinematics k = read_kinematics(truth / "kinematics.npy");
    for (DecoderKind kind : {DecoderKind::kalman, DecoderKind::wiener}) {
        TrainSettings settings;
        settings.kind = kind;
        const DecoderModel model = train_decoder(spikes, k, settings);
        EXPECT_EQ(model.training_bins.end, 2400u); // 80 % of 3000 bins
        const Evaluation evaluation = evaluate_decoder(model, spikes, k);
        EXPECT_EQ(evaluation.test_bins.first, 2400u);
        EXPECT_EQ(evaluation.test_bins.end, 3000u);
        EXPECT_GT(evaluation.vx.correlation, 0.3) << to_string(kind);
        EXPECT_GT(evaluation.vy.correlation, 0.3) << to_string(kind);
        EXPECT_GT(evaluation.vx.r2, 0.0) << to_string(kind);
        EXPECT_GT(evaluation.vy.r2, 0.0) << to_string(kind);
        // Scoring every bin covers the training bins too; the held-out bins are its tail.
        const Evaluation everything = evaluate_decoder(model, spikes, k, true);
        EXPECT_EQ(everything.test_bins.first, 0u);
        EXPECT_EQ(everything.test_bins.end, 3000u);
        EXPECT_EQ(everything.estimate.rightCols(600), evaluation.estimate);
    }
}

TEST_F(Behavior, OnlineDecodingEqualsOfflineDecoding) {
    simulate(dir_ / "sim", true);
    const fs::path truth = dir_ / "sim" / "ground_truth";
    const SpikeTrains spikes = read_spike_folder(truth);
    const Kinematics k = read_kinematics(truth / "kinematics.npy");
    std::mt19937 rng(5);
    for (const auto& [kind, smoothing] :
         {std::pair{DecoderKind::kalman, Smoothing::exponential}, std::pair{DecoderKind::wiener, Smoothing::boxcar},
          std::pair{DecoderKind::kalman, Smoothing::none}}) {
        SCOPED_TRACE(std::string(to_string(kind)) + " " + to_string(smoothing));
        TrainSettings settings;
        settings.kind = kind;
        settings.bins.smoothing = smoothing;
        settings.bins.smooth_ms = 60.0;
        const DecoderModel model = train_decoder(spikes, k, settings);
        const std::size_t n_bins = 1400;
        const Eigen::MatrixXd offline = decode_bins(model, model_inputs(model, spikes, n_bins));

        // The stream delivers spikes in chunks of random length; each chunk ends with advance_to.
        OnlineDecoder online(model);
        std::vector<BinEstimate> estimates;
        std::size_t next = 0;
        std::uint64_t delivered = 0;
        const std::uint64_t end = n_bins * model.bin_samples;
        while (delivered < end) {
            delivered = std::min(end, delivered + std::uniform_int_distribution<std::uint64_t>(1, 2000)(rng));
            for (; next < spikes.times.size() && spikes.times[next] < delivered; ++next)
                online.add_spike(spikes.times[next], spikes.labels[next]);
            for (const BinEstimate& e : online.advance_to(delivered))
                estimates.push_back(e);
        }
        ASSERT_EQ(estimates.size(), n_bins);
        for (std::size_t b = 0; b < n_bins; ++b) {
            ASSERT_EQ(estimates[b].bin, b);
            EXPECT_EQ(estimates[b].end_sample, (b + 1) * model.bin_samples);
            ASSERT_NEAR(estimates[b].vx, offline(0, static_cast<Eigen::Index>(b)), 1e-9) << b;
            ASSERT_NEAR(estimates[b].vy, offline(1, static_cast<Eigen::Index>(b)), 1e-9) << b;
        }
        EXPECT_EQ(online.unknown_label_spikes(), 0u);
        // Unknown labels and spikes of closed bins are counted, not binned.
        online.add_spike(end + 5, 999);
        online.add_spike(end - model.bin_samples, spikes.unit_ids.front());
        EXPECT_EQ(online.unknown_label_spikes(), 1u);
        EXPECT_EQ(online.late_spikes(), 1u);
    }
}

TEST(Scores, R2AndCorrelationFollowTheirDefinitions) {
    Eigen::RowVectorXd truth(4), estimate(4);
    truth << 1, 2, 3, 4;
    estimate << 1, 2, 3, 4;
    EXPECT_DOUBLE_EQ(score_axis(truth, estimate).r2, 1.0);
    estimate << 2.5, 2.5, 2.5, 2.5; // the mean: R2 0, correlation undefined
    EXPECT_DOUBLE_EQ(score_axis(truth, estimate).r2, 0.0);
    EXPECT_TRUE(std::isnan(score_axis(truth, estimate).correlation));
    estimate << 2, 4, 6, 8; // perfectly correlated but scaled
    EXPECT_DOUBLE_EQ(score_axis(truth, estimate).correlation, 1.0);
    EXPECT_DOUBLE_EQ(score_axis(truth, estimate).r2, 1.0 - 30.0 / 5.0);
}

} // namespace
