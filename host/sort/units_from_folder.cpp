#include "sort/units_from_folder.hpp"

#include "io/npy.hpp"
#include "sort/clustering.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

namespace spikeline::sort {
namespace {

namespace fs = std::filesystem;

constexpr int kRows = HwSortConfig::snippet_channels;
constexpr int kValues = HwSortConfig::n_values;
/// Template rows kept: channels whose largest |value| reaches this share of the unit's peak.
constexpr double kKeptRowShare = 0.02;
/// Channels on which a unit's spikes may be detected: this share of its peak or more.
constexpr double kFootprintShare = 0.25;
/// Offsets (detected - folder spike time) searched when lining up spike times, samples.
constexpr int kMaxOffset = 20;
/// A detection takes a folder spike's label within this many samples of the unit's usual offset.
constexpr int kMatchTolerance = 2;
/// A template-derived entry accepts, while it is refined, spikes whose squared distance is below this share of its
/// centroid's squared norm (residual energy below half the template's).
constexpr double kTemplateAcceptShare = 0.5;

std::string describe(const fs::path& path) {
    return path.string();
}

/// The elements of an integer, float or bool array as doubles (exact for integers below 2^53: spike times of
/// ~95 years at 30 kHz).
/// Elements first .. first + count - 1 (all by default).
std::vector<double> numbers_of(const io::NpyArray& array, const fs::path& path, std::size_t first = 0,
                               std::size_t count = static_cast<std::size_t>(-1)) {
    const std::size_t n = std::min(count, array.element_count() - first);
    std::vector<double> out(n);
    auto convert = [&](auto tag) {
        using T = decltype(tag);
        const char* data = array.data.data() + first * sizeof(T);
        for (std::size_t i = 0; i < n; ++i) {
            T value;
            std::memcpy(&value, data + i * sizeof(T), sizeof(T));
            out[i] = static_cast<double>(value);
        }
    };
    const std::string& d = array.descr;
    if (d == "<f4")
        convert(float{});
    else if (d == "<f8")
        convert(double{});
    else if (d == "<i2")
        convert(std::int16_t{});
    else if (d == "<i4")
        convert(std::int32_t{});
    else if (d == "<i8")
        convert(std::int64_t{});
    else if (d == "<u2")
        convert(std::uint16_t{});
    else if (d == "<u4")
        convert(std::uint32_t{});
    else if (d == "<u8")
        convert(std::uint64_t{});
    else if (d == "|u1" || d == "|b1")
        convert(std::uint8_t{});
    else if (d == "|i1")
        convert(std::int8_t{});
    else
        throw InputError(describe(path) + ": dtype " + d + " is not a number type spikeline reads here");
    return out;
}

struct Array {
    std::vector<std::size_t> shape;
    std::vector<double> values;
};

Array read_array(const fs::path& path) {
    const io::NpyArray array = io::read_npy(path);
    return {array.shape, numbers_of(array, path)};
}

fs::path required_file(const fs::path& folder, const char* name, const char* what) {
    const fs::path path = folder / name;
    require(fs::exists(path),
            "--units-from " + folder.string() + ": " + name + " is missing (" + what +
                "); point --units-from at a Kilosort output or Phy folder, or a spikeline sort folder");
    return path;
}

/// One number per spike, as integers (cluster or template ids).
std::vector<std::int64_t> per_spike_ids(const fs::path& path, std::size_t n_spikes) {
    const Array a = read_array(path);
    require(a.values.size() == n_spikes, describe(path) + " holds " + std::to_string(a.values.size()) +
                                             " values for the " + std::to_string(n_spikes) +
                                             " spikes of spike_times.npy: the folder's files do not belong together");
    std::vector<std::int64_t> ids(n_spikes);
    for (std::size_t i = 0; i < n_spikes; ++i) {
        require(a.values[i] >= 0 && a.values[i] == std::floor(a.values[i]),
                describe(path) + ": value " + std::to_string(a.values[i]) + " of spike " + std::to_string(i) +
                    " is not an id (a non-negative integer)");
        ids[i] = static_cast<std::int64_t>(a.values[i]);
    }
    return ids;
}

/// `key = value` lines of params.py (quotes kept).
std::map<std::string, std::string> read_params_py(const fs::path& path) {
    std::map<std::string, std::string> values;
    std::ifstream in(path);
    std::string line;
    auto trim = [](std::string s) {
        const auto first = s.find_first_not_of(" \t\r");
        const auto last = s.find_last_not_of(" \t\r");
        return first == std::string::npos ? std::string() : s.substr(first, last - first + 1);
    };
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq != std::string::npos)
            values[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
    }
    return values;
}

double params_number(const std::map<std::string, std::string>& params, const std::string& key, const fs::path& path) {
    try {
        std::size_t used = 0;
        const std::string& text = params.at(key);
        const double value = std::stod(text, &used);
        require(used == text.size(), "");
        return value;
    } catch (const std::exception&) {
        throw InputError(describe(path) + ": " + key + " is not a number ('" + params.at(key) + "')");
    }
}

/// cluster_id -> label of a Phy / Kilosort label table (cluster_group.tsv: group; cluster_KSLabel.tsv: KSLabel).
std::map<std::int64_t, std::string> read_labels(const fs::path& path) {
    std::ifstream in(path);
    std::string line;
    auto split = [](const std::string& text) {
        std::vector<std::string> fields;
        std::stringstream ss(text);
        std::string field;
        while (std::getline(ss, field, '\t')) {
            while (!field.empty() && (field.back() == '\r' || field.back() == ' '))
                field.pop_back();
            fields.push_back(field);
        }
        return fields;
    };
    require(static_cast<bool>(std::getline(in, line)), describe(path) + " is empty: a header line is expected");
    const std::vector<std::string> header = split(line);
    const auto id_column = std::find(header.begin(), header.end(), "cluster_id");
    require(id_column != header.end() && header.size() >= 2,
            describe(path) + ": the header has no cluster_id column and label column (e.g. 'cluster_id\\tgroup')");
    const std::size_t id_index = static_cast<std::size_t>(id_column - header.begin());
    const std::size_t label_index = id_index == 0 ? 1 : 0;
    std::map<std::int64_t, std::string> labels;
    int row = 1;
    while (std::getline(in, line)) {
        ++row;
        if (line.empty() || line == "\r")
            continue;
        const std::vector<std::string> fields = split(line);
        require(fields.size() > std::max(id_index, label_index),
                describe(path) + " line " + std::to_string(row) + ": fewer columns than the header");
        try {
            std::size_t used = 0;
            const long long id = std::stoll(fields[id_index], &used);
            require(used == fields[id_index].size() && id >= 0, "");
            labels[id] = fields[label_index];
        } catch (const std::exception&) {
            throw InputError(describe(path) + " line " + std::to_string(row) + ": '" + fields[id_index] +
                             "' is not a cluster id");
        }
    }
    return labels;
}

/// Checks that the folder's channel positions are the probe's up to a rigid move (Kilosort channel maps and
/// probeinterface files may place the same probe with other origins or mirrored): consecutive channels of the map,
/// and every channel and the first, lie equally far apart on both.
void check_positions(const fs::path& path, const std::vector<int>& run_channel_of, const probe::Probe& probe) {
    const Array positions = read_array(path);
    require(positions.shape.size() == 2 && positions.shape[1] == 2 && positions.shape[0] == run_channel_of.size(),
            describe(path) + " must hold one (x, y) row per channel of channel_map.npy (" +
                std::to_string(run_channel_of.size()) + " rows)");
    std::vector<std::size_t> mapped;
    for (std::size_t i = 0; i < run_channel_of.size(); ++i)
        if (run_channel_of[i] >= 0)
            mapped.push_back(i);
    auto folder_distance = [&](std::size_t a, std::size_t b) {
        return std::hypot(positions.values[2 * a] - positions.values[2 * b],
                          positions.values[2 * a + 1] - positions.values[2 * b + 1]);
    };
    auto probe_distance = [&](std::size_t a, std::size_t b) {
        const probe::Contact& ca = probe.contacts[static_cast<std::size_t>(run_channel_of[a])];
        const probe::Contact& cb = probe.contacts[static_cast<std::size_t>(run_channel_of[b])];
        // Shanks: the probe's x may not include the shank pitch, while a channel map's does; compare within a shank.
        if (ca.shank != cb.shank)
            return -1.0;
        return std::hypot(ca.x_um - cb.x_um, ca.y_um - cb.y_um);
    };
    for (std::size_t j = 1; j < mapped.size(); ++j)
        for (const std::size_t other : {mapped[j - 1], mapped[0]}) {
            const double on_probe = probe_distance(mapped[j], other);
            const double in_folder = folder_distance(mapped[j], other);
            if (on_probe >= 0 && std::abs(on_probe - in_folder) > 1.0)
                throw InputError("--units-from: the folder's channel geometry is not this probe's (" + probe.name +
                                 "): channel_map rows " + std::to_string(other) + " and " + std::to_string(mapped[j]) +
                                 " lie " + std::to_string(in_folder) + " um apart in " + describe(path) + " and " +
                                 std::to_string(on_probe) +
                                 " um apart on the probe. The units were sorted on another probe or channel map: "
                                 "give the probe they were sorted with (--probe), or sort this recording afresh");
        }
}

/// A unit's snippet seen from `channel`: rows snippet_channels[channel][k] of `rows_of` (a channel -> samples map, each
/// row aligned at `trough`), placed so that `trough` falls on pre, then shifted so that the first row's extremum lies
/// at pre (as the detector aligns spikes).
std::vector<double> seen_from(const HwSortParams& params, const std::map<int, std::vector<double>>& rows_of, int trough,
                              int channel, int width) {
    std::vector<double> rows(static_cast<std::size_t>(kRows * width), 0.0);
    for (int k = 0; k < kRows; ++k) {
        const int ch = params.snippet_channels[channel][k];
        const auto it = ch < 0 ? rows_of.end() : rows_of.find(ch);
        if (it == rows_of.end())
            continue;
        const std::vector<double>& row = it->second;
        for (int s = 0; s < width; ++s) {
            const int t = trough - params.pre + s;
            if (t >= 0 && t < static_cast<int>(row.size()))
                rows[static_cast<std::size_t>(k * width + s)] = row[static_cast<std::size_t>(t)];
        }
    }
    return aligned_on_first_row(rows, width, params.pre);
}

double squared_distance(const std::int32_t* features, const std::vector<double>& centroid) {
    double sum = 0;
    for (int v = 0; v < kValues; ++v) {
        const double d = features[v] - centroid[static_cast<std::size_t>(v)];
        sum += d * d;
    }
    return sum;
}

double squared_norm(const std::vector<double>& values) {
    return std::inner_product(values.begin(), values.end(), values.begin(), 0.0);
}

/// Sum of hist[centre - 2 .. centre + 2] (bins clipped to the histogram).
std::size_t window_count(const std::vector<std::size_t>& hist, int centre) {
    std::size_t sum = 0;
    for (int o = centre - kMatchTolerance; o <= centre + kMatchTolerance; ++o)
        if (o >= 0 && o < static_cast<int>(hist.size()))
            sum += hist[static_cast<std::size_t>(o)];
    return sum;
}

/// The histogram bin at the centre of the densest +-kMatchTolerance window, the window's bins weighted by their
/// nearness to its centre (a triangular kernel): with flat weights a peak in one bin ties with windows that merely
/// contain it, and the choice among them went by what lay at their edges. Ties: the lower bin.
int densest_window(const std::vector<std::size_t>& hist) {
    auto weighted = [&](int centre) {
        std::size_t sum = 0;
        for (int o = centre - kMatchTolerance; o <= centre + kMatchTolerance; ++o)
            if (o >= 0 && o < static_cast<int>(hist.size()))
                sum += hist[static_cast<std::size_t>(o)] *
                       static_cast<std::size_t>(kMatchTolerance + 1 - std::abs(o - centre));
        return sum;
    };
    int best = 0;
    for (int o = 1; o < static_cast<int>(hist.size()); ++o)
        if (weighted(o) > weighted(best))
            best = o;
    return best;
}

/// An entry learnt from matched spikes, before it is registered.
struct Candidate {
    std::size_t unit = 0; ///< index into OfflineUnits::units
    int channel = 0;
    std::vector<int> members; ///< window spikes
};

} // namespace

nlohmann::json UnitsFromReport::to_json() const {
    return {{"spike_times_used", spike_times_used},
            {"spike_time_offset_samples", spike_time_offset},
            {"matched_spikes", matched_spikes},
            {"units_from_spikes", units_from_spikes},
            {"units_from_templates", units_from_templates},
            {"units_dropped", units_dropped}};
}

OfflineUnits read_offline_units(const fs::path& folder, const io::RecordingInfo& info, const probe::Probe& probe,
                                const UnitsFromOptions& options) {
    require(fs::is_directory(folder), "--units-from " + folder.string() +
                                          ": not a folder (give a Kilosort output or Phy folder, or a spikeline sort "
                                          "folder)");
    OfflineUnits result;
    result.folder = folder;
    result.layout = fs::exists(folder / "spikeline_sort.json") ? "spikeline" : "kilosort";
    const bool spikeline_folder = result.layout == "spikeline";

    // params.py: the recording the folder was sorted from must have this one's channel count and sample rate.
    if (fs::exists(folder / "params.py")) {
        const fs::path path = folder / "params.py";
        const auto params = read_params_py(path);
        if (params.count("n_channels_dat")) {
            const double n = params_number(params, "n_channels_dat", path);
            require(static_cast<int>(n) == info.file_channels(),
                    "--units-from: channel count mismatch: the folder was sorted from a recording of " +
                        std::to_string(static_cast<int>(n)) + " channels (n_channels_dat in " + describe(path) +
                        "), this recording has " + std::to_string(info.file_channels()) +
                        " channels per frame: use units sorted on this probe and channel layout");
        }
        if (params.count("sample_rate")) {
            const double rate = params_number(params, "sample_rate", path);
            require(std::abs(rate - info.sample_rate) <= 1e-3 * info.sample_rate,
                    "--units-from: sample rate mismatch: the folder's recording ran at " + std::to_string(rate) +
                        " Hz (sample_rate in " + describe(path) + "), this one at " + std::to_string(info.sample_rate) +
                        " Hz: templates and spike times would not fit");
        }
    }

    // Channels: channel_map[i] is the data file's channel of the folder's channel i (the index templates_ind,
    // channel_positions and dense template columns use).
    const Array channel_map = read_array(required_file(folder, "channel_map.npy", "the folder's channels"));
    std::map<int, int> run_channel_of_id;
    for (int c = 0; c < info.n_channels; ++c)
        run_channel_of_id[info.channel_id(c)] = c;
    std::vector<int> run_channel_of(channel_map.values.size(), -1);
    for (std::size_t i = 0; i < channel_map.values.size(); ++i) {
        const double id = channel_map.values[i];
        require(id >= 0 && id < info.file_channels(),
                "--units-from: channel count mismatch: " + describe(folder / "channel_map.npy") + " lists channel " +
                    std::to_string(static_cast<long long>(id)) + " of the recording, which has " +
                    std::to_string(info.file_channels()) + " channels: use units sorted on this probe");
        if (auto it = run_channel_of_id.find(static_cast<int>(id)); it != run_channel_of_id.end())
            run_channel_of[i] = it->second; // others: not delivered here (a channel selection, a sync channel)
    }
    require(channel_map.values.size() <= static_cast<std::size_t>(info.file_channels()),
            "--units-from: channel count mismatch: the folder has " + std::to_string(channel_map.values.size()) +
                " channels (channel_map.npy), this recording " + std::to_string(info.file_channels()));
    if (fs::exists(folder / "channel_positions.npy"))
        check_positions(folder / "channel_positions.npy", run_channel_of, probe);

    // Templates: (templates, samples, columns); a column is the folder channel templates_ind names, or its index.
    // Kept as read (a dense 1024-channel Kilosort file is hundreds of MB); a template at a time becomes doubles.
    const fs::path templates_path = required_file(folder, "templates.npy", "the units' waveforms");
    const io::NpyArray templates = io::read_npy(templates_path);
    numbers_of(templates, templates_path, 0, 1); // a dtype check
    require(templates.shape.size() == 3 && templates.shape[0] > 0 && templates.shape[1] > 0,
            describe(folder / "templates.npy") + " must be a 3-D array (templates, samples, channels)");
    const std::size_t n_templates = templates.shape[0], n_samples = templates.shape[1], n_columns = templates.shape[2];
    result.template_samples = static_cast<int>(n_samples);
    std::vector<std::int64_t> column_channel(n_templates * n_columns);
    fs::path ind_path;
    for (const char* name : {"templates_ind.npy", "template_ind.npy"})
        if (ind_path.empty() && fs::exists(folder / name))
            ind_path = folder / name;
    if (!ind_path.empty()) {
        const Array ind = read_array(ind_path);
        require(ind.shape.size() == 2 && ind.shape[0] == n_templates && ind.shape[1] == n_columns,
                describe(ind_path) + " must have one row per template and one column per template column (" +
                    std::to_string(n_templates) + " x " + std::to_string(n_columns) + ")");
        for (std::size_t i = 0; i < ind.values.size(); ++i) {
            require(ind.values[i] < static_cast<double>(channel_map.values.size()),
                    describe(ind_path) + " names channel " + std::to_string(ind.values[i]) + ", beyond the " +
                        std::to_string(channel_map.values.size()) + " of channel_map.npy");
            column_channel[i] = static_cast<std::int64_t>(ind.values[i]); // -1: no channel
        }
    } else {
        require(n_columns == channel_map.values.size(),
                describe(folder / "templates.npy") + " has " + std::to_string(n_columns) +
                    " channels but channel_map.npy " + std::to_string(channel_map.values.size()) +
                    ": dense templates need one column per channel, sparse ones templates_ind.npy");
        for (std::size_t t = 0; t < n_templates; ++t)
            for (std::size_t j = 0; j < n_columns; ++j)
                column_channel[t * n_columns + j] = static_cast<std::int64_t>(j);
    }
    // Kilosort's templates live in its whitened space: back to the recording's with the inverse whitening matrix.
    std::vector<double> unwhiten;
    if (fs::exists(folder / "whitening_mat_inv.npy")) {
        const Array w = read_array(folder / "whitening_mat_inv.npy");
        const std::size_t n = channel_map.values.size();
        require(w.shape.size() == 2 && w.shape[0] == n && w.shape[1] == n,
                describe(folder / "whitening_mat_inv.npy") + " must be " + std::to_string(n) + " x " +
                    std::to_string(n) + " (one row and column per channel of channel_map.npy)");
        unwhiten = w.values;
    }

    // Spikes: times, templates, clusters (a Phy curation's merges and splits), amplitudes.
    const Array times = read_array(required_file(folder, "spike_times.npy", "the units' spikes"));
    const std::size_t n_spikes = times.values.size();
    const bool have_templates = fs::exists(folder / "spike_templates.npy");
    const bool have_clusters = fs::exists(folder / "spike_clusters.npy");
    require(have_templates || have_clusters, "--units-from " + folder.string() +
                                                 ": spike_templates.npy and spike_clusters.npy are both missing: one "
                                                 "of them is needed to know which unit each spike belongs to");
    const std::vector<std::int64_t> spike_template =
        have_templates ? per_spike_ids(folder / "spike_templates.npy", n_spikes) : std::vector<std::int64_t>{};
    const std::vector<std::int64_t> spike_cluster =
        have_clusters ? per_spike_ids(folder / "spike_clusters.npy", n_spikes) : spike_template;
    for (std::int64_t t : spike_template)
        require(t < static_cast<std::int64_t>(n_templates), describe(folder / "spike_templates.npy") + ": template " +
                                                                std::to_string(t) + " beyond the " +
                                                                std::to_string(n_templates) + " of templates.npy");
    std::vector<double> amplitudes;
    if (fs::exists(folder / "amplitudes.npy") && !spikeline_folder) {
        amplitudes = read_array(folder / "amplitudes.npy").values;
        require(amplitudes.size() == n_spikes, describe(folder / "amplitudes.npy") + " holds " +
                                                   std::to_string(amplitudes.size()) + " values for " +
                                                   std::to_string(n_spikes) + " spikes");
    }

    // Curation labels: Phy's cluster_group.tsv, else Kilosort's own cluster_KSLabel.tsv.
    std::map<std::int64_t, std::string> labels;
    for (const char* name : {"cluster_group.tsv", "cluster_KSLabel.tsv"})
        if (result.labels_file.empty() && fs::exists(folder / name)) {
            result.labels_file = name;
            labels = read_labels(folder / name);
        }

    // Spikes of each cluster, and how many of them each template holds.
    std::map<std::int64_t, std::vector<std::size_t>> spikes_of;
    for (std::size_t i = 0; i < n_spikes; ++i)
        spikes_of[spike_cluster[i]].push_back(i);
    result.n_clusters = spikes_of.size();
    // Kilosort's unwhitened template x amplitude is in the binary's sample units (cortex-lab/spikes and phylib scale
    // it to uV with the gain); spikeline writes its templates in uV (in sample units when the gain is unknown).
    const double to_lsb = (1 << HwConfig::sample_frac_bits) /
                          (spikeline_folder && info.microvolts_per_bit > 0 ? info.microvolts_per_bit : 1.0);
    std::vector<std::string> skipped_outside;
    for (const auto& [cluster, members] : spikes_of) {
        if (spikeline_folder && cluster == 0)
            continue; // spikeline's unsorted spikes
        const auto label = labels.find(cluster);
        const std::string group = label == labels.end() ? "" : label->second;
        const bool selected = options.all_units || labels.empty() ? group != "noise" : group == "good";
        if (!selected)
            continue;
        require(cluster <= 0x7fffffff, "--units-from: cluster id " + std::to_string(cluster) + " is too large");
        OfflineUnit unit;
        unit.cluster_id = static_cast<int>(cluster);
        unit.unit_id = spikeline_folder ? unit.cluster_id - 1 : unit.cluster_id;
        unit.group = group;
        // Its waveform: per channel, the row of the template (of those holding >= 5 % of its spikes, or the cluster id
        // itself without spike_templates) where that channel is largest.
        std::map<std::int64_t, std::size_t> template_count;
        for (std::size_t i : members)
            ++template_count[have_templates ? spike_template[i] : cluster];
        std::vector<std::int64_t> own_templates;
        for (const auto& [t, count] : template_count)
            if (t < static_cast<std::int64_t>(n_templates) && 20 * count >= members.size())
                own_templates.push_back(t);
        if (own_templates.empty()) {
            skipped_outside.push_back(std::to_string(cluster) + " (no template)");
            continue;
        }
        std::vector<double> scales; // template x amplitude is the spike (Phy's convention)
        for (std::size_t i : members)
            if (!amplitudes.empty())
                scales.push_back(amplitudes[i]);
        const double scale = scales.empty() ? 1.0 : quantile(scales, 0.5);
        std::map<int, std::vector<double>> rows;
        std::map<int, double> row_peak;
        for (std::int64_t t : own_templates) {
            const std::vector<double> template_values = numbers_of(
                templates, templates_path, static_cast<std::size_t>(t) * n_samples * n_columns, n_samples * n_columns);
            const double* values = template_values.data();
            const std::int64_t* channels_of_t = &column_channel[static_cast<std::size_t>(t) * n_columns];
            // Rows per template column, in the template's units: (template x W^-1) over its own columns (phylib's
            // unwhitening; W^-1 is local, so only its non-zero entries are visited).
            std::vector<double> unwhitened;
            if (!unwhiten.empty()) {
                const std::size_t n_folder = channel_map.values.size();
                unwhitened.assign(n_samples * n_columns, 0.0);
                for (std::size_t m = 0; m < n_columns; ++m) {
                    bool any = false;
                    for (std::size_t s = 0; s < n_samples && !any; ++s)
                        any = values[s * n_columns + m] != 0;
                    if (channels_of_t[m] < 0 || !any)
                        continue;
                    for (std::size_t j = 0; j < n_columns; ++j) {
                        if (channels_of_t[j] < 0)
                            continue;
                        const double w = unwhiten[static_cast<std::size_t>(channels_of_t[m]) * n_folder +
                                                  static_cast<std::size_t>(channels_of_t[j])];
                        if (w != 0)
                            for (std::size_t s = 0; s < n_samples; ++s)
                                unwhitened[s * n_columns + j] += values[s * n_columns + m] * w;
                    }
                }
                values = unwhitened.data();
            }
            for (std::size_t j = 0; j < n_columns; ++j) {
                const std::int64_t folder_channel = channels_of_t[j];
                if (folder_channel < 0 || run_channel_of[static_cast<std::size_t>(folder_channel)] < 0)
                    continue;
                std::vector<double> row(n_samples);
                double row_max = 0;
                for (std::size_t s = 0; s < n_samples; ++s) {
                    row[s] = values[s * n_columns + j] * scale * to_lsb;
                    row_max = std::max(row_max, std::abs(row[s]));
                }
                const int channel = run_channel_of[static_cast<std::size_t>(folder_channel)];
                if (row_max > row_peak[channel]) {
                    row_peak[channel] = row_max;
                    rows[channel] = std::move(row);
                }
            }
        }
        double peak = 0;
        for (const auto& [channel, value] : row_peak)
            if (value > peak) {
                peak = value;
                unit.peak_channel = channel;
            }
        if (peak <= 0) {
            skipped_outside.push_back(std::to_string(cluster) + " (its template lies on channels this run lacks)");
            continue;
        }
        const std::vector<double>& peak_row = rows[unit.peak_channel];
        unit.trough = static_cast<int>(std::max_element(peak_row.begin(), peak_row.end(),
                                                        [](double a, double b) { return std::abs(a) < std::abs(b); }) -
                                       peak_row.begin());
        for (auto& [channel, row] : rows)
            if (row_peak[channel] >= kKeptRowShare * peak)
                unit.waveform[channel] = std::move(row);
        for (std::size_t i : members) {
            require(times.values[i] >= 0, describe(folder / "spike_times.npy") + ": negative spike time");
            unit.spike_times.push_back(static_cast<std::uint64_t>(times.values[i]));
        }
        std::sort(unit.spike_times.begin(), unit.spike_times.end());
        result.units.push_back(std::move(unit));
    }
    if (result.units.empty()) {
        std::string why = result.labels_file.empty() ? "it holds no cluster with spikes"
                          : options.all_units
                              ? result.labels_file + " labels every cluster noise"
                              : result.labels_file + " labels no cluster 'good': curate in Phy, or pass "
                                                     "--units-from-all to use every cluster not labelled noise";
        if (!skipped_outside.empty())
            why += " (skipped: " + skipped_outside.front() + (skipped_outside.size() > 1 ? ", ..." : "") + ")";
        throw InputError("--units-from " + folder.string() + ": no unit to sort with: " + why);
    }
    return result;
}

Calibration calibrate_from_units(const HwSortParams& base, const SortOutput& window, const OfflineUnits& units,
                                 const SortSettings& settings, const CalibrationMotion* motion,
                                 UnitsFromReport* report) {
    const int width = base.pre + 1 + base.post;
    const std::size_t n = window.spikes.size();
    require(n > 0, "no spikes in the calibration window the offline units are measured on: lengthen it "
                   "(--calibration-s), check that the recording holds neural data, or lower --threshold");
    check_calibration_data(base, window, motion);
    UnitsFromReport local_report;
    UnitsFromReport& rep = report ? *report : local_report;
    rep = {};

    Calibration result;
    result.width = width;
    result.n_spikes = n;
    result.channel_noise = snippet_noise(base, window, width);
    result.params = std::make_shared<HwSortParams>(base);
    HwSortParams& params = *result.params;
    std::fill(std::begin(params.n_entries), std::end(params.n_entries), std::uint8_t{0});
    learn_basis(window, width, params);
    const std::size_t snippet_size = static_cast<std::size_t>(kRows * width);
    std::vector<std::int32_t> features(n * kValues);
    {
        std::int32_t snippet[kRows][HwSortConfig::max_snippet_samples] = {};
        for (std::size_t i = 0; i < n; ++i) {
            for (int k = 0; k < kRows; ++k)
                std::copy_n(&window.snippets[i * snippet_size + static_cast<std::size_t>(k * width)], width,
                            snippet[k]);
            hw::compute_features(params, snippet, &features[i * kValues]);
        }
    }
    const std::size_t n_units = units.units.size();

    // Line the folder's spike times up with the window's detections: for each detection, the offsets to the spikes of
    // the units whose footprint covers its channel. The same recording shows a sharp peak; another session none.
    std::map<int, std::vector<std::size_t>> units_on_channel;
    for (std::size_t u = 0; u < n_units; ++u) {
        const OfflineUnit& unit = units.units[u];
        double peak = 0;
        for (const auto& [channel, row] : unit.waveform)
            for (double v : row)
                peak = std::max(peak, std::abs(v));
        for (const auto& [channel, row] : unit.waveform) {
            double largest = 0;
            for (double v : row)
                largest = std::max(largest, std::abs(v));
            if (largest >= kFootprintShare * peak)
                units_on_channel[channel].push_back(u);
        }
    }
    const std::size_t n_bins = 2 * kMaxOffset + 1;
    std::vector<std::vector<std::size_t>> unit_hist(n_units, std::vector<std::size_t>(n_bins, 0));
    std::vector<std::size_t> all_hist(n_bins, 0);
    auto for_each_pair = [&](std::size_t i, auto&& visit) {
        const hw::SortedSpike& spike = window.spikes[i];
        const auto on = units_on_channel.find(spike.event.channel);
        if (on == units_on_channel.end())
            return;
        const std::uint64_t t = spike.event.sample;
        const std::uint64_t low = t >= kMaxOffset ? t - kMaxOffset : 0;
        for (std::size_t u : on->second) {
            const std::vector<std::uint64_t>& times = units.units[u].spike_times;
            for (auto it = std::lower_bound(times.begin(), times.end(), low);
                 it != times.end() && *it <= t + kMaxOffset; ++it)
                visit(u, static_cast<int>(static_cast<std::int64_t>(t) - static_cast<std::int64_t>(*it)));
        }
    };
    for (std::size_t i = 0; i < n; ++i)
        for_each_pair(i, [&](std::size_t u, int offset) {
            ++unit_hist[u][static_cast<std::size_t>(offset + kMaxOffset)];
            ++all_hist[static_cast<std::size_t>(offset + kMaxOffset)];
        });
    const int mode = densest_window(all_hist);
    const std::size_t total = std::accumulate(all_hist.begin(), all_hist.end(), std::size_t{0});
    const double uniform_window = static_cast<double>(total) * (2 * kMatchTolerance + 1) / static_cast<double>(n_bins);
    rep.spike_times_used = window_count(all_hist, mode) >= static_cast<std::size_t>(settings.min_cluster_spikes) &&
                           static_cast<double>(window_count(all_hist, mode)) > 3 * uniform_window;
    rep.spike_time_offset = mode - kMaxOffset;

    // Labels of the window's spikes through the folder's spike times (-1: none).
    std::vector<int> label(n, -1);
    if (rep.spike_times_used) {
        std::vector<int> unit_mode(n_units, mode);
        for (std::size_t u = 0; u < n_units; ++u)
            if (std::accumulate(unit_hist[u].begin(), unit_hist[u].end(), std::size_t{0}) >= 20)
                unit_mode[u] = densest_window(unit_hist[u]);
        for (std::size_t i = 0; i < n; ++i) {
            int best_error = kMatchTolerance + 1;
            double best_size = 0;
            const int channel = window.spikes[i].event.channel;
            for_each_pair(i, [&](std::size_t u, int offset) {
                const int error = std::abs(offset + kMaxOffset - unit_mode[u]);
                const std::vector<double>& row = units.units[u].waveform.at(channel);
                double size = 0;
                for (double v : row)
                    size = std::max(size, std::abs(v));
                if (error < best_error || (error == best_error && size > best_size)) {
                    best_error = error;
                    best_size = size;
                    label[i] = static_cast<int>(u);
                }
            });
            rep.matched_spikes += label[i] >= 0;
        }
    }

    // Entries learnt from matched spikes: every (unit, peak channel) with enough of them.
    std::map<std::pair<std::size_t, int>, std::vector<int>> groups;
    for (std::size_t i = 0; i < n; ++i)
        if (label[i] >= 0)
            groups[{static_cast<std::size_t>(label[i]), window.spikes[i].event.channel}].push_back(static_cast<int>(i));
    std::vector<Candidate> candidates;
    for (auto& [key, members] : groups)
        if (members.size() >= static_cast<std::size_t>(settings.min_cluster_spikes)) {
            candidates.push_back({key.first, key.second, std::move(members)});
        }
    // Largest first, so that a full channel keeps its best-supported entries.
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Candidate& a, const Candidate& b) { return a.members.size() > b.members.size(); });

    std::vector<Entry> entries;
    std::vector<std::size_t> entry_unit;
    std::vector<bool> entry_refine; // a template-derived entry of a unit without measured entries
    auto add_entry = [&](Entry entry, std::size_t unit, bool refine) {
        if (params.n_entries[entry.channel] == HwSortConfig::max_entries)
            return false;
        ++params.n_entries[entry.channel];
        entry.unit = units.units[unit].unit_id;
        entries.push_back(std::move(entry));
        entry_unit.push_back(unit);
        entry_refine.push_back(refine);
        return true;
    };
    auto mean_of = [&](const std::vector<int>& members, Entry& entry) {
        std::vector<double> centroid(kValues, 0.0);
        entry.mean_snippet.assign(snippet_size, 0.0);
        entry.motion_um = 0;
        for (int i : members) {
            for (int v = 0; v < kValues; ++v)
                centroid[static_cast<std::size_t>(v)] += features[static_cast<std::size_t>(i) * kValues + v];
            for (std::size_t v = 0; v < snippet_size; ++v)
                entry.mean_snippet[v] += window.snippets[static_cast<std::size_t>(i) * snippet_size + v];
            if (motion)
                entry.motion_um += motion->displacement_um[static_cast<std::size_t>(i)];
        }
        const double count = static_cast<double>(members.size());
        for (double& v : centroid)
            v /= count;
        for (double& v : entry.mean_snippet)
            v /= count;
        entry.motion_um /= count;
        entry.centroid = std::move(centroid);
        std::vector<double> distances;
        for (int i : members)
            distances.push_back(squared_distance(&features[static_cast<std::size_t>(i) * kValues], entry.centroid));
        entry.gate = settings.gate_scale * quantile(distances, 0.95);
        entry.n_members = members.size();
    };
    for (const Candidate& c : candidates) {
        Entry entry;
        entry.channel = c.channel;
        mean_of(c.members, entry);
        add_entry(std::move(entry), c.unit, false);
    }

    // Every unit on its peak channel and the nearest contacts: from its measured entries' mean snippets where they
    // cover a channel, else from its template.
    for (std::size_t u = 0; u < n_units; ++u) {
        const OfflineUnit& unit = units.units[u];
        std::vector<std::size_t> own;
        for (std::size_t e = 0; e < entries.size(); ++e)
            if (entry_unit[e] == u)
                own.push_back(e);
        // Rows per channel: the template's, replaced by a measured entry's where that entry sees the channel largest.
        std::map<int, std::vector<double>> rows = unit.waveform;
        int trough = unit.trough;
        int peak_channel = unit.peak_channel;
        double gate = 0, motion_um = 0;
        if (!own.empty()) {
            // Measured rows are aligned at pre; template rows at trough: bring the template rows to pre too.
            for (auto& [channel, row] : rows) {
                std::vector<double> shifted(static_cast<std::size_t>(width), 0.0);
                for (int s = 0; s < width; ++s) {
                    const int t = trough - base.pre + s;
                    if (t >= 0 && t < static_cast<int>(row.size()))
                        shifted[static_cast<std::size_t>(s)] = row[static_cast<std::size_t>(t)];
                }
                row = std::move(shifted);
            }
            trough = base.pre;
            std::map<int, double> best;
            double largest = -1;
            for (std::size_t e : own) {
                const Entry& entry = entries[e];
                for (int k = 0; k < kRows; ++k) {
                    const int ch = params.snippet_channels[entry.channel][k];
                    if (ch < 0)
                        continue;
                    const double* row = &entry.mean_snippet[static_cast<std::size_t>(k * width)];
                    const double size = std::abs(row[base.pre]);
                    if (!best.count(ch) || size > best[ch]) {
                        best[ch] = size;
                        rows[ch].assign(row, row + width);
                    }
                }
                const double size = std::abs(entry.mean_snippet[static_cast<std::size_t>(base.pre)]);
                if (size > largest) {
                    largest = size;
                    peak_channel = entry.channel;
                }
            }
            gate = entries[own.front()].gate; // the best-supported entry's (as calibrate registers nearby contacts)
            for (std::size_t e : own)
                motion_um += entries[e].motion_um / static_cast<double>(own.size());
        }
        for (int k = 0; k < kRows; ++k) {
            const int channel = params.snippet_channels[peak_channel][k];
            if (channel < 0)
                continue;
            bool represented = false;
            for (std::size_t e : own)
                represented |= entries[e].channel == channel;
            if (represented)
                continue;
            Entry entry;
            entry.channel = channel;
            entry.mean_snippet = seen_from(params, rows, trough, channel, width);
            entry.centroid = centroid_of(params, entry.mean_snippet, width);
            entry.gate = own.empty() ? kTemplateAcceptShare * squared_norm(entry.centroid) : gate;
            entry.motion_um = motion_um;
            add_entry(std::move(entry), u, own.empty());
        }
        if (!own.empty())
            ++rep.units_from_spikes;
    }

    // Template-derived entries of units without measured ones are refined on the window: the spikes whose nearest
    // entry (on their channel) is one of them, within kTemplateAcceptShare of its energy, become its members.
    std::map<std::size_t, std::vector<int>> refined_members;
    std::vector<std::vector<std::size_t>> entries_on(static_cast<std::size_t>(params.n_channels));
    for (std::size_t e = 0; e < entries.size(); ++e)
        entries_on[static_cast<std::size_t>(entries[e].channel)].push_back(e);
    for (std::size_t i = 0; i < n; ++i) {
        const auto& on = entries_on[static_cast<std::size_t>(window.spikes[i].event.channel)];
        double best = 0;
        std::size_t nearest = entries.size();
        for (std::size_t e : on) {
            const double d = squared_distance(&features[i * kValues], entries[e].centroid);
            if (nearest == entries.size() || d < best) {
                best = d;
                nearest = e;
            }
        }
        if (nearest < entries.size() && entry_refine[nearest] &&
            best < kTemplateAcceptShare * squared_norm(entries[nearest].centroid))
            refined_members[nearest].push_back(static_cast<int>(i));
    }
    for (const auto& [e, members] : refined_members)
        if (members.size() >= static_cast<std::size_t>(settings.min_cluster_spikes))
            mean_of(members, entries[e]);

    // Units, and the classifier, quantised.
    std::map<std::size_t, std::size_t> unit_index; // offline unit -> result.units
    for (std::size_t e = 0; e < entries.size(); ++e) {
        Entry& entry = entries[e];
        entry.template_id = static_cast<int>(e);
        const auto [it, inserted] = unit_index.try_emplace(entry_unit[e], result.units.size());
        if (inserted) {
            Unit unit;
            unit.id = entry.unit;
            result.units.push_back(unit);
        }
        Unit& unit = result.units[it->second];
        unit.entries.push_back(static_cast<int>(e));
        const double amplitude = std::abs(entry.mean_snippet[static_cast<std::size_t>(base.pre)]);
        if (amplitude > unit.amplitude) {
            unit.amplitude = amplitude;
            unit.peak_channel = entry.channel;
        }
    }
    rep.units_from_templates = static_cast<int>(unit_index.size()) - rep.units_from_spikes;
    rep.units_dropped = static_cast<int>(n_units - unit_index.size());
    require(!entries.empty(), "--units-from: none of the folder's " + std::to_string(n_units) +
                                  " units could be registered on this recording's channels");
    std::vector<int> filled(static_cast<std::size_t>(params.n_channels), 0);
    for (const Entry& entry : entries)
        params.entries[entry.channel][filled[static_cast<std::size_t>(entry.channel)]++] = quantise(entry);
    result.entries = std::move(entries);
    return result;
}

} // namespace spikeline::sort
