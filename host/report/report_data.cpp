#include "report/report_data.hpp"

#include "eval/compare.hpp"
#include "io/npy.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

namespace spikeline::report {

namespace fs = std::filesystem;

namespace {

fs::path need_file(const fs::path& dir, const char* name) {
    const fs::path path = dir / name;
    require(fs::is_regular_file(path),
            dir.string() + " has no " + name + ": pass the output folder of spikeline sort (or stream) as SORT_DIR");
    return path;
}

/// cluster_info.tsv as one JSON object per cluster, keyed by cluster id; numbers stay numbers.
std::map<int, nlohmann::json> read_cluster_info(const fs::path& path) {
    std::ifstream in(path);
    require(in.good(), "cannot read " + path.string());
    std::string line;
    std::getline(in, line);
    std::vector<std::string> columns;
    {
        std::istringstream header(line);
        std::string column;
        while (std::getline(header, column, '\t'))
            columns.push_back(column);
    }
    require(!columns.empty() && columns.front() == "cluster_id",
            path.string() + " does not start with a cluster_id column: is it a spikeline or Phy cluster_info.tsv?");
    std::map<int, nlohmann::json> clusters;
    int line_number = 1;
    while (std::getline(in, line)) {
        ++line_number;
        if (line.empty())
            continue;
        std::istringstream fields(line);
        std::string field;
        nlohmann::json row = nlohmann::json::object();
        for (std::size_t i = 0; i < columns.size() && std::getline(fields, field, '\t'); ++i) {
            char* end = nullptr;
            const double number = std::strtod(field.c_str(), &end);
            if (!field.empty() && end && *end == '\0' && std::isfinite(number))
                row[columns[i]] = number;
            else
                row[columns[i]] = field;
        }
        const double id = row.contains("cluster_id") && row["cluster_id"].is_number() ? row["cluster_id"].get<double>()
                                                                                      : std::nan("");
        // A whole number that fits an int: 1e20 would not convert, 2.5 is no cluster.
        require(std::floor(id) == id && std::abs(id) <= std::numeric_limits<int>::max(),
                path.string() + " line " + std::to_string(line_number) + ": cluster_id must be a whole number, not '" +
                    (row.contains("cluster_id") ? row["cluster_id"].dump() : std::string()) + "'");
        clusters[static_cast<int>(id)] = row;
    }
    return clusters;
}

template <class T> std::vector<T> read_array(const fs::path& path, std::size_t expected_rows, const char* what) {
    std::vector<T> values = io::read_npy(path).as<T>();
    require(expected_rows == 0 || values.size() == expected_rows,
            path.string() + " holds " + std::to_string(values.size()) + " " + what + " but spike_times.npy " +
                std::to_string(expected_rows) + " spikes: the folder mixes two runs; sort again into an empty folder");
    return values;
}

/// Depth of each listed spike: the centre of mass of the squared first-component features over its snippet rows'
/// contacts (cheaper and coarser than motion tracking's footprint fit, enough for a picture), read row by row from
/// pc_features.npy; the template's peak contact when a spike has no feature energy.
std::vector<float> spike_depths(const fs::path& dir, const std::vector<std::size_t>& spikes,
                                const std::vector<std::int32_t>& spike_templates,
                                const std::vector<std::int32_t>& template_channels, std::size_t columns,
                                const std::vector<double>& positions) {
    auto channel_y = [&](std::int32_t channel) {
        return channel >= 0 && static_cast<std::size_t>(channel) * 2 + 1 < positions.size()
                   ? static_cast<float>(positions[static_cast<std::size_t>(channel) * 2 + 1])
                   : 0.0f;
    };
    auto template_channel = [&](std::size_t spike, std::size_t k) {
        const auto t = static_cast<std::size_t>(std::max(0, spike_templates[spike]));
        return t * columns + k < template_channels.size() ? template_channels[t * columns + k] : -1;
    };
    std::vector<float> depths(spikes.size());
    for (std::size_t i = 0; i < spikes.size(); ++i)
        depths[i] = channel_y(template_channel(spikes[i], 0));
    const fs::path features_path = dir / "pc_features.npy";
    if (!fs::is_regular_file(features_path))
        return depths;
    const io::NpyAppendFile features = io::inspect_npy_append_file(features_path);
    if (features.descr != "<f4" || features.row_shape.size() != 2 || features.row_shape[1] != columns)
        return depths; // another layout (another sorter): peak contacts only
    std::ifstream in(features_path, std::ios::binary);
    std::vector<float> row(features.row_bytes / sizeof(float));
    for (std::size_t i = 0; i < spikes.size(); ++i) {
        if (spikes[i] >= features.rows)
            break;
        in.seekg(static_cast<std::streamoff>(features.data_offset + spikes[i] * features.row_bytes));
        in.read(reinterpret_cast<char*>(row.data()), static_cast<std::streamsize>(features.row_bytes));
        if (!in)
            break;
        double weight = 0, sum = 0;
        for (std::size_t k = 0; k < columns; ++k) {
            const std::int32_t channel = template_channel(spikes[i], k);
            if (channel < 0)
                continue;
            const double w = static_cast<double>(row[k]) * static_cast<double>(row[k]);
            weight += w;
            sum += w * channel_y(channel);
        }
        if (weight > 0)
            depths[i] = static_cast<float>(sum / weight);
    }
    return depths;
}

nlohmann::json read_motion(const fs::path& dir) {
    const fs::path motion = dir / "motion.npy", times = dir / "motion_times_s.npy", blocks = dir / "motion_blocks.npy";
    if (!fs::is_regular_file(motion) || !fs::is_regular_file(times) || !fs::is_regular_file(blocks))
        return nullptr;
    const io::NpyArray values = io::read_npy(motion);
    const std::vector<double> time_s = io::read_npy(times).as<double>();
    const std::vector<double> block_rows = io::read_npy(blocks).as<double>();
    const std::size_t n_blocks = block_rows.size() / 2;
    std::vector<double> displacement = values.as<double>();
    require(displacement.size() == time_s.size() * n_blocks,
            motion.string() +
                " does not hold one value per estimate (motion_times_s.npy) and block (motion_blocks.npy)");
    std::vector<float> shank(n_blocks), depth(n_blocks);
    for (std::size_t b = 0; b < n_blocks; ++b) {
        shank[b] = static_cast<float>(block_rows[2 * b]);
        depth[b] = static_cast<float>(block_rows[2 * b + 1]);
    }
    return {{"n_estimates", time_s.size()},
            {"n_blocks", n_blocks},
            {"times_s", base64(std::vector<float>(time_s.begin(), time_s.end()))},
            {"block_shank", base64(shank)},
            {"block_depth_um", base64(depth)},
            {"displacement_um", base64(std::vector<float>(displacement.begin(), displacement.end()))}};
}

} // namespace

std::string base64(const void* data, std::size_t size) {
    static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const auto* bytes = static_cast<const unsigned char*>(data);
    std::string out;
    out.reserve((size + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < size; i += 3) {
        const unsigned v = (unsigned{bytes[i]} << 16) | (unsigned{bytes[i + 1]} << 8) | bytes[i + 2];
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (i < size) {
        const unsigned v = (unsigned{bytes[i]} << 16) | (i + 1 < size ? unsigned{bytes[i + 1]} << 8 : 0u);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += i + 1 < size ? kAlphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

nlohmann::json build_report_data(const fs::path& sort_dir, const ReportOptions& options) {
    require(fs::is_directory(sort_dir),
            "sort folder " + sort_dir.string() + " does not exist: pass the output folder of spikeline sort");
    const fs::path run_path = need_file(sort_dir, "spikeline_sort.json");
    nlohmann::json run;
    {
        std::ifstream in(run_path);
        try {
            run = nlohmann::json::parse(in);
        } catch (const nlohmann::json::exception& e) {
            throw InputError(run_path.string() + " is not valid JSON (" + e.what() +
                             "): the sort did not finish; run spikeline sort again");
        }
    }
    // Numbers of another type (an edited file) read as absent, not as an internal error.
    auto number_or_zero = [&run](const char* key) {
        return run.is_object() && run.contains(key) && run[key].is_number() ? run[key].get<double>() : 0.0;
    };
    const double sample_rate = number_or_zero("sample_rate");
    require(sample_rate > 0, run_path.string() + " has no positive sample_rate");

    const std::vector<std::uint64_t> times = io::read_npy(need_file(sort_dir, "spike_times.npy")).as<std::uint64_t>();
    const std::size_t n = times.size();
    const auto clusters = read_array<std::int32_t>(need_file(sort_dir, "spike_clusters.npy"), n, "cluster ids");
    const auto spike_templates = read_array<std::int32_t>(need_file(sort_dir, "spike_templates.npy"), n, "templates");
    const auto amplitudes = read_array<double>(need_file(sort_dir, "amplitudes.npy"), n, "amplitudes");
    const io::NpyArray templates = io::read_npy(need_file(sort_dir, "templates.npy"));
    const io::NpyArray template_ind = io::read_npy(need_file(sort_dir, "template_ind.npy"));
    const io::NpyArray positions_array = io::read_npy(need_file(sort_dir, "channel_positions.npy"));
    require(templates.shape.size() == 3 && template_ind.shape.size() == 2 &&
                template_ind.shape[0] == templates.shape[0] && template_ind.shape[1] == templates.shape[2],
            "templates.npy (n_templates, samples, columns) and template_ind.npy (n_templates, columns) of " +
                sort_dir.string() + " do not match");
    require(positions_array.shape.size() == 2 && positions_array.shape[1] == 2,
            "channel_positions.npy of " + sort_dir.string() + " is not (n_channels, 2)");
    const std::vector<float> template_values = templates.as<float>();
    const std::vector<std::int32_t> template_channels = template_ind.as<std::int32_t>();
    const std::vector<double> positions = positions_array.as<double>();
    const std::size_t n_templates = templates.shape[0], width = templates.shape[1], columns = templates.shape[2];
    const std::size_t n_channels = positions_array.shape[0];
    for (std::size_t i = 0; i < n; ++i)
        require(spike_templates[i] >= 0 && static_cast<std::size_t>(spike_templates[i]) < n_templates,
                "spike_templates.npy of " + sort_dir.string() + " names template " +
                    std::to_string(spike_templates[i]) + " at spike " + std::to_string(i) + ", but templates.npy has " +
                    std::to_string(n_templates));
    std::map<int, nlohmann::json> info = read_cluster_info(need_file(sort_dir, "cluster_info.tsv"));

    const double stated_frames = number_or_zero("n_frames");
    const auto frames = stated_frames >= 1 && stated_frames < 1e15 ? static_cast<std::uint64_t>(stated_frames) : 0;
    const double duration_s = std::max(frames > 0 ? static_cast<double>(frames) / sample_rate
                                                  : (n ? static_cast<double>(times.back() + 1) / sample_rate : 0.0),
                                       1.0 / sample_rate);

    // Per cluster: its spikes in time order, and its most used template (drawn as its waveform).
    std::map<int, std::vector<std::size_t>> members;
    for (std::size_t i = 0; i < n; ++i)
        if (clusters[i] > 0)
            members[clusters[i]].push_back(i);
    const int rate_bins = std::max(1, std::min(options.rate_bins, static_cast<int>(std::ceil(duration_s))));
    const double isi_limit_s = options.isi_bins * options.isi_bin_ms / 1000.0;

    nlohmann::json units = nlohmann::json::array();
    for (const auto& [cluster, spikes] : members) {
        std::map<std::int32_t, std::size_t> template_use;
        for (std::size_t i : spikes)
            ++template_use[spike_templates[i]];
        const auto main_template = static_cast<std::size_t>(
            std::max_element(template_use.begin(), template_use.end(), [](const auto& a, const auto& b) {
                return a.second < b.second;
            })->first);
        // Waveform: the template's columns on real contacts; position: their centre of mass by squared amplitude.
        std::vector<std::int32_t> channels;
        std::vector<float> waveform;
        double weight = 0, x = 0, y = 0;
        for (std::size_t k = 0; k < columns; ++k) {
            const std::int32_t channel = template_channels[main_template * columns + k];
            if (channel < 0 || static_cast<std::size_t>(channel) >= n_channels)
                continue;
            channels.push_back(channel);
            float low = 0, high = 0;
            for (std::size_t s = 0; s < width; ++s) {
                const float v = template_values[(main_template * width + s) * columns + k];
                waveform.push_back(v);
                low = std::min(low, v);
                high = std::max(high, v);
            }
            const double energy = static_cast<double>(high - low) * static_cast<double>(high - low);
            weight += energy;
            x += energy * positions[static_cast<std::size_t>(channel) * 2];
            y += energy * positions[static_cast<std::size_t>(channel) * 2 + 1];
        }
        if (weight > 0) {
            x /= weight;
            y /= weight;
        } else if (!channels.empty()) {
            x = positions[static_cast<std::size_t>(channels[0]) * 2];
            y = positions[static_cast<std::size_t>(channels[0]) * 2 + 1];
        }
        std::vector<std::uint32_t> isi(static_cast<std::size_t>(options.isi_bins), 0);
        for (std::size_t j = 1; j < spikes.size(); ++j) {
            const double interval_ms =
                static_cast<double>(times[spikes[j]] - times[spikes[j - 1]]) / sample_rate * 1000.0;
            const auto bin = static_cast<std::size_t>(interval_ms / options.isi_bin_ms);
            if (bin < isi.size())
                ++isi[bin];
        }
        std::vector<float> rate(static_cast<std::size_t>(rate_bins), 0.0f);
        const double rate_bin_s = duration_s / rate_bins;
        for (std::size_t i : spikes) {
            const auto bin = std::min<std::size_t>(
                rate.size() - 1, static_cast<std::size_t>(static_cast<double>(times[i]) / sample_rate / rate_bin_s));
            rate[bin] += static_cast<float>(1.0 / rate_bin_s);
        }
        const std::size_t step =
            std::max<std::size_t>(1, (spikes.size() + options.max_amplitude_points - 1) / options.max_amplitude_points);
        std::vector<float> amplitude_points; // (time s, amplitude) pairs
        for (std::size_t j = 0; j < spikes.size(); j += step) {
            amplitude_points.push_back(static_cast<float>(static_cast<double>(times[spikes[j]]) / sample_rate));
            amplitude_points.push_back(static_cast<float>(amplitudes[spikes[j]]));
        }
        nlohmann::json unit = info.count(cluster) ? info[cluster] : nlohmann::json::object();
        unit["cluster_id"] = cluster;
        unit["n_spikes"] = spikes.size();
        if (!unit.contains("group"))
            unit["group"] = "unsorted";
        unit["x_um"] = x;
        unit["y_um"] = y;
        unit["template"] = main_template;
        unit["channels"] = channels;
        unit["waveform"] = base64(waveform);
        unit["isi"] = base64(isi);
        unit["rate"] = base64(rate);
        unit["amplitudes"] = base64(amplitude_points);
        units.push_back(std::move(unit));
    }

    // Drift map: every k-th spike (sorted or not), its depth, time and amplitude.
    const std::size_t drift_step =
        std::max<std::size_t>(1, (n + options.max_drift_spikes - 1) / options.max_drift_spikes);
    std::vector<std::size_t> drawn;
    for (std::size_t i = 0; i < n; i += drift_step)
        drawn.push_back(i);
    std::vector<float> drift_time(drawn.size()), drift_amplitude(drawn.size());
    for (std::size_t j = 0; j < drawn.size(); ++j) {
        drift_time[j] = static_cast<float>(static_cast<double>(times[drawn[j]]) / sample_rate);
        drift_amplitude[j] = static_cast<float>(amplitudes[drawn[j]]);
    }
    const std::vector<float> drift_depth =
        spike_depths(sort_dir, drawn, spike_templates, template_channels, columns, positions);

    std::vector<float> probe_xy(positions.begin(), positions.end());
    nlohmann::json data = {
        {"format", "spikeline report data"},
        {"version", 1},
        {"sort_dir", fs::absolute(sort_dir).lexically_normal().string()},
        {"run", run},
        {"duration_s", duration_s},
        {"n_spikes", n},
        {"n_unsorted", std::count_if(clusters.begin(), clusters.end(), [](std::int32_t c) { return c <= 0; })},
        {"n_channels", n_channels},
        {"channel_positions", base64(probe_xy)},
        {"template_samples", width},
        {"units", units},
        {"isi_bin_ms", options.isi_bin_ms},
        {"isi_limit_s", isi_limit_s},
        {"refractory_ms", 1.5}, // cluster_info.tsv's isi_violation_ratio counts intervals below 1.5 ms
        {"rate_bins", rate_bins},
        {"drift",
         {{"n", drawn.size()},
          {"step", drift_step},
          {"time_s", base64(drift_time)},
          {"depth_um", base64(drift_depth)},
          {"amplitude", base64(drift_amplitude)}}},
        {"motion", read_motion(sort_dir)},
        {"ground_truth", nullptr},
    };
    if (!options.ground_truth_dir.empty()) {
        require(fs::is_directory(options.ground_truth_dir),
                "ground-truth folder " + options.ground_truth_dir.string() +
                    " does not exist (spikeline simulate writes it as OUT/ground_truth)");
        const eval::GroundTruth truth = eval::read_ground_truth(options.ground_truth_dir);
        const eval::SortingScore score = eval::compare_sorting(truth, eval::read_sorted(sort_dir));
        data["ground_truth"] = eval::to_json(score);
        data["ground_truth"]["dir"] = fs::absolute(options.ground_truth_dir).lexically_normal().string();
    }
    return data;
}

} // namespace spikeline::report
