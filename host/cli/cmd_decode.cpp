#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "decode/benchmark.hpp"
#include "decode/pipeline.hpp"
#include "io/npy.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "util/output_folder.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace spikeline::cli {

namespace po = boost::program_options;

namespace {

const char* const kDecodeUsage =
    R"(usage: spikeline decode <train|eval> [options]   (spikeline decode <train|eval> --help)

  train   fit a Kalman or Wiener decoder of cursor velocity on the first part of a recording; writes a model JSON
  eval    decode the held-out rest of the recording with a model; prints R^2 and correlation per axis
)";

struct SpikeOptions {
    std::string spikes, kinematics, units_from;
    double sample_rate = 0; ///< 0: from the folder's metadata, else 30000
};

void add_spike_options(po::options_description& options, SpikeOptions& values) {
    options.add_options() //
        ("spikes", po::value(&values.spikes)->required(),
         "spike folder: Phy (spike_clusters.npy), simulator ground_truth (spike_units.npy) or detect output "
         "(spike_channels.npy: threshold crossings per channel)") //
        ("kinematics", po::value(&values.kinematics)->required(),
         "kinematics .npy, float64 (n, 5): time s, x, y, vx, vy (simulate --behavior writes "
         "ground_truth/kinematics.npy)") //
        ("units-from", po::value(&values.units_from),
         "what labels a spike when the folder has several: clusters, units or channels") //
        ("sample-rate", po::value(&values.sample_rate),
         "Hz (default: params.py, info.json or detect_info.json in the folder, else 30000)");
}

decode::SpikeTrains read_spikes(const SpikeOptions& values) {
    std::optional<decode::UnitSource> source;
    if (!values.units_from.empty())
        source = decode::parse_unit_source(values.units_from);
    std::optional<double> rate;
    if (values.sample_rate != 0) {
        require(std::isfinite(values.sample_rate) && values.sample_rate > 0, "--sample-rate must be positive");
        rate = values.sample_rate;
    }
    return decode::read_spike_folder(values.spikes, source, rate);
}

/// The files a decode command reads: the kinematics, the model and what read_spike_folder may open.
std::vector<std::filesystem::path> decode_inputs(const SpikeOptions& values, const std::string& model_path = {}) {
    std::vector<std::filesystem::path> files = {values.kinematics, model_path};
    for (const char* name : {"spike_times.npy", "spike_clusters.npy", "spike_units.npy", "spike_channels.npy",
                             "params.py", "info.json", "units.tsv", "detect_info.json", "spikeline_sort.json"})
        files.push_back(std::filesystem::path(values.spikes) / name);
    return files;
}

/// Exponential smoothing of the counts for the Kalman filter by default: 60 ms raised its held-out R² by 0.03-0.06 on
/// every input kind in docs/ACCURACY.md (a usual time scale for BCI rate estimates).
constexpr double kDefaultKalmanSmoothMs = 60.0;

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int decode_train(int argc, char** argv) {
    SpikeOptions spike_options;
    std::string out, decoder = "kalman", smoothing = "auto", observation_noise = "full";
    decode::TrainSettings settings;
    bool quiet = false;
    po::options_description visible(
        "spikeline decode train --spikes DIR --kinematics FILE --out MODEL [options]\n\n"
        "Fits a decoder of cursor velocity (vx, vy) from binned spike counts on the first --train-fraction of the "
        "bins; the rest is held out for spikeline decode eval\n\noptions");
    visible.add_options()("help,h", "show this help")("out,o", po::value(&out)->required(), "model file (JSON)");
    add_spike_options(visible, spike_options);
    visible.add_options()                                                                                    //
        ("decoder", po::value(&decoder)->default_value(decoder), "kalman or wiener")                         //
        ("bin-ms", po::value(&settings.bins.bin_ms)->default_value(settings.bins.bin_ms), "bin length (ms)") //
        ("smooth", po::value(&smoothing)->default_value(smoothing),
         "causal smoothing of the counts: none, exponential (time constant --smooth-ms) or boxcar (window "
         "--smooth-ms); auto: exponential for kalman, whose observation model sees one bin at a time, none for "
         "wiener, whose lags already average the counts") //
        ("smooth-ms", po::value(&settings.bins.smooth_ms),
         "smoothing time constant or window (ms; default 60 with --smooth auto)") //
        ("train-fraction", po::value(&settings.train_fraction)->default_value(settings.train_fraction, "0.8"),
         "share of the bins (from the start) used for training") //
        ("steady-state", po::bool_switch(&settings.kalman.steady_state),
         "kalman: precompute the converged gain (faster steps, same estimates once converged)") //
        ("observation-noise", po::value(&observation_noise)->default_value(observation_noise),
         "kalman: full or diagonal observation noise covariance")                                                  //
        ("lags", po::value(&settings.wiener.lags)->default_value(settings.wiener.lags), "wiener: bins of history") //
        ("ridge", po::value(&settings.wiener.ridge)->default_value(settings.wiener.ridge),
         "wiener: ridge penalty relative to the mean feature energy") //
        ("quiet,q", po::bool_switch(&quiet), "no summary");
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, vm))
        return 0;
    settings.kind = decode::parse_decoder_kind(decoder);
    if (smoothing == "auto") {
        smoothing = settings.kind == decode::DecoderKind::kalman ? "exponential" : "none";
        if (!vm.count("smooth-ms"))
            settings.bins.smooth_ms = settings.kind == decode::DecoderKind::kalman ? kDefaultKalmanSmoothMs : 0.0;
    }
    settings.bins.smoothing = decode::parse_smoothing(smoothing);
    require(observation_noise == "full" || observation_noise == "diagonal",
            "--observation-noise must be full or diagonal");
    settings.kalman.observation_noise =
        observation_noise == "full" ? decode::ObservationNoise::full : decode::ObservationNoise::diagonal;

    check_output_file(out, "--out", decode_inputs(spike_options));
    const decode::SpikeTrains spikes = read_spikes(spike_options);
    const decode::Kinematics kinematics = decode::read_kinematics(spike_options.kinematics);
    const auto start = std::chrono::steady_clock::now();
    const decode::DecoderModel model = decode::train_decoder(spikes, kinematics, settings);
    const double train_seconds = seconds_since(start);
    decode::write_model(model, out);
    if (!quiet)
        std::printf("spikeline decode train: %s on %zu %s, %g ms bins, %zu training bins (%.1f s), fitted in %.3f s "
                    "-> %s\n",
                    decode::to_string(model.kind), model.n_inputs(), decode::to_string(model.unit_source),
                    model.bins.bin_ms, model.training_bins.size(),
                    static_cast<double>(model.training_bins.size() * model.bin_samples) / model.sample_rate,
                    train_seconds, out.c_str());
    return 0;
}

int decode_eval(int argc, char** argv) {
    SpikeOptions spike_options;
    std::string model_path, json_path, predictions_path;
    bool quiet = false, all_bins = false;
    po::options_description visible(
        "spikeline decode eval --model MODEL --spikes DIR --kinematics FILE [options]\n\n"
        "Decodes every bin causally and scores the bins after the model's training bins (R^2 and Pearson "
        "correlation per axis)\n\noptions");
    visible.add_options()("help,h", "show this help")("model,m", po::value(&model_path)->required(),
                                                      "model file from spikeline decode train");
    add_spike_options(visible, spike_options);
    visible.add_options()                                                     //
        ("json", po::value(&json_path), "write the scores to this JSON file") //
        ("all-bins", po::bool_switch(&all_bins),
         "score every bin with kinematics, not only those after the training bins (a recording the model was not "
         "trained on)") //
        ("predictions", po::value(&predictions_path),
         "write the held-out bins to this .npy: float64 (n, 5) = bin centre s, vx, vy, estimated vx, vy") //
        ("quiet,q", po::bool_switch(&quiet), "no summary");
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, vm))
        return 0;

    check_output_file(json_path, "--json", decode_inputs(spike_options, model_path));
    check_output_file(predictions_path, "--predictions", decode_inputs(spike_options, model_path));
    const decode::DecoderModel model = decode::read_model(model_path);
    const decode::SpikeTrains spikes = read_spikes(spike_options);
    const decode::Kinematics kinematics = decode::read_kinematics(spike_options.kinematics);
    const decode::Evaluation evaluation = decode::evaluate_decoder(model, spikes, kinematics, all_bins);

    const auto finite_or_null = [](double value) {
        return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json();
    };
    if (!json_path.empty()) {
        const nlohmann::json scores = {
            {"model", model_path},
            {"kind", decode::to_string(model.kind)},
            {"unit_source", decode::to_string(model.unit_source)},
            {"n_inputs", model.n_inputs()},
            {"bin_ms", model.bins.bin_ms},
            {"scored", all_bins ? "all bins" : "held-out bins"},
            {"test_first_bin", evaluation.test_bins.first},
            {"test_bins", evaluation.test_bins.size()},
            {"test_seconds", static_cast<double>(evaluation.test_bins.size()) * evaluation.bin_s},
            {"r2", {{"vx", finite_or_null(evaluation.vx.r2)}, {"vy", finite_or_null(evaluation.vy.r2)}}},
            {"correlation",
             {{"vx", finite_or_null(evaluation.vx.correlation)}, {"vy", finite_or_null(evaluation.vy.correlation)}}},
            {"mean_r2", finite_or_null(0.5 * (evaluation.vx.r2 + evaluation.vy.r2))},
        };
        write_text_file(json_path, scores.dump(2) + "\n");
    }
    if (!predictions_path.empty()) {
        const std::size_t n = evaluation.test_bins.size();
        std::vector<double> rows;
        rows.reserve(n * 5);
        for (std::size_t i = 0; i < n; ++i) {
            const Eigen::Index c = static_cast<Eigen::Index>(i);
            rows.insert(rows.end(), {(static_cast<double>(evaluation.test_bins.first + i) + 0.5) * evaluation.bin_s,
                                     evaluation.truth(0, c), evaluation.truth(1, c), evaluation.estimate(0, c),
                                     evaluation.estimate(1, c)});
        }
        io::write_npy(predictions_path, rows.data(), {n, 5});
    }
    if (!quiet) {
        std::printf("spikeline decode eval: %s on %zu %s, %g ms bins, %s %zu bins (%.1f s)\n",
                    decode::to_string(model.kind), model.n_inputs(), decode::to_string(model.unit_source),
                    model.bins.bin_ms, all_bins ? "scored all" : "held out", evaluation.test_bins.size(),
                    static_cast<double>(evaluation.test_bins.size()) * evaluation.bin_s);
        std::printf("  vx: R2 %.4f  r %.4f\n  vy: R2 %.4f  r %.4f\n", evaluation.vx.r2, evaluation.vx.correlation,
                    evaluation.vy.r2, evaluation.vy.correlation);
    }
    return 0;
}

} // namespace

int run_decoder_bench(const std::vector<int>& input_counts, int bins, int lags, int passes, std::uint64_t seed,
                      const std::string& json_path) {
    for (int n : input_counts)
        require(n >= 1 && n <= 100000, "--decoder-inputs must be between 1 and 100000");
    require(bins >= 10 && bins <= 1000000, "--decoder-bins must be between 10 and 1000000");
    require(lags >= 1 && lags <= 1000, "--decoder-lags must be between 1 and 1000");
    require(passes >= 1, "--repeats must be at least 1");
    std::printf("spikeline bench --decoder: synthetic sessions of %d bins (%.0f s of 20 ms bins, seed %llu), one "
                "thread; steps timed over %d pass(es)\n",
                bins, 0.02 * bins, static_cast<unsigned long long>(seed), passes);
    nlohmann::json runs = nlohmann::json::array();
    for (int n : input_counts) {
        const decode::SyntheticSession session = decode::synthetic_session(n, bins, seed);
        for (const decode::DecoderTiming& t : decode::time_decoders(session, lags, passes)) {
            std::printf("  %5d inputs  %-20s train %8.3f s   step median %7.2f us  p99 %7.2f us  max %8.2f us\n", n,
                        t.name.c_str(), t.train_seconds, t.step_us_median, t.step_us_p99, t.step_us_max);
            runs.push_back({{"inputs", n},
                            {"decoder", t.name},
                            {"train_seconds", t.train_seconds},
                            {"step_us_median", t.step_us_median},
                            {"step_us_p99", t.step_us_p99},
                            {"step_us_max", t.step_us_max}});
        }
    }
    if (!json_path.empty()) {
        const nlohmann::json report = {{"decoder",
                                        {{"bins", bins},
                                         {"bin_ms", 20.0},
                                         {"seed", seed},
                                         {"passes", passes},
                                         {"wiener_lags", lags},
                                         {"kalman_observation_noise", "full"},
                                         {"runs", runs}}}};
        write_text_file(json_path, report.dump(2) + "\n");
    }
    return 0;
}

int cmd_decode(int argc, char** argv) {
    if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
        std::fputs(kDecodeUsage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const std::string action = argv[1];
    if (action == "train")
        return decode_train(argc - 1, argv + 1);
    if (action == "eval")
        return decode_eval(argc - 1, argv + 1);
    throw InputError("unknown decode action '" + action + "': use spikeline decode train or spikeline decode eval");
}

} // namespace spikeline::cli
