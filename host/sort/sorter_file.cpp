#include "sort/sorter_file.hpp"

#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

namespace spikeline::sort {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

constexpr const char* kFormat = "spikeline sorter";
constexpr int kRows = HwSortConfig::snippet_channels;
constexpr int kValues = HwSortConfig::n_values;
constexpr const char* kRemedy = "re-run `spikeline sort` on this probe and these settings to calibrate a new sorter, "
                                "or pass the probe and settings the sorter was calibrated with";
/// The sorting settings that shape the features; the others only steer how a calibration is learnt.
constexpr const char* kGeometrySettings[] = {"snippet_pre_ms", "snippet_post_ms", "snippet_channels", "n_features"};

/// A double as the shortest JSON text that reads back to the same bits, always with a point or an exponent (so that
/// -0.0 stays negative); what nlohmann's dump writes, faster: a sort's entries hold millions of them.
void append_double(std::string& text, double value) {
    if (!std::isfinite(value)) {
        text += "null"; // (as nlohmann writes it; the reader rejects it)
        return;
    }
    char buffer[32];
    const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
    if (error != std::errc())
        throw std::logic_error("append_double: to_chars failed");
    text.append(buffer, end);
    if (std::find_if(buffer, end, [](char c) { return c == '.' || c == 'e'; }) == end)
        text += ".0";
}

void append_doubles(std::string& text, const std::vector<double>& values) {
    text += '[';
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0)
            text += ',';
        append_double(text, values[i]);
    }
    text += ']';
}

/// One entry as a line of JSON: written by hand, not through nlohmann's values, for the same reason.
std::string entry_line(const Entry& e) {
    std::string text;
    text.reserve(24 * (e.centroid.size() + e.mean_snippet.size()) + 160);
    text += "{\"template_id\":" + std::to_string(e.template_id) + ",\"unit\":" + std::to_string(e.unit) +
            ",\"channel\":" + std::to_string(e.channel) + ",\"n_members\":" + std::to_string(e.n_members) +
            ",\"gate\":";
    append_double(text, e.gate);
    text += ",\"centroid\":";
    append_doubles(text, e.centroid);
    text += ",\"mean_snippet\":";
    append_doubles(text, e.mean_snippet);
    text += ",\"motion_um\":";
    append_double(text, e.motion_um);
    text += '}';
    return text;
}

/// Top-level fields one per line, and lists of lists or objects one element per line: readable and diffable, while
/// every list of numbers stays on one line. "entries" (null in root, to keep its place) comes from entry_lines.
std::string lay_out(const ordered_json& root, const std::vector<std::string>& entry_lines) {
    std::string text = "{\n";
    bool first = true;
    std::size_t entry_bytes = 0;
    for (const std::string& line : entry_lines)
        entry_bytes += line.size() + 6;
    text.reserve(entry_bytes + (1 << 20));
    auto list = [&text](std::size_t n, const auto& line) {
        text += "[\n";
        for (std::size_t i = 0; i < n; ++i) {
            text += "    ";
            text += line(i);
            text += i + 1 < n ? ",\n" : "\n";
        }
        text += "  ]";
    };
    for (const auto& item : root.items()) {
        text += first ? "  " : ",\n  ";
        first = false;
        text += ordered_json(item.key()).dump() + ": ";
        const ordered_json& value = item.value();
        if (item.key() == "entries")
            list(entry_lines.size(), [&](std::size_t i) -> const std::string& { return entry_lines[i]; });
        else if (value.is_array() && !value.empty() && value.front().is_structured())
            list(value.size(), [&](std::size_t i) { return value[i].dump(); });
        else
            text += value.dump();
    }
    return text + "\n}\n";
}

/// Reads one sorter file; every failure names the file and the field.
class SorterReader {
public:
    explicit SorterReader(fs::path path) : path_(std::move(path)) {}

    [[noreturn]] void fail(const std::string& what) const {
        throw InputError("sorter file " + path_.string() + ": " + what +
                         ": this is not a usable spikeline sorter; `spikeline sort` writes one as OUT/sorter.json");
    }

    [[noreturn]] void mismatch(const std::string& what) const {
        throw InputError("sorter file " + path_.string() + " does not fit this run: " + what + ": " + kRemedy);
    }

    const json& field(const json& object, const char* key, const std::string& where) const {
        if (!object.is_object() || !object.contains(key))
            fail("missing '" + where + key + "'");
        return object[key];
    }

    double number(const json& object, const char* key, const std::string& where) const {
        return finite(field(object, key, where), where + key);
    }

    double finite(const json& value, const std::string& name) const {
        if (!value.is_number() || !std::isfinite(value.get<double>()))
            fail("'" + name + "' must be a finite number");
        return value.get<double>();
    }

    std::int64_t integer(const json& object, const char* key, const std::string& where, std::int64_t min,
                         std::int64_t max) const {
        return bounded(field(object, key, where), where + key, min, max);
    }

    std::int64_t bounded(const json& value, const std::string& name, std::int64_t min, std::int64_t max) const {
        if (!value.is_number_integer())
            fail("'" + name + "' must be an integer");
        // Unsigned values beyond int64 would wrap: they are out of every range here.
        if (value.is_number_unsigned() && value.get<std::uint64_t>() > static_cast<std::uint64_t>(max))
            fail("'" + name + "' is " + value.dump() + ", outside " + std::to_string(min) + ".." + std::to_string(max));
        const std::int64_t v = value.get<std::int64_t>();
        if (v < min || v > max)
            fail("'" + name + "' is " + std::to_string(v) + ", outside " + std::to_string(min) + ".." +
                 std::to_string(max));
        return v;
    }

    std::string text(const json& object, const char* key, const std::string& where) const {
        const json& value = field(object, key, where);
        if (!value.is_string())
            fail("'" + where + key + "' must be a string");
        return value.get<std::string>();
    }

    const json& list(const json& object, const char* key, const std::string& where, std::size_t min_size,
                     std::size_t max_size) const {
        const json& value = field(object, key, where);
        if (!value.is_array())
            fail("'" + where + key + "' must be a list");
        if (value.size() < min_size || value.size() > max_size)
            fail("'" + where + key + "' holds " + std::to_string(value.size()) + " elements, " +
                 (min_size == max_size ? std::to_string(min_size)
                                       : std::to_string(min_size) + ".." + std::to_string(max_size)) +
                 " expected");
        return value;
    }

    std::vector<double> numbers(const json& object, const char* key, const std::string& where, std::size_t size) const {
        const json& value = list(object, key, where, size, size);
        std::vector<double> out;
        out.reserve(size);
        for (const json& element : value)
            out.push_back(finite(element, where + key));
        return out;
    }

private:
    fs::path path_;
};

/// Keys whose values differ between two JSON objects (present in one only counts).
std::string differing_keys(const json& mine, const json& theirs) {
    std::set<std::string> keys;
    for (const auto& item : mine.items())
        keys.insert(item.key());
    for (const auto& item : theirs.items())
        keys.insert(item.key());
    std::string out;
    for (const std::string& key : keys) {
        const json a = mine.contains(key) ? mine[key] : json();
        const json b = theirs.contains(key) ? theirs[key] : json();
        if (a != b)
            out += (out.empty() ? "" : ", ") + key + " (sorter " + (a.is_null() ? "unset" : a.dump()) + ", this run " +
                   (b.is_null() ? "unset" : b.dump()) + ")";
    }
    return out;
}

void check_context(const SorterReader& r, const json& valid_for, const SorterFileContext& expected) {
    const std::string where = "valid_for.";
    const auto n_channels = r.integer(valid_for, "n_channels", where, 1, HwSortConfig::max_channels);
    const double sample_rate = r.number(valid_for, "sample_rate", where);
    const std::string probe_name = r.text(valid_for, "probe", where);
    const json& detect = r.field(valid_for, "detect_settings", where);
    const json& sort = r.field(valid_for, "sort_settings", where);
    if (!detect.is_object() || !sort.is_object())
        r.fail("'valid_for.detect_settings' and 'valid_for.sort_settings' must be objects");

    if (n_channels != expected.n_channels)
        r.mismatch("it was calibrated on " + std::to_string(n_channels) + " channels, this recording has " +
                   std::to_string(expected.n_channels));
    if (sample_rate != expected.sample_rate)
        r.mismatch("it was calibrated at " + json(sample_rate).dump() + " Hz, this recording is sampled at " +
                   json(expected.sample_rate).dump() + " Hz");
    if (probe_name != expected.probe_name)
        r.mismatch("it was calibrated on probe '" + probe_name + "', this run uses probe '" + expected.probe_name +
                   "'");
    // Every detection setting moves which spikes are found or where their snippets are aligned, and so the features
    // the classifier was learnt on.
    if (detect != expected.detect_settings)
        r.mismatch("detection settings differ: " + differing_keys(detect, expected.detect_settings));
    json geometry = json::object(), expected_geometry = json::object();
    for (const char* key : kGeometrySettings) {
        if (sort.contains(key))
            geometry[key] = sort[key];
        if (expected.sort_settings.contains(key))
            expected_geometry[key] = expected.sort_settings[key];
    }
    if (geometry != expected_geometry)
        r.mismatch("snippet settings differ: " + differing_keys(geometry, expected_geometry));
}

} // namespace

SorterFileContext make_sorter_file_context(const probe::Probe& probe, double sample_rate, const DetectSettings& detect,
                                           const SortSettings& sort) {
    SorterFileContext context;
    context.n_channels = probe.n_channels();
    context.sample_rate = sample_rate;
    context.probe_name = probe.name;
    context.detect_settings = to_json(detect);
    context.sort_settings = to_json(sort);
    const auto detect_params = make_detect_params(detect, probe, sample_rate);
    context.geometry = make_sort_params(sort, probe, sample_rate, *detect_params);
    return context;
}

void write_sorter_file(const Calibration& calibration, const SorterFileContext& context, const fs::path& path) {
    if (!calibration.params || calibration.params->n_channels != context.n_channels)
        throw std::logic_error("write_sorter_file: the calibration's channel count differs from its context's");
    const HwSortParams& params = *calibration.params;
    const int width = params.pre + 1 + params.post;

    ordered_json snippet_channels = ordered_json::array();
    for (int c = 0; c < params.n_channels; ++c)
        snippet_channels.push_back(std::vector<int>(params.snippet_channels[c], params.snippet_channels[c] + kRows));
    ordered_json basis = ordered_json::array();
    for (int p = 0; p < HwSortConfig::n_features; ++p)
        basis.push_back(std::vector<int>(params.basis[p], params.basis[p] + width));
    // Only channels with entries: a 1024-channel probe has entries on a fraction of them.
    ordered_json classifier = ordered_json::array();
    for (int c = 0; c < params.n_channels; ++c) {
        if (params.n_entries[c] == 0)
            continue;
        ordered_json entries = ordered_json::array();
        for (int i = 0; i < params.n_entries[c]; ++i) {
            const hw::ClassifierEntry& q = params.entries[c][i];
            entries.push_back({{"unit", q.unit},
                               {"template_id", q.template_id},
                               {"centroid", std::vector<std::int32_t>(q.centroid, q.centroid + kValues)},
                               {"gate", q.gate}});
        }
        classifier.push_back({{"channel", c}, {"entries", std::move(entries)}});
    }
    std::vector<std::string> entry_lines;
    entry_lines.reserve(calibration.entries.size());
    for (const Entry& e : calibration.entries)
        entry_lines.push_back(entry_line(e));
    ordered_json units = ordered_json::array();
    for (const Unit& u : calibration.units)
        units.push_back(
            {{"id", u.id}, {"peak_channel", u.peak_channel}, {"amplitude", u.amplitude}, {"entries", u.entries}});

    ordered_json root;
    root["format"] = kFormat;
    root["version"] = kSorterFileVersion;
    root["valid_for"] = {{"n_channels", context.n_channels},
                         {"sample_rate", context.sample_rate},
                         {"probe", context.probe_name},
                         {"detect_settings", ordered_json::parse(context.detect_settings.dump())},
                         {"sort_settings", ordered_json::parse(context.sort_settings.dump())}};
    root["pre"] = params.pre;
    root["post"] = params.post;
    root["snippet_channels"] = std::move(snippet_channels);
    root["basis"] = std::move(basis);
    root["classifier"] = std::move(classifier);
    root["width"] = calibration.width;
    root["n_spikes"] = calibration.n_spikes;
    root["channel_noise"] = calibration.channel_noise;
    root["entries"] = nullptr; // entry_lines
    root["units"] = std::move(units);
    write_text_file(path, lay_out(root, entry_lines));
}

Calibration read_sorter_file(const fs::path& path, const SorterFileContext& expected, std::string* text) {
    std::ifstream in(path, std::ios::binary);
    require(static_cast<bool>(in), "cannot open sorter file " + path.string() +
                                       ": check the path (`spikeline sort` writes one as OUT/sorter.json)");
    // Read whole, then parsed: parsing from the stream goes character by character (a 500-unit sorter is ~23 MB).
    std::ostringstream bytes;
    bytes << in.rdbuf();
    require(!in.bad(), "cannot read sorter file " + path.string());
    std::string own;
    std::string& content = text ? *text : own;
    content = std::move(bytes).str();
    json root;
    try {
        root = json::parse(content);
    } catch (const json::exception& e) {
        throw InputError("sorter file " + path.string() + " is not valid JSON (" + e.what() +
                         "): it is damaged or not a sorter; pass the sorter.json that `spikeline sort` wrote");
    }
    const SorterReader r(path);
    if (!root.is_object() || !root.contains("format") || root["format"] != kFormat)
        r.fail(std::string("'format' is not \"") + kFormat + "\"");
    const std::int64_t version = r.integer(root, "version", "", 0, std::numeric_limits<std::int64_t>::max());
    if (version != kSorterFileVersion)
        r.fail("version " + std::to_string(version) + " is not supported (this spikeline reads version " +
               std::to_string(kSorterFileVersion) + ")");
    check_context(r, r.field(root, "valid_for", ""), expected);

    Calibration calibration;
    auto params = std::make_shared<HwSortParams>();
    const int n_channels = expected.n_channels;
    params->n_channels = n_channels;
    params->pre = static_cast<int>(r.integer(root, "pre", "", 0, HwSortConfig::max_snippet_samples - 2));
    params->post = static_cast<int>(r.integer(root, "post", "", 1, HwSortConfig::max_snippet_samples - 1));
    const int width = params->pre + 1 + params->post;
    if (width > HwSortConfig::max_snippet_samples)
        r.fail("the snippet (pre + 1 + post = " + std::to_string(width) + " samples) exceeds the " +
               std::to_string(HwSortConfig::max_snippet_samples) + " samples the sorter holds");
    if (params->pre + 2 * params->post >= HwSortConfig::ring_frames)
        r.fail("pre + 2 post must stay below the sorter's ring of " + std::to_string(HwSortConfig::ring_frames) +
               " frames");

    const json& snippet_channels = r.list(root, "snippet_channels", "", static_cast<std::size_t>(n_channels),
                                          static_cast<std::size_t>(n_channels));
    for (int c = 0; c < n_channels; ++c) {
        const std::string name = "snippet_channels[" + std::to_string(c) + "]";
        const json& row = snippet_channels[static_cast<std::size_t>(c)];
        if (!row.is_array() || row.size() != static_cast<std::size_t>(kRows))
            r.fail("'" + name + "' must be a list of " + std::to_string(kRows) + " channels");
        for (int k = 0; k < kRows; ++k)
            params->snippet_channels[c][k] =
                static_cast<std::int16_t>(r.bounded(row[static_cast<std::size_t>(k)], name, -1, n_channels - 1));
        if (params->snippet_channels[c][0] != c)
            r.fail("'" + name + "' must start with channel " + std::to_string(c) + " itself");
    }
    if (expected.geometry) {
        const HwSortParams& geometry = *expected.geometry;
        if (geometry.pre != params->pre || geometry.post != params->post)
            r.mismatch("its snippet is " + std::to_string(params->pre) + " + 1 + " + std::to_string(params->post) +
                       " samples, this run's " + std::to_string(geometry.pre) + " + 1 + " +
                       std::to_string(geometry.post));
        for (int c = 0; c < n_channels; ++c)
            if (!std::equal(params->snippet_channels[c], params->snippet_channels[c] + kRows,
                            geometry.snippet_channels[c]))
                r.mismatch("the snippet channels of channel " + std::to_string(c) +
                           " (its nearest contacts) differ from this probe's: the contact positions changed");
    }

    const json& basis = r.list(root, "basis", "", HwSortConfig::n_features, HwSortConfig::n_features);
    for (int p = 0; p < HwSortConfig::n_features; ++p) {
        const std::string name = "basis[" + std::to_string(p) + "]";
        const json& row = basis[static_cast<std::size_t>(p)];
        if (!row.is_array() || row.size() != static_cast<std::size_t>(width))
            r.fail("'" + name + "' must be a list of " + std::to_string(width) + " (pre + 1 + post) numbers");
        for (int s = 0; s < width; ++s)
            params->basis[p][s] = static_cast<std::int16_t>(r.bounded(row[static_cast<std::size_t>(s)], name,
                                                                      std::numeric_limits<std::int16_t>::min(),
                                                                      std::numeric_limits<std::int16_t>::max()));
    }

    constexpr auto int32_max = std::numeric_limits<std::int32_t>::max();
    constexpr auto int32_min = std::numeric_limits<std::int32_t>::min();
    const json& classifier = r.list(root, "classifier", "", 0, static_cast<std::size_t>(n_channels));
    std::size_t n_classifier_entries = 0;
    for (std::size_t i = 0; i < classifier.size(); ++i) {
        const std::string where = "classifier[" + std::to_string(i) + "].";
        const json& channel_entries = classifier[i];
        const int c = static_cast<int>(r.integer(channel_entries, "channel", where, 0, n_channels - 1));
        if (params->n_entries[c] != 0)
            r.fail("channel " + std::to_string(c) + " appears twice in 'classifier'");
        const json& list = r.list(channel_entries, "entries", where, 1, HwSortConfig::max_entries);
        for (std::size_t e = 0; e < list.size(); ++e) {
            const std::string at = where + "entries[" + std::to_string(e) + "].";
            hw::ClassifierEntry& q = params->entries[c][e];
            q.unit = static_cast<std::int32_t>(r.integer(list[e], "unit", at, 0, int32_max));
            q.template_id = static_cast<std::int32_t>(r.integer(list[e], "template_id", at, 0, int32_max));
            const json& centroid = r.list(list[e], "centroid", at, kValues, kValues);
            for (int v = 0; v < kValues; ++v)
                q.centroid[v] = static_cast<std::int32_t>(
                    r.bounded(centroid[static_cast<std::size_t>(v)], at + "centroid", int32_min, int32_max));
            q.gate = r.integer(list[e], "gate", at, 0, std::numeric_limits<std::int64_t>::max());
        }
        params->n_entries[c] = static_cast<std::uint8_t>(list.size());
        n_classifier_entries += list.size();
    }

    calibration.width = static_cast<int>(r.integer(root, "width", "", width, width));
    calibration.n_spikes =
        static_cast<std::size_t>(r.integer(root, "n_spikes", "", 0, std::numeric_limits<std::int64_t>::max()));
    calibration.channel_noise = r.numbers(root, "channel_noise", "", static_cast<std::size_t>(n_channels));
    for (double noise : calibration.channel_noise)
        if (noise < 0)
            r.fail("'channel_noise' holds a negative noise level");

    const json& entries = r.list(root, "entries", "", n_classifier_entries, n_classifier_entries);
    std::map<int, std::size_t> entry_of_template;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const std::string at = "entries[" + std::to_string(i) + "].";
        Entry e;
        e.template_id = static_cast<int>(r.integer(entries[i], "template_id", at, 0, int32_max));
        e.unit = static_cast<int>(r.integer(entries[i], "unit", at, 0, int32_max));
        e.channel = static_cast<int>(r.integer(entries[i], "channel", at, 0, n_channels - 1));
        e.n_members = static_cast<std::size_t>(
            r.integer(entries[i], "n_members", at, 0, std::numeric_limits<std::int64_t>::max()));
        e.gate = r.number(entries[i], "gate", at);
        e.centroid = r.numbers(entries[i], "centroid", at, kValues);
        e.mean_snippet = r.numbers(entries[i], "mean_snippet", at, static_cast<std::size_t>(kRows * width));
        if (entries[i].contains("motion_um")) // sorters written before motion tracking have none: 0
            e.motion_um = r.number(entries[i], "motion_um", at);
        if (!entry_of_template.emplace(e.template_id, i).second)
            r.fail("template id " + std::to_string(e.template_id) + " appears twice in 'entries'");
        calibration.entries.push_back(std::move(e));
    }
    // The backend reports the classifier's ids; the Phy templates and units come from the host entries: they must
    // describe the same entries.
    for (int c = 0; c < n_channels; ++c)
        for (int i = 0; i < params->n_entries[c]; ++i) {
            const hw::ClassifierEntry& q = params->entries[c][i];
            const auto found = entry_of_template.find(q.template_id);
            if (found == entry_of_template.end() || calibration.entries[found->second].channel != c ||
                calibration.entries[found->second].unit != q.unit)
                r.fail("the classifier entry with template id " + std::to_string(q.template_id) + " on channel " +
                       std::to_string(c) + " has no matching element in 'entries' (same channel and unit)");
        }

    const json& units = r.list(root, "units", "", 0, calibration.entries.size());
    std::set<int> unit_ids;
    for (std::size_t i = 0; i < units.size(); ++i) {
        const std::string at = "units[" + std::to_string(i) + "].";
        Unit u;
        u.id = static_cast<int>(r.integer(units[i], "id", at, 0, int32_max));
        u.peak_channel = static_cast<int>(r.integer(units[i], "peak_channel", at, 0, n_channels - 1));
        u.amplitude = r.number(units[i], "amplitude", at);
        const json& members = r.list(units[i], "entries", at, 1, calibration.entries.size());
        for (const json& member : members) {
            const auto e = static_cast<int>(
                r.bounded(member, at + "entries", 0, static_cast<std::int64_t>(calibration.entries.size()) - 1));
            if (calibration.entries[static_cast<std::size_t>(e)].unit != u.id)
                r.fail("'" + at + "entries' lists entry " + std::to_string(e) + ", which belongs to unit " +
                       std::to_string(calibration.entries[static_cast<std::size_t>(e)].unit));
            u.entries.push_back(e);
        }
        if (!unit_ids.insert(u.id).second)
            r.fail("unit id " + std::to_string(u.id) + " appears twice in 'units'");
        calibration.units.push_back(std::move(u));
    }
    for (const Entry& e : calibration.entries)
        if (!unit_ids.count(e.unit))
            r.fail("entry of template " + std::to_string(e.template_id) + " belongs to unit " + std::to_string(e.unit) +
                   ", which is not in 'units'");
    calibration.params = std::move(params);
    return calibration;
}

} // namespace spikeline::sort
