#include "eval/compare.hpp"

#include "io/npy.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>
#include <string_view>
#include <unordered_map>

namespace spikeline::eval {

namespace {

namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

double ratio(std::uint64_t numerator, std::uint64_t denominator) {
    return denominator == 0 ? kNaN : static_cast<double>(numerator) / static_cast<double>(denominator);
}

void require_file(const fs::path& path, const std::string& what) {
    std::error_code ec;
    require(fs::is_regular_file(path, ec),
            "missing " + path.string() + " (" + what + "): check the folder and that the writer finished");
}

// ---------------------------------------------------------------------------------------------------------------
// units.tsv

std::vector<std::string_view> split_tabs(std::string_view line) {
    std::vector<std::string_view> fields;
    std::size_t start = 0;
    while (true) {
        const std::size_t tab = line.find('\t', start);
        if (tab == std::string_view::npos) {
            fields.push_back(line.substr(start));
            return fields;
        }
        fields.push_back(line.substr(start, tab - start));
        start = tab + 1;
    }
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

template <class T> bool parse_number(std::string_view text, T& value) {
    text = trim(text);
    if (text.empty())
        return false;
    if (text.front() == '+')
        text.remove_prefix(1);
    const char* end = text.data() + text.size();
    const auto result = std::from_chars(text.data(), end, value);
    return result.ec == std::errc() && result.ptr == end;
}

std::vector<GroundTruth::Unit> read_units_tsv(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    require(in.is_open(), "cannot open " + path.string());

    static constexpr const char* kColumns[] = {"unit_id", "peak_channel", "snr", "rate_hz", "n_spikes"};
    constexpr std::size_t kNotFound = std::numeric_limits<std::size_t>::max();
    std::size_t column[5] = {kNotFound, kNotFound, kNotFound, kNotFound, kNotFound};

    std::string line;
    require(static_cast<bool>(std::getline(in, line)), path.string() + " is empty: expected a header line");
    const std::vector<std::string_view> header = split_tabs(line);
    for (std::size_t c = 0; c < 5; ++c)
        for (std::size_t f = 0; f < header.size(); ++f)
            if (trim(header[f]) == kColumns[c])
                column[c] = f;
    for (std::size_t c = 0; c < 5; ++c)
        require(column[c] != kNotFound, path.string() + ": the header line lacks the column '" + kColumns[c] +
                                            "' (expected tab-separated unit_id, peak_channel, snr, rate_hz, "
                                            "n_spikes)");

    std::vector<GroundTruth::Unit> units;
    std::unordered_map<int, std::size_t> line_of_id;
    std::size_t line_number = 1;
    while (std::getline(in, line)) {
        ++line_number;
        if (trim(line).empty())
            continue;
        const std::string where = path.string() + " line " + std::to_string(line_number);
        const std::vector<std::string_view> fields = split_tabs(line);
        require(fields.size() == header.size(), where + ": " + std::to_string(fields.size()) +
                                                    " tab-separated fields, the header has " +
                                                    std::to_string(header.size()));
        GroundTruth::Unit unit;
        const auto field = [&](std::size_t c) { return fields[column[c]]; };
        const auto bad = [&](std::size_t c) {
            return where + ": " + kColumns[c] + " '" + std::string(trim(field(c))) + "' is not a valid number";
        };
        require(parse_number(field(0), unit.id), bad(0));
        require(parse_number(field(1), unit.peak_channel) && unit.peak_channel >= 0, bad(1));
        require(parse_number(field(2), unit.snr) && std::isfinite(unit.snr), bad(2));
        require(parse_number(field(3), unit.rate_hz) && std::isfinite(unit.rate_hz), bad(3));
        require(parse_number(field(4), unit.n_spikes), bad(4));
        const auto [previous, inserted] = line_of_id.emplace(unit.id, line_number);
        require(inserted, where + ": unit " + std::to_string(unit.id) + " is listed twice (also on line " +
                              std::to_string(previous->second) + ")");
        units.push_back(unit);
    }
    require(!in.bad(), "read error in " + path.string());
    return units;
}

double read_sample_rate(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    require(in.is_open(), "cannot open " + path.string());
    const nlohmann::json info = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    require(!info.is_discarded(), path.string() + " is not valid JSON");
    require(info.is_object() && info.contains("sample_rate") && info["sample_rate"].is_number(),
            path.string() + " has no numeric \"sample_rate\"");
    const double rate = info["sample_rate"].get<double>();
    require(std::isfinite(rate) && rate > 0, path.string() + ": sample_rate must be positive");
    return rate;
}

/// The channel count and sample rate a folder's metadata file states (zeros for what it does not state, or when the
/// file is absent, e.g. a Phy folder written by another sorter).
RecordingShape read_recording_shape(const fs::path& path) {
    RecordingShape shape;
    std::ifstream in(path, std::ios::binary);
    if (!in.is_open())
        return shape;
    const nlohmann::json info = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    require(!info.is_discarded(), path.string() + " is not valid JSON");
    if (!info.is_object())
        return shape;
    shape.origin = path.string();
    if (info.contains("n_channels") && info["n_channels"].is_number_integer())
        shape.n_channels = info["n_channels"].get<int>();
    if (info.contains("sample_rate") && info["sample_rate"].is_number())
        shape.sample_rate = info["sample_rate"].get<double>();
    return shape;
}

std::string rate_text(double hz) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", hz);
    return text;
}

/// Throws InputError when `spikes` (what the sorted or detected folder states) and the ground truth describe
/// recordings of another channel count or sample rate: the scores would be meaningless.
void check_same_recording(const RecordingShape& truth, const RecordingShape& spikes, const std::string& kind) {
    if (truth.n_channels > 0 && spikes.n_channels > 0)
        require(truth.n_channels == spikes.n_channels,
                "the " + kind + " spikes come from a recording of " + std::to_string(spikes.n_channels) +
                    " channels (" + spikes.origin + ") but the ground truth is of " + std::to_string(truth.n_channels) +
                    " channels (" + truth.origin + "): compare the output of a run on the simulated recording itself");
    if (truth.sample_rate > 0 && spikes.sample_rate > 0)
        require(std::abs(truth.sample_rate - spikes.sample_rate) <= 1e-6 * truth.sample_rate,
                "the " + kind + " spikes come from a recording at " + rate_text(spikes.sample_rate) + " Hz (" +
                    spikes.origin + ") but the ground truth is at " + rate_text(truth.sample_rate) + " Hz (" +
                    truth.origin + "): compare the output of a run on the simulated recording itself");
}

/// Maps unit ids to indices in GroundTruth::units: a table when the ids are compact, a hash map otherwise.
class UnitIndex {
public:
    explicit UnitIndex(const std::vector<GroundTruth::Unit>& units) {
        if (units.empty())
            return;
        const auto [lo, hi] =
            std::minmax_element(units.begin(), units.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
        const std::int64_t span = std::int64_t{hi->id} - lo->id + 1;
        if (span <= std::max<std::int64_t>(1 << 20, 8 * static_cast<std::int64_t>(units.size()))) {
            min_id_ = lo->id;
            table_.assign(static_cast<std::size_t>(span), kAbsent);
            for (std::size_t u = 0; u < units.size(); ++u)
                table_[static_cast<std::size_t>(std::int64_t{units[u].id} - min_id_)] = static_cast<std::int32_t>(u);
        } else {
            for (std::size_t u = 0; u < units.size(); ++u)
                map_.emplace(units[u].id, static_cast<std::int32_t>(u));
        }
    }

    /// The index of unit id, or -1.
    std::int32_t find(std::int32_t id) const {
        if (!table_.empty()) {
            const std::int64_t offset = std::int64_t{id} - min_id_;
            return offset < 0 || offset >= static_cast<std::int64_t>(table_.size())
                       ? kAbsent
                       : table_[static_cast<std::size_t>(offset)];
        }
        const auto it = map_.find(id);
        return it == map_.end() ? kAbsent : it->second;
    }

private:
    static constexpr std::int32_t kAbsent = -1;
    std::int64_t min_id_ = 0;
    std::vector<std::int32_t> table_;
    std::unordered_map<std::int32_t, std::int32_t> map_;
};

struct BinSpec {
    const char* label;
    double low, high;
};
constexpr BinSpec kBins[] = {{"3-5", 3, 5}, {"5-8", 5, 8}, {"8-12", 8, 12}, {"12+", 12, kInf}};

nlohmann::json number_or_null(double value) {
    return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

std::string format_ratio(double value) {
    if (std::isnan(value))
        return "-";
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.3f", value);
    return buffer;
}

/// The drift files of a ground-truth folder (docs/FORMATS.md §2.6); nullopt when it has none of them.
std::optional<GroundTruthMotion> read_ground_truth_motion(const fs::path& dir) {
    const fs::path times_path = dir / "motion_times_s.npy", depths_path = dir / "motion_depths_um.npy",
                   values_path = dir / "motion_um.npy";
    const int present = fs::exists(times_path) + fs::exists(depths_path) + fs::exists(values_path);
    if (present == 0)
        return std::nullopt;
    require(present == 3, dir.string() + " holds only some of motion_times_s.npy, motion_depths_um.npy and "
                                         "motion_um.npy: a drift needs all three (or remove them to score without it)");
    GroundTruthMotion motion;
    motion.times_s = io::read_npy_vector<double>(times_path);
    motion.depths_um = io::read_npy_vector<double>(depths_path);
    const io::NpyArray values = io::read_npy(values_path);
    const std::size_t n_times = motion.times_s.size(), n_depths = motion.depths_um.size();
    require(values.shape.size() == 2 && values.shape[0] == n_times && values.shape[1] == n_depths,
            values_path.string() + " must have shape (" + std::to_string(n_times) + ", " + std::to_string(n_depths) +
                "): one row per time of motion_times_s.npy, one column per depth of motion_depths_um.npy");
    motion.um = values.as<double>();
    auto increasing = [](const std::vector<double>& v) {
        for (std::size_t i = 0; i < v.size(); ++i)
            if (!std::isfinite(v[i]) || (i > 0 && v[i] <= v[i - 1]))
                return false;
        return !v.empty();
    };
    require(increasing(motion.times_s), times_path.string() + " must hold finite, increasing times");
    require(increasing(motion.depths_um), depths_path.string() + " must hold finite, increasing depths");
    require(std::all_of(motion.um.begin(), motion.um.end(), [](double v) { return std::isfinite(v); }),
            values_path.string() + " holds a value that is not finite");
    return motion;
}

/// Index i and weight w such that a value at x is (1 - w) * v[i] + w * v[i + 1] (w = 0 and i at an end outside).
std::pair<std::size_t, double> interpolation(const std::vector<double>& grid, double x) {
    if (grid.size() < 2 || x <= grid.front())
        return {0, 0.0};
    if (x >= grid.back())
        return {grid.size() - 1, 0.0};
    const std::size_t i = static_cast<std::size_t>(std::upper_bound(grid.begin(), grid.end(), x) - grid.begin()) - 1;
    return {i, (x - grid[i]) / (grid[i + 1] - grid[i])};
}

} // namespace

double GroundTruthMotion::at(double time_s, double depth_um) const {
    const auto [t, wt] = interpolation(times_s, time_s);
    const auto [d, wd] = interpolation(depths_um, depth_um);
    const std::size_t n_depths = depths_um.size();
    auto value = [&](std::size_t ti, std::size_t di) { return um[ti * n_depths + di]; };
    auto along_depth = [&](std::size_t ti) {
        return wd == 0 ? value(ti, d) : (1 - wd) * value(ti, d) + wd * value(ti, d + 1);
    };
    return wt == 0 ? along_depth(t) : (1 - wt) * along_depth(t) + wt * along_depth(t + 1);
}

GroundTruth read_ground_truth(const std::filesystem::path& dir, bool read_motion) {
    std::error_code ec;
    require(fs::is_directory(dir, ec), "ground-truth folder " + dir.string() + " does not exist");
    const fs::path times_path = dir / "spike_times.npy";
    const fs::path units_path = dir / "spike_units.npy";
    const fs::path tsv_path = dir / "units.tsv";
    const fs::path info_path = dir / "info.json";
    require_file(times_path, "ground-truth spike samples");
    require_file(units_path, "ground-truth spike units");
    require_file(tsv_path, "ground-truth unit table");
    require_file(info_path, "ground-truth metadata with sample_rate");

    GroundTruth truth;
    truth.sample_rate = read_sample_rate(info_path);
    truth.spike_times = io::read_npy_vector<std::uint64_t>(times_path);
    truth.spike_units = io::read_npy_vector<std::int32_t>(units_path);
    truth.units = read_units_tsv(tsv_path);
    truth.recording = read_recording_shape(info_path);
    if (read_motion)
        truth.motion = read_ground_truth_motion(dir);

    require(truth.spike_times.size() == truth.spike_units.size(),
            units_path.string() + " has " + std::to_string(truth.spike_units.size()) + " entries but " +
                times_path.string() + " has " + std::to_string(truth.spike_times.size()));
    const auto unsorted = std::is_sorted_until(truth.spike_times.begin(), truth.spike_times.end());
    require(unsorted == truth.spike_times.end(), times_path.string() + " is not sorted in time (entry " +
                                                     std::to_string(unsorted - truth.spike_times.begin()) +
                                                     " comes before its predecessor)");
    const UnitIndex index(truth.units);
    for (std::size_t i = 0; i < truth.spike_units.size(); ++i)
        if (index.find(truth.spike_units[i]) < 0) // (not require(): it would build the message for every spike)
            throw InputError(units_path.string() + " entry " + std::to_string(i) + " names unit " +
                             std::to_string(truth.spike_units[i]) + ", which is not in " + tsv_path.string());
    return truth;
}

DetectedSpikes read_detected(const std::filesystem::path& dir) {
    std::error_code ec;
    require(fs::is_directory(dir, ec), "detection output folder " + dir.string() + " does not exist");
    const fs::path times_path = dir / "spike_times.npy";
    const fs::path channels_path = dir / "spike_channels.npy";
    require_file(times_path, "detected spike samples");
    require_file(channels_path, "detected spike channels");
    DetectedSpikes detected;
    detected.times = io::read_npy_vector<std::uint64_t>(times_path);
    detected.channels = io::read_npy_vector<std::int32_t>(channels_path);
    detected.recording = read_recording_shape(dir / "detect_info.json");
    require(detected.times.size() == detected.channels.size(),
            channels_path.string() + " has " + std::to_string(detected.channels.size()) + " entries but " +
                times_path.string() + " has " + std::to_string(detected.times.size()));
    return detected;
}

DetectionScore compare_detection(const GroundTruth& truth, const DetectedSpikes& detected, const probe::Probe& probe,
                                 const DetectionCompareOptions& options) {
    require(std::isfinite(options.window_ms) && options.window_ms >= 0, "the match window must be >= 0 ms");
    require(std::isfinite(options.radius_um) && options.radius_um >= 0, "the match radius must be >= 0 um");
    require(std::isfinite(truth.sample_rate) && truth.sample_rate > 0, "the ground truth has no valid sample rate");
    check_same_recording(truth.recording, detected.recording, "detected");
    require(truth.spike_times.size() == truth.spike_units.size(),
            "ground truth: " + std::to_string(truth.spike_times.size()) + " spike times but " +
                std::to_string(truth.spike_units.size()) + " spike units");
    require(detected.times.size() == detected.channels.size(),
            "detected spikes: " + std::to_string(detected.times.size()) + " times but " +
                std::to_string(detected.channels.size()) + " channels");

    const int n_channels = probe.n_channels();
    const std::size_t n_units = truth.units.size();
    for (const auto& unit : truth.units)
        require(unit.peak_channel >= 0 && unit.peak_channel < n_channels,
                "ground-truth unit " + std::to_string(unit.id) + " has peak channel " +
                    std::to_string(unit.peak_channel) + " but the probe has " + std::to_string(n_channels) +
                    " channels (units.tsv does not belong to this probe)");
    for (std::size_t i = 0; i < detected.channels.size(); ++i)
        if (detected.channels[i] < 0 || detected.channels[i] >= n_channels)
            throw InputError("detected event " + std::to_string(i) + " is on channel " +
                             std::to_string(detected.channels[i]) + " but the probe has " + std::to_string(n_channels) +
                             " channels (spike_channels.npy does not belong to this probe)");

    // Per unit, the unit's slot among the distinct peak channels; per slot, a mask of the channels in range.
    const double radius = options.radius_um * (1 + 1e-12) + 1e-9; // absorb rounding of exact distances
    std::vector<std::int32_t> slot_of_channel(static_cast<std::size_t>(n_channels), -1);
    std::vector<std::int32_t> unit_slot(n_units);
    std::vector<std::uint8_t> near; // slot * n_channels + channel
    std::int32_t n_slots = 0;
    for (std::size_t u = 0; u < n_units; ++u) {
        const int peak = truth.units[u].peak_channel;
        std::int32_t& slot = slot_of_channel[static_cast<std::size_t>(peak)];
        if (slot < 0) {
            slot = n_slots++;
            for (int c = 0; c < n_channels; ++c)
                near.push_back(probe.distance_um(peak, c) <= radius ? 1 : 0);
        }
        unit_slot[u] = slot;
    }

    // Spike -> unit index.
    const UnitIndex index(truth.units);
    const std::size_t n_truth = truth.spike_times.size();
    std::vector<std::int32_t> spike_unit(n_truth);
    for (std::size_t i = 0; i < n_truth; ++i) {
        spike_unit[i] = index.find(truth.spike_units[i]);
        if (spike_unit[i] < 0)
            throw InputError("ground-truth spike " + std::to_string(i) + " names unit " +
                             std::to_string(truth.spike_units[i]) + ", which is not in the unit table");
    }

    // Events in time order (stable, so equal times keep their order in `detected`).
    const std::size_t n_events = detected.times.size();
    std::vector<std::uint64_t> event_time;
    std::vector<std::int32_t> event_channel;
    if (std::is_sorted(detected.times.begin(), detected.times.end())) {
        event_time = detected.times;
        event_channel = detected.channels;
    } else {
        // (time, index) keys are unique, so a plain sort by value gives the stable order without indirection.
        std::vector<std::pair<std::uint64_t, std::size_t>> keys(n_events);
        for (std::size_t e = 0; e < n_events; ++e)
            keys[e] = {detected.times[e], e};
        std::sort(keys.begin(), keys.end());
        event_time.resize(n_events);
        event_channel.resize(n_events);
        for (std::size_t k = 0; k < n_events; ++k) {
            event_time[k] = keys[k].first;
            event_channel[k] = detected.channels[keys[k].second];
        }
    }

    // Ground-truth spikes in time order (they normally are already).
    std::vector<std::size_t> truth_order;
    const bool truth_sorted = std::is_sorted(truth.spike_times.begin(), truth.spike_times.end());
    if (!truth_sorted) {
        truth_order.resize(n_truth);
        std::iota(truth_order.begin(), truth_order.end(), std::size_t{0});
        std::stable_sort(truth_order.begin(), truth_order.end(),
                         [&](std::size_t a, std::size_t b) { return truth.spike_times[a] < truth.spike_times[b]; });
    }

    const double window_samples = std::round(options.window_ms * truth.sample_rate / 1000.0);
    require(window_samples < 1e15, "the match window is absurdly large");
    const auto window = static_cast<std::uint64_t>(window_samples);

    const bool follow_motion = options.follow_motion && truth.motion.has_value();
    std::vector<std::uint8_t> matched(n_events, 0);
    std::vector<std::uint64_t> unit_spikes(n_units, 0), unit_found(n_units, 0);
    std::uint64_t n_matched = 0;
    std::size_t first = 0; // events before `first` ended before the window of every remaining spike
    for (std::size_t k = 0; k < n_truth; ++k) {
        const std::size_t i = truth_sorted ? k : truth_order[k];
        const std::uint64_t t = truth.spike_times[i];
        const auto u = static_cast<std::size_t>(spike_unit[i]);
        ++unit_spikes[u];
        while (first < n_events && (event_time[first] + window < t || matched[first]))
            ++first;
        const std::uint8_t* in_range = near.data() + static_cast<std::size_t>(unit_slot[u]) * n_channels;
        // Following the drift: the unit's peak contact moved along y by the displacement at this time and depth.
        std::optional<probe::Contact> moved;
        if (follow_motion) {
            moved = probe.contacts[static_cast<std::size_t>(truth.units[u].peak_channel)];
            moved->y_um += truth.motion->at(static_cast<double>(t) / truth.sample_rate, moved->y_um);
        }
        auto near_unit = [&](int channel) {
            if (!moved)
                return in_range[channel] != 0;
            const probe::Contact& c = probe.contacts[static_cast<std::size_t>(channel)];
            return c.shank == moved->shank && std::hypot(c.x_um - moved->x_um, c.y_um - moved->y_um) <= radius;
        };
        std::size_t best = n_events;
        std::uint64_t best_distance = 0;
        for (std::size_t e = first; e < n_events && event_time[e] <= t + window; ++e) {
            const std::uint64_t te = event_time[e];
            const std::uint64_t distance = te < t ? t - te : te - t;
            if (best != n_events && te >= t && distance >= best_distance)
                break; // later events are only farther away
            if (matched[e] || te + window < t || !near_unit(event_channel[e]))
                continue;
            if (best == n_events || distance < best_distance) {
                best = e;
                best_distance = distance;
            }
        }
        if (best != n_events) {
            matched[best] = 1;
            ++unit_found[u];
            ++n_matched;
        }
    }

    DetectionScore score;
    score.window_samples = window;
    score.radius_um = options.radius_um;
    score.followed_motion = follow_motion;
    score.n_ground_truth = n_truth;
    score.n_detected = n_events;
    score.n_matched = n_matched;
    score.precision = ratio(n_matched, n_events);
    score.recall = ratio(n_matched, n_truth);

    std::uint64_t spikes_5 = 0, found_5 = 0;
    score.unit_recall.resize(n_units);
    score.units.resize(n_units);
    for (std::size_t u = 0; u < n_units; ++u) {
        const auto& unit = truth.units[u];
        UnitScore& unit_score = score.units[u];
        unit_score.unit_id = unit.id;
        unit_score.peak_channel = unit.peak_channel;
        unit_score.snr = unit.snr;
        unit_score.n_spikes = unit_spikes[u];
        unit_score.n_found = unit_found[u];
        unit_score.recall = ratio(unit_found[u], unit_spikes[u]);
        score.unit_recall[u] = unit_score.recall;
        if (unit.snr >= 5) {
            spikes_5 += unit_spikes[u];
            found_5 += unit_found[u];
        }
    }
    score.recall_snr_at_least_5 = ratio(found_5, spikes_5);

    for (const BinSpec& spec : kBins) {
        SnrBinScore bin;
        bin.label = spec.label;
        bin.snr_low = spec.low;
        bin.snr_high = spec.high;
        double recall_sum = 0;
        int units_with_spikes = 0;
        for (const UnitScore& unit : score.units) {
            if (!(unit.snr >= spec.low && unit.snr < spec.high))
                continue;
            ++bin.n_units;
            bin.n_spikes += unit.n_spikes;
            bin.n_found += unit.n_found;
            if (unit.n_spikes > 0) {
                recall_sum += unit.recall;
                ++units_with_spikes;
            }
        }
        bin.recall = ratio(bin.n_found, bin.n_spikes);
        bin.mean_unit_recall = units_with_spikes > 0 ? recall_sum / units_with_spikes : kNaN;
        score.bins.push_back(bin);
    }
    return score;
}

nlohmann::json to_json(const DetectionScore& score) {
    nlohmann::json json;
    json["window_samples"] = score.window_samples;
    json["radius_um"] = score.radius_um;
    json["radius_follows_motion"] = score.followed_motion;
    json["n_ground_truth"] = score.n_ground_truth;
    json["n_detected"] = score.n_detected;
    json["n_matched"] = score.n_matched;
    json["precision"] = number_or_null(score.precision);
    json["recall"] = number_or_null(score.recall);
    json["recall_snr_at_least_5"] = number_or_null(score.recall_snr_at_least_5);
    json["bins"] = nlohmann::json::array();
    for (const SnrBinScore& bin : score.bins)
        json["bins"].push_back({{"label", bin.label},
                                {"snr_low", bin.snr_low},
                                {"snr_high", number_or_null(bin.snr_high)},
                                {"n_units", bin.n_units},
                                {"n_spikes", bin.n_spikes},
                                {"n_found", bin.n_found},
                                {"recall", number_or_null(bin.recall)},
                                {"mean_unit_recall", number_or_null(bin.mean_unit_recall)}});
    json["units"] = nlohmann::json::array();
    for (const UnitScore& unit : score.units)
        json["units"].push_back({{"unit_id", unit.unit_id},
                                 {"peak_channel", unit.peak_channel},
                                 {"snr", unit.snr},
                                 {"n_spikes", unit.n_spikes},
                                 {"recall", number_or_null(unit.recall)}});
    return json;
}

std::string format_report(const DetectionScore& score) {
    std::ostringstream out;
    char line[160];
    std::snprintf(line, sizeof line, "match window +-%llu samples, radius %g um%s\n",
                  static_cast<unsigned long long>(score.window_samples), score.radius_um,
                  score.followed_motion ? " around each unit's position under the ground truth's drift" : "");
    out << line;
    std::snprintf(line, sizeof line, "%-10s %7s %12s %12s %8s %10s\n", "SNR", "units", "spikes", "found", "recall",
                  "unit mean");
    out << line;
    const auto row = [&](const std::string& label, const std::string& units, std::uint64_t spikes, std::uint64_t found,
                         double recall, const std::string& unit_mean) {
        std::snprintf(line, sizeof line, "%-10s %7s %12llu %12llu %8s %10s\n", label.c_str(), units.c_str(),
                      static_cast<unsigned long long>(spikes), static_cast<unsigned long long>(found),
                      format_ratio(recall).c_str(), unit_mean.c_str());
        std::string text = line;
        text.erase(text.find_last_not_of(" \n") + 1);
        out << text << '\n';
    };
    std::uint64_t spikes_5 = 0, found_5 = 0;
    int units_5 = 0;
    for (const SnrBinScore& bin : score.bins) {
        row(bin.label, std::to_string(bin.n_units), bin.n_spikes, bin.n_found, bin.recall,
            format_ratio(bin.mean_unit_recall));
        if (bin.snr_low >= 5) {
            spikes_5 += bin.n_spikes;
            found_5 += bin.n_found;
            units_5 += bin.n_units;
        }
    }
    row(">=5", std::to_string(units_5), spikes_5, found_5, score.recall_snr_at_least_5, "");
    row("all", std::to_string(score.units.size()), score.n_ground_truth, score.n_matched, score.recall, "");
    std::snprintf(line, sizeof line, "precision %s (%llu of %llu detected events matched)\n",
                  format_ratio(score.precision).c_str(), static_cast<unsigned long long>(score.n_matched),
                  static_cast<unsigned long long>(score.n_detected));
    out << line;
    return out.str();
}

} // namespace spikeline::eval

namespace spikeline::eval {

bool is_sorted_output(const std::filesystem::path& dir) {
    std::error_code ec;
    return fs::is_regular_file(dir / "spike_clusters.npy", ec);
}

SortedSpikes read_sorted(const std::filesystem::path& dir) {
    std::error_code ec;
    require(fs::is_directory(dir, ec), "sorted output folder " + dir.string() + " does not exist");
    const fs::path times_path = dir / "spike_times.npy";
    const fs::path clusters_path = dir / "spike_clusters.npy";
    require_file(times_path, "sorted spike samples");
    require_file(clusters_path, "sorted spike clusters");
    SortedSpikes sorted;
    sorted.times = io::read_npy_vector<std::uint64_t>(times_path);
    sorted.clusters = io::read_npy_vector<std::int32_t>(clusters_path);
    sorted.recording = read_recording_shape(dir / "spikeline_sort.json");
    require(sorted.times.size() == sorted.clusters.size(),
            clusters_path.string() + " has " + std::to_string(sorted.clusters.size()) + " entries but " +
                times_path.string() + " has " + std::to_string(sorted.times.size()));
    const fs::path groups_path = dir / "cluster_group.tsv";
    if (fs::is_regular_file(groups_path, ec)) {
        std::ifstream in(groups_path);
        std::string line;
        std::getline(in, line); // header
        int line_number = 1;
        while (std::getline(in, line)) {
            ++line_number;
            if (trim(line).empty())
                continue;
            const auto fields = split_tabs(line);
            int id = 0;
            require(fields.size() >= 2 && parse_number(fields[0], id), groups_path.string() + " line " +
                                                                           std::to_string(line_number) +
                                                                           ": expected 'cluster_id<TAB>group'");
            if (trim(fields[1]) == "noise")
                sorted.excluded.push_back(id);
        }
    }
    return sorted;
}

SortingScore compare_sorting(const GroundTruth& truth, const SortedSpikes& sorted,
                             const SortingCompareOptions& options) {
    require(std::isfinite(options.window_ms) && options.window_ms >= 0, "the match window must be >= 0 ms");
    check_same_recording(truth.recording, sorted.recording, "sorted");
    SortingScore score;
    score.window_samples = static_cast<std::uint64_t>(std::llround(options.window_ms * truth.sample_rate / 1000.0));
    const std::uint64_t window = score.window_samples;

    // Sorted spikes of real clusters, in time order.
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < sorted.times.size(); ++i)
        if (std::find(sorted.excluded.begin(), sorted.excluded.end(), sorted.clusters[i]) == sorted.excluded.end())
            order.push_back(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return sorted.times[a] < sorted.times[b]; });
    std::map<int, std::uint64_t> cluster_size;
    for (std::size_t i : order)
        ++cluster_size[sorted.clusters[i]];
    score.n_sorted_units = static_cast<int>(cluster_size.size());

    const UnitIndex index(truth.units);
    std::vector<std::uint64_t> gt_size(truth.units.size(), 0);
    std::map<std::pair<int, int>, std::uint64_t> matches; // (GT unit index, cluster) -> matched GT spikes
    std::size_t first = 0;
    std::vector<int> seen;
    for (std::size_t g = 0; g < truth.spike_times.size(); ++g) {
        const std::uint64_t t = truth.spike_times[g];
        const int unit = index.find(truth.spike_units[g]);
        ++gt_size[static_cast<std::size_t>(unit)];
        while (first < order.size() && sorted.times[order[first]] + window < t)
            ++first;
        seen.clear();
        for (std::size_t j = first; j < order.size() && sorted.times[order[j]] <= t + window; ++j) {
            const int cluster = sorted.clusters[order[j]];
            if (std::find(seen.begin(), seen.end(), cluster) == seen.end()) {
                seen.push_back(cluster);
                ++matches[{unit, cluster}];
            }
        }
    }

    auto accuracy = [&](std::size_t unit, int cluster, std::uint64_t matched) {
        const double denominator =
            static_cast<double>(gt_size[unit] + cluster_size[cluster]) - static_cast<double>(matched);
        return denominator > 0 ? static_cast<double>(matched) / denominator : 0.0;
    };
    score.units.resize(truth.units.size());
    for (std::size_t u = 0; u < truth.units.size(); ++u) {
        GroundTruthUnitScore& s = score.units[u];
        s.unit_id = truth.units[u].id;
        s.peak_channel = truth.units[u].peak_channel;
        s.snr = truth.units[u].snr;
        s.n_spikes = gt_size[u];
        s.recall = s.precision = 0;
    }
    std::map<int, std::vector<std::size_t>> agreeing; // cluster -> GT units it agrees with
    for (const auto& [key, matched] : matches) {
        const auto unit = static_cast<std::size_t>(key.first);
        const double a = accuracy(unit, key.second, matched);
        GroundTruthUnitScore& s = score.units[unit];
        if (a > s.accuracy || (a == s.accuracy && s.best_cluster >= 0 && key.second < s.best_cluster)) {
            s.accuracy = a;
            s.best_cluster = key.second;
            s.n_matched = matched;
            s.n_cluster_spikes = cluster_size[key.second];
            s.recall = ratio(matched, s.n_spikes);
            s.precision = ratio(matched, s.n_cluster_spikes);
        }
        if (a >= options.agreement)
            agreeing[key.second].push_back(unit);
    }
    for (const auto& [cluster, size] : cluster_size) {
        const auto it = agreeing.find(cluster);
        if (it == agreeing.end()) {
            ++score.n_false_positive;
            continue;
        }
        if (it->second.size() >= 2)
            ++score.n_overmerged;
        bool best_somewhere = false;
        for (std::size_t u = 0; u < score.units.size(); ++u)
            best_somewhere |= score.units[u].best_cluster == cluster && score.units[u].accuracy >= options.agreement;
        if (!best_somewhere)
            ++score.n_redundant;
    }

    struct Bin {
        const char* label;
        double low, high;
    };
    for (const Bin& b : {Bin{"3-5", 3, 5}, Bin{"5-8", 5, 8}, Bin{"8-12", 8, 12}, Bin{"12+", 12, kInf},
                         Bin{"SNR>8", 8, kInf}, Bin{"all", -kInf, kInf}}) {
        SortingBinScore bin;
        bin.label = b.label;
        bin.snr_low = b.low;
        bin.snr_high = b.high;
        for (const GroundTruthUnitScore& s : score.units) {
            const bool inside = std::string(b.label) == "SNR>8" ? s.snr > 8 : (s.snr >= b.low && s.snr < b.high);
            if (!inside || s.n_spikes == 0)
                continue;
            ++bin.n_units;
            bin.n_well_detected += s.accuracy >= options.well_detected;
            bin.mean_accuracy += s.accuracy;
            bin.mean_recall += s.recall;
            bin.mean_precision += s.precision;
        }
        if (bin.n_units > 0) {
            bin.mean_accuracy /= bin.n_units;
            bin.mean_recall /= bin.n_units;
            bin.mean_precision /= bin.n_units;
        } else {
            bin.mean_accuracy = bin.mean_recall = bin.mean_precision = kNaN;
        }
        score.bins.push_back(bin);
    }
    return score;
}

nlohmann::json to_json(const SortingScore& score) {
    nlohmann::json json = {{"kind", "sorting"},
                           {"window_samples", score.window_samples},
                           {"n_sorted_units", score.n_sorted_units},
                           {"n_false_positive_units", score.n_false_positive},
                           {"n_redundant_units", score.n_redundant},
                           {"n_overmerged_units", score.n_overmerged},
                           {"bins", nlohmann::json::array()},
                           {"units", nlohmann::json::array()}};
    for (const SortingBinScore& bin : score.bins)
        json["bins"].push_back({{"snr", bin.label},
                                {"n_units", bin.n_units},
                                {"n_well_detected", bin.n_well_detected},
                                {"mean_accuracy", number_or_null(bin.mean_accuracy)},
                                {"mean_recall", number_or_null(bin.mean_recall)},
                                {"mean_precision", number_or_null(bin.mean_precision)}});
    for (const GroundTruthUnitScore& u : score.units)
        json["units"].push_back({{"unit_id", u.unit_id},
                                 {"peak_channel", u.peak_channel},
                                 {"snr", u.snr},
                                 {"n_spikes", u.n_spikes},
                                 {"best_cluster", u.best_cluster},
                                 {"n_cluster_spikes", u.n_cluster_spikes},
                                 {"n_matched", u.n_matched},
                                 {"accuracy", u.accuracy},
                                 {"recall", number_or_null(u.recall)},
                                 {"precision", number_or_null(u.precision)}});
    return json;
}

std::string format_report(const SortingScore& score) {
    std::ostringstream out;
    char line[200];
    std::snprintf(line, sizeof line, "match window +-%llu samples; %d sorted units\n",
                  static_cast<unsigned long long>(score.window_samples), score.n_sorted_units);
    out << line;
    std::snprintf(line, sizeof line, "%-8s %6s %9s %9s %9s %14s\n", "SNR", "units", "accuracy", "recall", "precision",
                  "well detected");
    out << line;
    for (const SortingBinScore& bin : score.bins) {
        std::snprintf(line, sizeof line, "%-8s %6d %9s %9s %9s %8d (%s)\n", bin.label.c_str(), bin.n_units,
                      format_ratio(bin.mean_accuracy).c_str(), format_ratio(bin.mean_recall).c_str(),
                      format_ratio(bin.mean_precision).c_str(), bin.n_well_detected,
                      format_ratio(ratio(static_cast<std::uint64_t>(bin.n_well_detected),
                                         static_cast<std::uint64_t>(bin.n_units)))
                          .c_str());
        out << line;
    }
    std::snprintf(line, sizeof line, "sorted units: %d false positive, %d redundant, %d over-merged\n",
                  score.n_false_positive, score.n_redundant, score.n_overmerged);
    out << line;
    return out.str();
}

} // namespace spikeline::eval
