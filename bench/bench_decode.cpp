// Micro-benchmarks of the velocity decoders: time per bin of a filter step, and training time, for 1024 inputs
// (threshold crossings of a 1024-channel probe) and up to 4000 inputs (sorted units), on the synthetic sessions of
// `spikeline bench --decoder` (only the sizes matter for the timing).
#include "decode/benchmark.hpp"

#include <benchmark/benchmark.h>

#include <map>

namespace {

using namespace spikeline::decode;

constexpr Eigen::Index kTrainingBins = 6000; ///< 120 s of 20 ms bins
constexpr Eigen::Index kStepBins = 512;      ///< bins cycled through by the step benchmarks

const SyntheticSession& data(Eigen::Index n_inputs) {
    static std::map<Eigen::Index, SyntheticSession> cache;
    auto found = cache.find(n_inputs);
    if (found == cache.end())
        found = cache.emplace(n_inputs, synthetic_session(n_inputs, kTrainingBins, 1)).first;
    return found->second;
}

KalmanModel kalman_model(Eigen::Index n_inputs, bool steady_state) {
    const SyntheticSession& d = data(n_inputs);
    KalmanOptions options;
    options.observation_noise = ObservationNoise::diagonal; // the step cost does not depend on it
    options.steady_state = steady_state;
    return train_kalman(d.counts.leftCols(1000), d.velocity.leftCols(1000), options);
}

void BM_KalmanStep(benchmark::State& state) {
    const Eigen::Index n = state.range(0);
    const KalmanModel model = kalman_model(n, false);
    const Eigen::MatrixXd& counts = data(n).counts;
    KalmanFilter filter(model);
    Eigen::Index k = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(filter.step(counts.col(k)));
        k = (k + 1) % kStepBins;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KalmanStep)->Arg(1024)->Arg(4000)->Unit(benchmark::kMicrosecond);

void BM_KalmanSteadyStateStep(benchmark::State& state) {
    const Eigen::Index n = state.range(0);
    const KalmanModel model = kalman_model(n, true);
    const Eigen::MatrixXd& counts = data(n).counts;
    KalmanFilter filter(model);
    Eigen::Index k = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(filter.step(counts.col(k)));
        k = (k + 1) % kStepBins;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KalmanSteadyStateStep)->Arg(1024)->Arg(4000)->Unit(benchmark::kMicrosecond);

void BM_WienerStep(benchmark::State& state) {
    const Eigen::Index n = state.range(0);
    const SyntheticSession& d = data(n);
    WienerOptions options;
    options.lags = static_cast<int>(state.range(1));
    // Step time does not depend on the weights' values: fit on few bins (dual form) to keep set-up short.
    const WienerModel model = train_wiener(d.counts.leftCols(300), 0, d.velocity.leftCols(300), options);
    WienerFilter filter(model);
    Eigen::Index k = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(filter.step(d.counts.col(k)));
        k = (k + 1) % kStepBins;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WienerStep)->Args({1024, 5})->Args({4000, 5})->Unit(benchmark::kMicrosecond);

void BM_KalmanTrain(benchmark::State& state) {
    const Eigen::Index n = state.range(0);
    const SyntheticSession& d = data(n);
    KalmanOptions options;
    options.observation_noise = state.range(1) ? ObservationNoise::full : ObservationNoise::diagonal;
    options.steady_state = true;
    for (auto _ : state)
        benchmark::DoNotOptimize(train_kalman(d.counts, d.velocity, options));
    state.SetLabel(state.range(1) ? "full Q, 6000 bins" : "diagonal Q, 6000 bins");
}
BENCHMARK(BM_KalmanTrain)
    ->Args({1024, 0})
    ->Args({1024, 1})
    ->Args({4000, 0})
    ->Args({4000, 1})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

void BM_WienerTrain(benchmark::State& state) {
    const Eigen::Index n = state.range(0);
    const SyntheticSession& d = data(n);
    WienerOptions options;
    options.lags = static_cast<int>(state.range(1));
    for (auto _ : state)
        benchmark::DoNotOptimize(train_wiener(d.counts, 0, d.velocity, options));
    state.SetLabel(std::to_string(n * options.lags) + " features, 6000 bins");
}
BENCHMARK(BM_WienerTrain)->Args({1024, 5})->Args({4000, 5})->Unit(benchmark::kMillisecond)->Iterations(1);

} // namespace
