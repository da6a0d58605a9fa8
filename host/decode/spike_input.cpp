#include "decode/spike_input.hpp"

#include "io/npy.hpp"
#include "util/errors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace spikeline::decode {

namespace fs = std::filesystem;

namespace {

constexpr double kDefaultSampleRate = 30000.0;

std::string trim(const std::string& text) {
    const auto begin = text.find_first_not_of(" \t\r\n");
    if (begin == std::string::npos)
        return {};
    const auto end = text.find_last_not_of(" \t\r\n");
    return text.substr(begin, end - begin + 1);
}

/// `sample_rate = 30000.0` from a Phy params.py (a Python file of simple assignments).
std::optional<double> sample_rate_from_params_py(const fs::path& path) {
    std::ifstream in(path);
    if (!in)
        return std::nullopt;
    std::string line;
    while (std::getline(in, line)) {
        const auto equals = line.find('=');
        if (equals == std::string::npos || trim(line.substr(0, equals)) != "sample_rate")
            continue;
        const std::string value = trim(line.substr(equals + 1));
        char* end = nullptr;
        const double rate = std::strtod(value.c_str(), &end);
        require(end != value.c_str() && trim(end).empty() && std::isfinite(rate) && rate > 0,
                path.string() + ": sample_rate '" + value + "' is not a positive number: fix it or pass --sample-rate");
        return rate;
    }
    return std::nullopt;
}

std::optional<nlohmann::json> read_json_if_present(const fs::path& path) {
    std::ifstream in(path);
    if (!in)
        return std::nullopt;
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw InputError(path.string() + " is not valid JSON (" + e.what() + "): restore it or remove it");
    }
}

std::optional<double> positive_number(const std::optional<nlohmann::json>& json, const char* key,
                                      const fs::path& path) {
    if (!json || !json->is_object() || !json->contains(key))
        return std::nullopt;
    const nlohmann::json& value = (*json)[key];
    require(value.is_number() && value.get<double>() > 0, path.string() + ": '" + key + "' must be a positive number");
    return value.get<double>();
}

/// unit_id column of a ground-truth units.tsv.
std::vector<std::int32_t> unit_ids_from_tsv(const fs::path& path) {
    std::ifstream in(path);
    std::vector<std::int32_t> ids;
    std::string header;
    if (!in || !std::getline(in, header))
        return ids;
    std::istringstream columns(header);
    std::string name;
    int column = 0, id_column = -1;
    while (std::getline(columns, name, '\t')) {
        if (trim(name) == "unit_id")
            id_column = column;
        ++column;
    }
    require(id_column >= 0, path.string() + " has no unit_id column: restore the simulator's units.tsv or remove it");
    std::string line;
    while (std::getline(in, line)) {
        if (trim(line).empty())
            continue;
        std::istringstream fields(line);
        std::string field;
        for (int c = 0; c <= id_column; ++c)
            require(static_cast<bool>(std::getline(fields, field, '\t')),
                    path.string() + ": a row has too few columns");
        char* end = nullptr;
        const long id = std::strtol(field.c_str(), &end, 10);
        require(end != field.c_str() && trim(end).empty(),
                path.string() + ": unit_id '" + field + "' is not an integer");
        ids.push_back(static_cast<std::int32_t>(id));
    }
    return ids;
}

} // namespace

const char* to_string(UnitSource source) {
    switch (source) {
    case UnitSource::clusters:
        return "clusters";
    case UnitSource::units:
        return "units";
    case UnitSource::channels:
        return "channels";
    }
    return "?";
}

UnitSource parse_unit_source(const std::string& text) {
    if (text == "clusters")
        return UnitSource::clusters;
    if (text == "units")
        return UnitSource::units;
    if (text == "channels")
        return UnitSource::channels;
    throw InputError("unknown unit source '" + text +
                     "': use clusters (Phy spike_clusters.npy), units (ground-truth spike_units.npy) or channels "
                     "(detect's spike_channels.npy)");
}

SpikeTrains read_spike_folder(const fs::path& dir, std::optional<UnitSource> source,
                              std::optional<double> sample_rate) {
    require(fs::is_directory(dir), dir.string() +
                                       " is not a folder: pass a Phy folder, a simulator ground_truth folder or a "
                                       "spikeline detect output folder");
    const fs::path clusters = dir / "spike_clusters.npy";
    const fs::path units = dir / "spike_units.npy";
    const fs::path channels = dir / "spike_channels.npy";
    if (!source) {
        if (fs::exists(clusters))
            source = UnitSource::clusters;
        else if (fs::exists(units))
            source = UnitSource::units;
        else if (fs::exists(channels))
            source = UnitSource::channels;
        else
            throw InputError(dir.string() +
                             " holds none of spike_clusters.npy (Phy), spike_units.npy (ground truth) or "
                             "spike_channels.npy (detect): pass the folder that holds the spikes");
    }
    const fs::path times_path = dir / "spike_times.npy";
    require(fs::exists(times_path), times_path.string() + " is missing: the spike folder needs spike times");

    SpikeTrains trains;
    trains.source = *source;
    trains.times = io::read_npy_vector<std::uint64_t>(times_path);
    const fs::path labels_path = *source == UnitSource::clusters ? clusters
                                 : *source == UnitSource::units  ? units
                                                                 : channels;
    require(fs::exists(labels_path), labels_path.string() + " is missing: --units-from " + to_string(*source) +
                                         " needs it (or leave --units-from out to detect the folder's kind)");
    trains.labels = io::read_npy_vector<std::int32_t>(labels_path);
    require(trains.labels.size() == trains.times.size(),
            labels_path.string() + " has " + std::to_string(trains.labels.size()) +
                " entries but spike_times.npy has " + std::to_string(trains.times.size()) +
                ": the two files must come from the same run");

    // Sample rate and the full list of inputs from the folder's metadata, when present.
    std::optional<double> folder_rate;
    std::vector<std::int32_t> known_ids;
    // The recording's length, for checking that the kinematics come from the same session.
    const auto read_length = [&trains](const std::optional<nlohmann::json>& info, const fs::path& path) {
        const auto frames = positive_number(info, "n_frames", path);
        const auto rate = positive_number(info, "sample_rate", path);
        if (frames && rate) {
            trains.recording_s = *frames / *rate;
            trains.recording_s_origin = path.string();
        }
    };
    if (*source == UnitSource::clusters) {
        folder_rate = sample_rate_from_params_py(dir / "params.py");
        read_length(read_json_if_present(dir / "spikeline_sort.json"), dir / "spikeline_sort.json");
    } else if (*source == UnitSource::units) {
        const auto info = read_json_if_present(dir / "info.json");
        folder_rate = positive_number(info, "sample_rate", dir / "info.json");
        read_length(info, dir / "info.json");
        known_ids = unit_ids_from_tsv(dir / "units.tsv");
    } else {
        const fs::path info_path = dir / "detect_info.json";
        const auto info = read_json_if_present(info_path);
        folder_rate = positive_number(info, "sample_rate", info_path);
        read_length(info, info_path);
        if (const auto n_channels = positive_number(info, "n_channels", info_path))
            for (std::int32_t c = 0; c < static_cast<std::int32_t>(*n_channels); ++c)
                known_ids.push_back(c);
    }
    trains.sample_rate = sample_rate.value_or(folder_rate.value_or(kDefaultSampleRate));
    require(std::isfinite(trains.sample_rate) && trains.sample_rate > 0, "the sample rate must be positive");

    std::vector<std::int32_t> ids = trains.labels;
    ids.insert(ids.end(), known_ids.begin(), known_ids.end());
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::sort(known_ids.begin(), known_ids.end());
    known_ids.erase(std::unique(known_ids.begin(), known_ids.end()), known_ids.end());
    if (!known_ids.empty() && ids.size() != known_ids.size())
        throw InputError(labels_path.string() + " has labels outside the " + std::to_string(known_ids.size()) + " " +
                         to_string(*source) + " its folder's metadata lists: the files come from different runs");
    trains.unit_ids = std::move(ids);
    return trains;
}

Kinematics read_kinematics(const fs::path& path) {
    const io::NpyArray array = io::read_npy(path);
    require(array.descr == io::npy_descr<double>(),
            path.string() + ": dtype is '" + array.descr + "' but float64 ('<f8') is required");
    require(array.shape.size() == 2 && array.shape[1] == 5,
            path.string() + ": kinematics must have shape (n, 5) with columns time_s, x, y, vx, vy");
    const std::vector<double> values = array.as<double>();
    Kinematics k;
    const std::size_t n = array.shape[0];
    require(n >= 2, path.string() + ": at least two kinematics samples are needed");
    for (std::size_t i = 0; i < n; ++i) {
        const double* row = &values[i * 5];
        for (int c = 0; c < 5; ++c)
            require(std::isfinite(row[c]), path.string() + ": row " + std::to_string(i) + " has a non-finite value");
        require(i == 0 || row[0] > k.time_s.back(),
                path.string() + ": times must increase strictly (row " + std::to_string(i) + ")");
        k.time_s.push_back(row[0]);
        k.x.push_back(row[1]);
        k.y.push_back(row[2]);
        k.vx.push_back(row[3]);
        k.vy.push_back(row[4]);
    }
    return k;
}

} // namespace spikeline::decode
