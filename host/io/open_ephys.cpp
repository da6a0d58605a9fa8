#include "io/open_ephys.hpp"

#include "io/open_ephys_settings.hpp"
#include "io/raw.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

namespace spikeline::io {
namespace {

std::filesystem::path oebin_path(const std::filesystem::path& path) {
    return std::filesystem::is_directory(path) ? path / "structure.oebin" : path;
}

std::string folder_of(const nlohmann::json& entry) {
    std::string folder = entry.value("folder_name", "");
    while (!folder.empty() && (folder.back() == '/' || folder.back() == '\\'))
        folder.pop_back();
    return folder;
}

std::string upper(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::toupper(c); });
    return text;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::string text_field(const nlohmann::json& object, const char* key) {
    const auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// Why a channel is not an electrode (empty when it is one), from its name, description and units in structure.oebin.
std::string non_neural_reason(const nlohmann::json& channel) {
    const std::string name = upper(text_field(channel, "channel_name"));
    const std::string description = upper(text_field(channel, "description"));
    const std::string units = text_field(channel, "units");
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, "SYNC") == 0)
        return "sync line " + text_field(channel, "channel_name");
    if (contains(description, "SYNC"))
        return "sync line (" + text_field(channel, "description") + ")";
    if (name.rfind("ADC", 0) == 0 || contains(description, "ADC"))
        return "ADC input " + text_field(channel, "channel_name");
    if (name.rfind("AUX", 0) == 0 || contains(description, "AUX"))
        return "auxiliary input " + text_field(channel, "channel_name");
    if (contains(description, "ANALOG INPUT") || contains(description, "NIDAQ") || contains(description, "DIGITAL"))
        return "analog/digital input " + text_field(channel, "channel_name");
    if (!units.empty() && units != "uV" && units != "\xC2\xB5V" && units != "\xCE\xBCV")
        return "units " + units + ", not uV";
    return {};
}

std::optional<double> bit_volts_of(const nlohmann::json& channel) {
    const auto it = channel.find("bit_volts");
    if (it == channel.end() || !it->is_number())
        return std::nullopt;
    return it->get<double>();
}

/// The trailing number of a channel name ("CH12", "AP12" -> 12); -1 without one.
int trailing_number(const std::string& name) {
    std::size_t start = name.size();
    while (start > 0 && std::isdigit(static_cast<unsigned char>(name[start - 1])))
        --start;
    if (start == name.size() || name.size() - start > 6)
        return -1;
    return std::stoi(name.substr(start));
}

/// value when it is an integer in [low, high]: not for a float (4e55 would not convert), a string or one out of range.
std::optional<std::int64_t> integer_within(const nlohmann::json& value, std::int64_t low, std::int64_t high) {
    if (!value.is_number_integer() ||
        (value.is_number_unsigned() && value.get<std::uint64_t>() > static_cast<std::uint64_t>(high)))
        return std::nullopt;
    const auto v = value.get<std::int64_t>();
    if (v < low || v > high)
        return std::nullopt;
    return v;
}

int electrode_index_of(const nlohmann::json& channel) {
    const auto metadata = channel.find("channel_metadata");
    if (metadata == channel.end() || !metadata->is_array())
        return -1;
    for (const nlohmann::json& item : *metadata)
        if (item.is_object() && text_field(item, "name") == "electrode_index" && item.contains("value")) {
            const nlohmann::json& value = item["value"];
            const auto index = integer_within(value.is_array() && !value.empty() ? value[0] : value, 0,
                                              std::numeric_limits<int>::max());
            if (index)
                return static_cast<int>(*index);
        }
    return -1;
}

/// settings.xml of the Record Node folder holding RECORDING = .../experimentN/recordingM (settings_N.xml for N > 1).
std::optional<std::filesystem::path> settings_for(const std::filesystem::path& recording_folder) {
    const std::filesystem::path experiment = recording_folder.parent_path();
    const std::filesystem::path node = experiment.parent_path();
    std::vector<std::filesystem::path> candidates;
    const std::string experiment_name = experiment.filename().string();
    if (experiment_name.rfind("experiment", 0) == 0 && experiment_name.size() > 10 && experiment_name != "experiment1")
        candidates.push_back(node / ("settings_" + experiment_name.substr(10) + ".xml"));
    candidates.push_back(node / "settings.xml");
    std::error_code error;
    for (const auto& candidate : candidates)
        if (std::filesystem::is_regular_file(candidate, error))
            return candidate;
    return std::nullopt;
}

/// Probe channel of each delivered channel: the channel names' numbers, 0- or 1-based (plugin versions differ). The
/// base that finds the most channels in settings.xml wins; on a tie, the one under which depth grows with the
/// electrode index along each shank (true of every Neuropixels layout), else 0-based.
std::vector<int> probe_channels_of(const std::vector<const nlohmann::json*>& channels, const OpenEphysProbe& probe) {
    std::vector<int> numbers;
    for (const nlohmann::json* channel : channels)
        numbers.push_back(trailing_number(text_field(*channel, "channel_name")));
    const auto found = [&](int base) {
        int count = 0;
        for (int number : numbers)
            count += number >= base && probe.sites.count(number - base) ? 1 : 0;
        return count;
    };
    const auto depth_follows_electrodes = [&](int base) {
        std::vector<std::tuple<int, int, double>> by_electrode; // shank, electrode, y
        for (std::size_t i = 0; i < channels.size(); ++i) {
            const int electrode = electrode_index_of(*channels[i]);
            const auto site = probe.sites.find(numbers[i] - base);
            if (electrode < 0 || numbers[i] < base || site == probe.sites.end())
                continue;
            by_electrode.emplace_back(site->second.shank, electrode, site->second.y_um);
        }
        std::sort(by_electrode.begin(), by_electrode.end());
        for (std::size_t i = 1; i < by_electrode.size(); ++i)
            if (std::get<0>(by_electrode[i]) == std::get<0>(by_electrode[i - 1]) &&
                std::get<2>(by_electrode[i]) < std::get<2>(by_electrode[i - 1]))
                return false;
        return true;
    };
    const int found0 = found(0), found1 = found(1);
    int base = found1 > found0 ? 1 : 0;
    if (found0 == found1 && !depth_follows_electrodes(0) && depth_follows_electrodes(1))
        base = 1;
    std::vector<int> result;
    for (int number : numbers)
        result.push_back(number < base ? -1 : number - base);
    return result;
}

/// The geometry settings.xml states for the stream's electrode channels, or a reason it cannot be used.
std::optional<probe::Probe> probe_from_settings(const std::filesystem::path& settings, const nlohmann::json& stream,
                                                const std::vector<const nlohmann::json*>& neural, std::string& source,
                                                std::string& problem) {
    const std::vector<OpenEphysProbe> probes = read_open_ephys_probes(settings);
    if (probes.empty())
        return std::nullopt; // not a Neuropixels recording: nothing to say
    std::string node_id;
    if (const auto it = stream.find("source_processor_id"); it != stream.end())
        if (const auto id = integer_within(*it, 0, std::numeric_limits<std::int64_t>::max()))
            node_id = std::to_string(*id);
    const std::string stream_name = text_field(stream, "stream_name");
    const OpenEphysProbe* match =
        find_open_ephys_probe(probes, stream_name, text_field(stream, "source_processor_name"), node_id);
    if (match == nullptr) {
        bool from_probe_processor = false;
        for (const OpenEphysProbe& probe : probes)
            from_probe_processor |= probe.processor == text_field(stream, "source_processor_name");
        if (from_probe_processor)
            problem = settings.string() + " describes no probe for stream '" + stream_name + "'";
        return std::nullopt;
    }
    const std::vector<int> probe_channels = probe_channels_of(neural, *match);
    probe::Probe probe;
    probe.name = match->part_number + (match->model.empty() ? "" : " (" + match->model + ")");
    int missing = 0;
    for (std::size_t i = 0; i < neural.size(); ++i) {
        const auto site = probe_channels[i] < 0 ? match->sites.end() : match->sites.find(probe_channels[i]);
        probe::Contact contact;
        const int electrode = electrode_index_of(*neural[i]);
        contact.id = electrode >= 0 ? "e" + std::to_string(electrode) : text_field(*neural[i], "channel_name");
        if (site != match->sites.end()) {
            contact.x_um = site->second.x_um;
            contact.y_um = site->second.y_um;
            contact.shank = site->second.shank;
        } else {
            ++missing;
            contact.excluded = true; // e.g. a reference channel settings.xml leaves out; placed below
        }
        probe.contacts.push_back(contact);
    }
    if (missing * 2 > static_cast<int>(neural.size())) {
        problem = settings.string() + " places only " + std::to_string(neural.size() - missing) + " of the " +
                  std::to_string(neural.size()) + " channels of stream '" + stream_name + "'";
        return std::nullopt;
    }
    // A channel without a position is excluded (never detected nor referenced); it is drawn halfway between its
    // neighbours in channel order so that it shares no position.
    for (std::size_t i = 0; i < probe.contacts.size(); ++i) {
        if (!probe.contacts[i].excluded)
            continue;
        const probe::Contact* before = nullptr;
        const probe::Contact* after = nullptr;
        for (std::size_t j = i; j-- > 0;)
            if (!probe.contacts[j].excluded) {
                before = &probe.contacts[j];
                break;
            }
        for (std::size_t j = i + 1; j < probe.contacts.size(); ++j)
            if (!probe.contacts[j].excluded) {
                after = &probe.contacts[j];
                break;
            }
        const probe::Contact& a = before ? *before : *after;
        const probe::Contact& b = after ? *after : *before;
        probe.contacts[i].x_um = (a.x_um + b.x_um) / 2;
        probe.contacts[i].y_um = (a.y_um + b.y_um) / 2;
        probe.contacts[i].shank = a.shank;
        probe.contacts[i].id += " (no position in settings.xml)";
    }
    try {
        probe::check_distinct_positions(probe, settings.string());
    } catch (const InputError& e) {
        problem = e.what();
        return std::nullopt;
    }
    source = settings.string() + " (" + match->processor + " probe " + match->stream_base + ", " + match->part_number +
             " serial " + match->serial_number + ")";
    return probe;
}

} // namespace

bool is_open_ephys(const std::filesystem::path& path) {
    std::error_code error;
    return path.filename() == "structure.oebin" || std::filesystem::exists(path / "structure.oebin", error);
}

namespace {

RecordingInfo read_info(const std::filesystem::path& path, const std::string& stream, bool allow_non_neural) {
    const std::filesystem::path oebin = oebin_path(path);
    const std::string where = "Open Ephys recording " + oebin.string();
    std::ifstream in(oebin);
    require(in.good(), where + ": cannot read the file");
    nlohmann::json root;
    try {
        root = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw InputError(where + ": invalid JSON (" + e.what() + ")");
    }
    require(root.is_object() && root.contains("continuous") && root["continuous"].is_array() &&
                !root["continuous"].empty(),
            where + ": no \"continuous\" streams listed (is it a recording folder of the binary format?)");
    const nlohmann::json& streams = root["continuous"];
    const nlohmann::json* chosen = nullptr;
    std::string names;
    for (const nlohmann::json& entry : streams) {
        require(entry.is_object(), where + ": an entry of \"continuous\" is not an object");
        const std::string folder = folder_of(entry);
        const std::string name = entry.value("stream_name", "");
        names += (names.empty() ? "" : ", ") + folder;
        if (chosen == nullptr && (stream.empty() || stream == folder || stream == name))
            chosen = &entry;
    }
    require(chosen != nullptr, where + ": no stream '" + stream + "' (streams: " + names + ")");
    const nlohmann::json& entry = *chosen;
    const std::string stream_folder = folder_of(entry);
    RecordingInfo info;
    const auto num_channels =
        entry.contains("num_channels") ? integer_within(entry["num_channels"], 1, 65536) : std::nullopt;
    require(num_channels.has_value(),
            where + ": stream '" + stream_folder + "' needs \"num_channels\", an integer from 1 to 65536" +
                (entry.contains("num_channels") ? ", not " + entry["num_channels"].dump() : ""));
    const auto file_channels = static_cast<int>(*num_channels);
    require(entry.contains("sample_rate") && entry["sample_rate"].is_number(),
            where + ": stream '" + stream_folder + "' needs a numeric \"sample_rate\"");
    info.sample_rate = entry["sample_rate"].get<double>();
    require(std::isfinite(info.sample_rate) && info.sample_rate > 0, where + ": sample_rate must be positive");

    // Which channels are electrodes, from each channel's own metadata.
    const nlohmann::json no_channels = nlohmann::json::array();
    const nlohmann::json& channels =
        entry.contains("channels") && entry["channels"].is_array() ? entry["channels"] : no_channels;
    require(channels.empty() || static_cast<int>(channels.size()) == file_channels,
            where + ": stream '" + stream_folder + "' lists " + std::to_string(channels.size()) +
                " channels but num_channels is " + std::to_string(file_channels));
    std::vector<const nlohmann::json*> neural;
    for (int c = 0; c < static_cast<int>(channels.size()); ++c) {
        require(channels[c].is_object(), where + ": channel " + std::to_string(c) + " is not an object");
        const std::string why = non_neural_reason(channels[c]);
        if (why.empty()) {
            if (!info.skipped_channels.empty())
                throw InputError(where + ": electrode channel " + std::to_string(c) + " (" +
                                 text_field(channels[c], "channel_name") + ") comes after non-electrode channel " +
                                 std::to_string(info.skipped_channels.front().first) +
                                 "; spikeline skips only channels after the electrodes: remove the channel map "
                                 "that reorders them, or read the file as raw int16 with --channels and --sample-rate");
            neural.push_back(&channels[c]);
        } else {
            info.skipped_channels.emplace_back(c, why);
        }
    }
    const std::string processor = text_field(entry, "source_processor_name");
    const bool daq_stream = contains(upper(processor), "NI-DAQ");
    if (daq_stream) {
        neural.clear();
        info.skipped_channels.clear();
        for (int c = 0; c < static_cast<int>(channels.size()); ++c)
            info.skipped_channels.emplace_back(c, "NI-DAQ input " + text_field(channels[c], "channel_name"));
    }
    const bool non_neural_stream = !channels.empty() && neural.empty();
    if (non_neural_stream) {
        require(allow_non_neural, where + ": stream '" + stream_folder + "' (" +
                                      (processor.empty() ? "no source processor" : processor) +
                                      ") holds no electrode channels (" + info.skipped_channels.front().second +
                                      ", ...): pick a probe stream with --oe-stream (streams: " + names +
                                      "), or pass --force-non-neural to read these inputs anyway");
        info.skipped_channels.clear();
    }
    info.n_channels = non_neural_stream || channels.empty() ? file_channels : static_cast<int>(neural.size());
    if (info.n_channels != file_channels)
        info.n_file_channels = file_channels;

    // Gain: electrode channels state microvolts per bit; forced non-neural inputs state volts per bit.
    std::vector<double> gains;
    if (non_neural_stream) {
        for (const nlohmann::json& channel : channels)
            if (const auto bit_volts = bit_volts_of(channel))
                gains.push_back(*bit_volts * 1e6);
    } else {
        for (const nlohmann::json* channel : neural)
            if (const auto bit_volts = bit_volts_of(*channel))
                gains.push_back(*bit_volts);
    }
    if (!gains.empty() && gains.size() == static_cast<std::size_t>(info.n_channels)) {
        info.microvolts_per_bit = gains.front();
        require(std::isfinite(info.microvolts_per_bit) && info.microvolts_per_bit > 0,
                where + ": bit_volts must be a positive number");
        info.gain_source = non_neural_stream ? "structure.oebin bit_volts (volts per bit, x 1e6)"
                                             : "structure.oebin bit_volts of the electrode channels";
        const auto [lowest, highest] = std::minmax_element(gains.begin(), gains.end());
        if (*highest > *lowest * 1.001)
            info.warning = where + ": the channels' bit_volts differ (" + std::to_string(*lowest) + " to " +
                           std::to_string(*highest) + "); all are read with the first channel's " +
                           std::to_string(info.microvolts_per_bit) + " uV per bit";
    } else {
        info.gain_fallback = true;
        info.gain_source = "unknown: structure.oebin gives no bit_volts for every channel (amplitudes in bits)";
    }

    info.data_path = oebin.parent_path() / "continuous" / stream_folder / "continuous.dat";
    std::error_code error;
    const auto size = std::filesystem::file_size(info.data_path, error);
    require(!error, where + ": cannot read " + info.data_path.string() + " (" + error.message() + ")");
    const std::uint64_t frame_bytes = 2ull * static_cast<std::uint64_t>(file_channels);
    require(size > 0 && size % frame_bytes == 0, where + ": " + info.data_path.string() + " holds " +
                                                     std::to_string(size) + " bytes, not a whole number of " +
                                                     std::to_string(file_channels) + "-channel int16 frames");
    info.n_frames = size / frame_bytes;
    info.format = "open-ephys";

    if (!non_neural_stream && !neural.empty()) {
        if (const auto settings = settings_for(oebin.parent_path())) {
            std::string problem;
            try {
                info.probe = probe_from_settings(*settings, entry, neural, info.geometry_source, problem);
            } catch (const InputError& e) {
                problem = e.what();
            }
            if (!problem.empty())
                info.warning += (info.warning.empty() ? "" : "; ") + problem + ": the geometry falls back";
        }
    }
    return info;
}

} // namespace

RecordingInfo read_open_ephys_info(const std::filesystem::path& path, const std::string& stream,
                                   bool allow_non_neural) {
    try {
        return read_info(path, stream, allow_non_neural);
    } catch (const nlohmann::json::exception& e) { // a field of another JSON type than the format's
        throw InputError("Open Ephys recording " + oebin_path(path).string() + ": a field has the wrong type (" +
                         e.what() + "); is structure.oebin intact?");
    }
}

std::unique_ptr<RecordingSource> open_open_ephys(const std::filesystem::path& path, const std::string& stream,
                                                 bool allow_non_neural) {
    return open_interleaved_int16(read_open_ephys_info(path, stream, allow_non_neural));
}

} // namespace spikeline::io
