#include "decode/model_file.hpp"

#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace spikeline::decode {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kFormat = "spikeline decoder";

json matrix_json(const Eigen::MatrixXd& m) {
    json data = json::array();
    for (Eigen::Index r = 0; r < m.rows(); ++r)
        for (Eigen::Index c = 0; c < m.cols(); ++c)
            data.push_back(m(r, c));
    return {{"rows", m.rows()}, {"cols", m.cols()}, {"data", std::move(data)}};
}

json vector_json(const Eigen::VectorXd& v) {
    return json(std::vector<double>(v.data(), v.data() + v.size()));
}

/// Reads one model file; every failure names the file and the field.
class ModelReader {
public:
    explicit ModelReader(fs::path path) : path_(std::move(path)) {}

    [[noreturn]] void fail(const std::string& what) const {
        throw InputError(path_.string() + ": " + what +
                         ": this is not a usable spikeline decoder model; train one with spikeline decode train");
    }

    const json& field(const json& object, const char* key) const {
        if (!object.is_object() || !object.contains(key))
            fail(std::string("missing '") + key + "'");
        return object[key];
    }

    double number(const json& object, const char* key) const {
        const json& value = field(object, key);
        if (!value.is_number() || !std::isfinite(value.get<double>()))
            fail(std::string("'") + key + "' must be a finite number");
        return value.get<double>();
    }

    std::int64_t integer(const json& object, const char* key) const {
        const json& value = field(object, key);
        if (!value.is_number_integer())
            fail(std::string("'") + key + "' must be an integer");
        return value.get<std::int64_t>();
    }

    std::string text(const json& object, const char* key) const {
        const json& value = field(object, key);
        if (!value.is_string())
            fail(std::string("'") + key + "' must be a string");
        return value.get<std::string>();
    }

    bool boolean(const json& object, const char* key) const {
        const json& value = field(object, key);
        if (!value.is_boolean())
            fail(std::string("'") + key + "' must be true or false");
        return value.get<bool>();
    }

    Eigen::MatrixXd matrix(const json& object, const char* key, Eigen::Index rows, Eigen::Index cols) const {
        const json& value = field(object, key);
        const std::string name = std::string("matrix '") + key + "'";
        if (!value.is_object())
            fail(name + " must be an object with rows, cols and data");
        const std::int64_t stored_rows = integer(value, "rows");
        const std::int64_t stored_cols = integer(value, "cols");
        if (stored_rows != rows || stored_cols != cols)
            fail(name + " is " + std::to_string(stored_rows) + " x " + std::to_string(stored_cols) + " but " +
                 std::to_string(rows) + " x " + std::to_string(cols) + " is expected for " + std::to_string(n_inputs_) +
                 " inputs");
        const json& data = field(value, "data");
        if (!data.is_array() || static_cast<Eigen::Index>(data.size()) != rows * cols)
            fail(name + " needs " + std::to_string(rows * cols) + " numbers in 'data'");
        Eigen::MatrixXd m(rows, cols);
        for (Eigen::Index r = 0; r < rows; ++r)
            for (Eigen::Index c = 0; c < cols; ++c) {
                const json& element = data[static_cast<std::size_t>(r * cols + c)];
                if (!element.is_number() || !std::isfinite(element.get<double>()))
                    fail(name + " holds a value that is not a finite number");
                m(r, c) = element.get<double>();
            }
        return m;
    }

    Eigen::VectorXd vector(const json& object, const char* key, Eigen::Index size) const {
        const json& value = field(object, key);
        if (!value.is_array() || static_cast<Eigen::Index>(value.size()) != size)
            fail(std::string("'") + key + "' must be a list of " + std::to_string(size) + " numbers");
        Eigen::VectorXd v(size);
        for (Eigen::Index i = 0; i < size; ++i) {
            const json& element = value[static_cast<std::size_t>(i)];
            if (!element.is_number() || !std::isfinite(element.get<double>()))
                fail(std::string("'") + key + "' holds a value that is not a finite number");
            v(i) = element.get<double>();
        }
        return v;
    }

    void set_inputs(Eigen::Index n) { n_inputs_ = n; }

private:
    fs::path path_;
    Eigen::Index n_inputs_ = 0;
};

} // namespace

const char* to_string(DecoderKind kind) {
    return kind == DecoderKind::kalman ? "kalman" : "wiener";
}

DecoderKind parse_decoder_kind(const std::string& text) {
    if (text == "kalman")
        return DecoderKind::kalman;
    if (text == "wiener")
        return DecoderKind::wiener;
    throw InputError("unknown decoder '" + text + "': use kalman or wiener");
}

void write_model(const DecoderModel& model, const fs::path& path) {
    json out = {
        {"format", kFormat},
        {"version", kModelVersion},
        {"kind", to_string(model.kind)},
        {"outputs", {"vx", "vy"}},
        {"sample_rate", model.sample_rate},
        {"bin_ms", model.bins.bin_ms},
        {"bin_samples", model.bin_samples},
        {"smoothing", {{"kind", to_string(model.bins.smoothing)}, {"ms", model.bins.smooth_ms}}},
        {"unit_source", to_string(model.unit_source)},
        {"unit_ids", model.unit_ids},
        {"train_fraction", model.train_fraction},
        {"training_bins", {{"first", model.training_bins.first}, {"end", model.training_bins.end}}},
    };
    if (model.kind == DecoderKind::kalman) {
        const KalmanModel& k = *model.kalman;
        json kalman = {
            {"transition", matrix_json(k.transition)},
            {"transition_offset", vector_json(k.transition_offset)},
            {"process_noise", matrix_json(k.process_noise)},
            {"observation", matrix_json(k.observation)},
            {"observation_offset", vector_json(k.observation_offset)},
            {"observation_variance", vector_json(k.observation_variance)},
            {"observation_noise", k.observation_noise == ObservationNoise::full ? "full" : "diagonal"},
            {"information", matrix_json(k.information)},
            {"information_matrix", matrix_json(k.information_matrix)},
            {"initial_velocity", vector_json(k.initial_velocity)},
            {"initial_covariance", matrix_json(k.initial_covariance)},
            {"steady_state", k.steady_state},
        };
        if (k.steady_state) {
            kalman["steady_state_gain"] = matrix_json(k.steady_state_gain);
            kalman["steady_state_covariance"] = matrix_json(k.steady_state_covariance);
        }
        out["kalman"] = std::move(kalman);
    } else {
        const WienerModel& w = *model.wiener;
        out["wiener"] = {{"lags", w.lags},
                         {"ridge", w.ridge},
                         {"weights", matrix_json(w.weights)},
                         {"intercept", vector_json(w.intercept)}};
    }
    write_text_file(path, out.dump() + "\n");
}

DecoderModel read_model(const fs::path& path) {
    std::ifstream in(path);
    require(static_cast<bool>(in), "cannot open model file " + path.string() + ": check the path");
    json root;
    try {
        root = json::parse(in);
    } catch (const json::exception& e) {
        throw InputError(path.string() + " is not valid JSON (" + e.what() +
                         "): pass a model written by spikeline decode train");
    }
    ModelReader r(path);
    if (!root.is_object() || !root.contains("format") || root["format"] != kFormat)
        r.fail(std::string("'format' is not \"") + kFormat + "\"");
    const std::int64_t version = r.integer(root, "version");
    if (version != kModelVersion)
        r.fail("version " + std::to_string(version) + " is not supported (this spikeline reads version " +
               std::to_string(kModelVersion) + ")");

    DecoderModel model;
    const std::string kind = r.text(root, "kind");
    if (kind != "kalman" && kind != "wiener")
        r.fail("kind '" + kind + "' is unknown (kalman or wiener)");
    model.kind = parse_decoder_kind(kind);
    model.sample_rate = r.number(root, "sample_rate");
    model.bins.bin_ms = r.number(root, "bin_ms");
    const std::int64_t bin_samples = r.integer(root, "bin_samples");
    if (model.sample_rate <= 0 || model.bins.bin_ms <= 0 || bin_samples < 1)
        r.fail("sample_rate, bin_ms and bin_samples must be positive");
    model.bin_samples = static_cast<std::uint64_t>(bin_samples);
    const json& smoothing = r.field(root, "smoothing");
    try {
        model.bins.smoothing = parse_smoothing(r.text(smoothing, "kind"));
    } catch (const InputError& e) {
        r.fail(std::string("smoothing: ") + e.what());
    }
    model.bins.smooth_ms = r.number(smoothing, "ms");
    try {
        model.unit_source = parse_unit_source(r.text(root, "unit_source"));
    } catch (const InputError& e) {
        r.fail(std::string("unit_source: ") + e.what());
    }
    const json& ids = r.field(root, "unit_ids");
    if (!ids.is_array() || ids.empty())
        r.fail("'unit_ids' must be a non-empty list of integers");
    for (const json& id : ids) {
        // Within int32 (a larger id would wrap onto another unit's).
        if (!id.is_number_integer() || (id.is_number_unsigned() && id.get<std::uint64_t>() > INT32_MAX) ||
            id.get<std::int64_t>() < INT32_MIN || id.get<std::int64_t>() > INT32_MAX)
            r.fail("'unit_ids' must be a non-empty list of integers (32-bit)");
        model.unit_ids.push_back(static_cast<std::int32_t>(id.get<std::int64_t>()));
    }
    if (!std::is_sorted(model.unit_ids.begin(), model.unit_ids.end()) ||
        std::adjacent_find(model.unit_ids.begin(), model.unit_ids.end()) != model.unit_ids.end())
        r.fail("'unit_ids' must be ascending without repeats");
    model.train_fraction = r.number(root, "train_fraction");
    const json& training = r.field(root, "training_bins");
    const std::int64_t first = r.integer(training, "first");
    const std::int64_t end = r.integer(training, "end");
    if (first < 0 || end < first)
        r.fail("'training_bins' must have 0 <= first <= end");
    model.training_bins = {static_cast<std::size_t>(first), static_cast<std::size_t>(end)};

    const Eigen::Index n = static_cast<Eigen::Index>(model.unit_ids.size());
    r.set_inputs(n);
    if (model.kind == DecoderKind::kalman) {
        const json& k = r.field(root, "kalman");
        KalmanModel m;
        m.transition = r.matrix(k, "transition", 2, 2);
        m.transition_offset = r.vector(k, "transition_offset", 2);
        m.process_noise = r.matrix(k, "process_noise", 2, 2);
        m.observation = r.matrix(k, "observation", n, 2);
        m.observation_offset = r.vector(k, "observation_offset", n);
        m.observation_variance = r.vector(k, "observation_variance", n);
        const std::string noise = r.text(k, "observation_noise");
        if (noise != "full" && noise != "diagonal")
            r.fail("'observation_noise' must be \"full\" or \"diagonal\"");
        m.observation_noise = noise == "full" ? ObservationNoise::full : ObservationNoise::diagonal;
        m.information = r.matrix(k, "information", 2, n);
        m.information_matrix = r.matrix(k, "information_matrix", 2, 2);
        m.initial_velocity = r.vector(k, "initial_velocity", 2);
        m.initial_covariance = r.matrix(k, "initial_covariance", 2, 2);
        m.steady_state = r.boolean(k, "steady_state");
        if (m.steady_state) {
            m.steady_state_gain = r.matrix(k, "steady_state_gain", 2, n);
            m.steady_state_covariance = r.matrix(k, "steady_state_covariance", 2, 2);
        }
        model.kalman = std::move(m);
    } else {
        const json& w = r.field(root, "wiener");
        WienerModel m;
        const std::int64_t lags = r.integer(w, "lags");
        if (lags < 1 || lags > 1000)
            r.fail("'lags' must be between 1 and 1000");
        m.lags = static_cast<int>(lags);
        m.ridge = r.number(w, "ridge");
        m.weights = r.matrix(w, "weights", 2, n * lags);
        m.intercept = r.vector(w, "intercept", 2);
        model.wiener = std::move(m);
    }
    return model;
}

void check_inputs_match(const DecoderModel& model, const SpikeTrains& spikes) {
    require(spikes.source == model.unit_source,
            std::string("the model decodes ") + to_string(model.unit_source) + " but the spikes are labelled by " +
                to_string(spikes.source) + ": pass a matching folder or --units-from " + to_string(model.unit_source));
    if (spikes.unit_ids == model.unit_ids)
        return;
    std::string detail;
    const std::size_t common = std::min(spikes.unit_ids.size(), model.unit_ids.size());
    for (std::size_t i = 0; i < common && detail.empty(); ++i)
        if (spikes.unit_ids[i] != model.unit_ids[i])
            detail = " (first difference at position " + std::to_string(i) + ": " + std::to_string(spikes.unit_ids[i]) +
                     " vs " + std::to_string(model.unit_ids[i]) + ")";
    throw InputError("the model was trained on " + std::to_string(model.unit_ids.size()) + " " +
                     to_string(model.unit_source) + " but the spikes have " + std::to_string(spikes.unit_ids.size()) +
                     detail +
                     ": a decoder only applies to the sorting it was trained on; train a model on these "
                     "spikes with spikeline decode train");
}

} // namespace spikeline::decode
