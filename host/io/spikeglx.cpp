#include "io/spikeglx.hpp"

#include "io/raw.hpp"
#include "probe/neuropixels.hpp"
#include "util/atomic_file.hpp"
#include "util/channel_list.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <vector>

namespace spikeline::io {

namespace {

std::string trim(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos)
        return {};
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

template <class Number> std::optional<Number> parse_number(const std::string& text) {
    Number value{};
    const char* begin = text.data();
    const char* end = text.data() + text.size();
    if (begin != end && *begin == '+')
        ++begin;
    const auto [stop, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc() || stop != end)
        return std::nullopt;
    return value;
}

/// The shortest text that reads back as exactly value.
std::string format_double(double value) {
    std::array<char, 32> buffer{};
    const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    return std::string(buffer.data(), result.ptr);
}

std::optional<std::string> find_key(const MetaMap& meta, const std::string& key) {
    const auto it = meta.find(key);
    if (it == meta.end())
        return std::nullopt;
    return it->second;
}

/// A required numeric key, with an error naming the .meta file, the key and what it should hold.
template <class Number>
Number required_number(const MetaMap& meta, const std::filesystem::path& meta_path, const std::string& key,
                       const std::string& meaning) {
    const auto text = find_key(meta, key);
    require(text.has_value(), meta_path.string() + ": missing key " + key + " (" + meaning +
                                  "): the .meta file is incomplete or not a SpikeGLX .meta");
    const auto value = parse_number<Number>(*text);
    require(value.has_value(), meta_path.string() + ": " + key + "=" + *text + " is not a number (" + meaning + ")");
    return *value;
}

std::optional<double> optional_number(const MetaMap& meta, const std::string& key) {
    const auto text = find_key(meta, key);
    return text ? parse_number<double>(*text) : std::nullopt;
}

/// The comma-separated non-negative integers of a value such as snsApLfSy=384,0,1; empty when malformed.
std::vector<int> comma_separated_counts(const std::string& text) {
    std::vector<int> counts;
    std::istringstream in(text);
    for (std::string token; std::getline(in, token, ',');) {
        const auto value = parse_number<int>(trim(token));
        if (!value || *value < 0)
            return {};
        counts.push_back(*value);
    }
    return counts;
}

/// An input of the gain: nothing when absent, else a finite positive number (an inf, nan or zero range would give
/// infinite or meaningless microvolts).
std::optional<double> gain_input(const MetaMap& meta, const std::filesystem::path& meta_path, const std::string& key) {
    const auto text = find_key(meta, key);
    if (!text)
        return std::nullopt;
    const auto value = parse_number<double>(*text);
    require(value && std::isfinite(*value) && *value > 0,
            meta_path.string() + ": " + key + "=" + *text +
                " is not a finite positive number, so the microvolts per bit cannot be computed: correct the .meta, "
                "or give the gain with --uv-per-bit");
    return value;
}

/// The parenthesised groups of a map value ("(a,b)(c d)" gives "a,b" and "c d"); nothing when a '(' is unclosed.
std::optional<std::vector<std::string>> paren_groups(const std::string& value) {
    std::vector<std::string> groups;
    for (std::size_t open = value.find('('); open != std::string::npos; open = value.find('(', open + 1)) {
        const std::size_t close = value.find(')', open);
        if (close == std::string::npos)
            return std::nullopt;
        groups.push_back(value.substr(open + 1, close - open - 1));
    }
    return groups;
}

/// The numbers of text split at any of separators; nothing when one is not a number (or, unless allowed, not finite).
std::optional<std::vector<double>> numbers_in(const std::string& text, const std::string& separators,
                                              bool allow_non_finite = false) {
    std::vector<double> numbers;
    std::size_t begin = 0;
    while (begin <= text.size()) {
        std::size_t end = text.find_first_of(separators, begin);
        if (end == std::string::npos)
            end = text.size();
        const std::string token = trim(text.substr(begin, end - begin));
        if (!token.empty()) {
            const auto value = parse_number<double>(token);
            if (!value || (!allow_non_finite && !std::isfinite(*value)))
                return std::nullopt;
            numbers.push_back(*value);
        }
        begin = end + 1;
    }
    return numbers;
}

/// What an imec stream's metadata says about its probe and about each delivered (saved neural) channel.
struct ImecProbe {
    std::optional<probe::NeuropixelsModel> model;
    std::string part; ///< imDatPrb_pn, else "type N", else "phase 3A/3B"
    /// ~imroTbl: header fields and channel entries (all acquired channels); empty when absent or malformed.
    std::vector<std::string> imro_header;
    std::vector<std::vector<double>> imro_entries;
    std::vector<int> imro_index; ///< the ~imroTbl entry of each delivered channel (AP or LF channel number)
    std::vector<int> saved;      ///< snsSaveChanSubset (acquired channel numbers, ascending); empty: all
};

ImecProbe describe_imec_probe(const MetaMap& meta, const std::filesystem::path& meta_path, int n_neural) {
    ImecProbe result;
    const std::string part = find_key(meta, "imDatPrb_pn").value_or("");
    const auto type_number = optional_number(meta, "imDatPrb_type");
    const std::optional<int> type =
        type_number ? std::optional<int>(static_cast<int>(*type_number)) : std::optional<int>();
    // Without part number and type only an ~imroTbl marks a phase 3A/3B probe (SpikeGlxWriter's files have none).
    if (!part.empty() || type || meta.contains("~imroTbl"))
        result.model = probe::neuropixels_model(part, type);
    result.part = !part.empty() ? part : type ? "type " + std::to_string(*type) : "phase 3A/3B";

    if (const auto table = find_key(meta, "~imroTbl"))
        if (const auto groups = paren_groups(*table); groups && groups->size() > 1) {
            std::istringstream header(groups->front());
            for (std::string field; std::getline(header, field, ',');)
                result.imro_header.push_back(trim(field));
            for (std::size_t g = 1; g < groups->size(); ++g) {
                // Non-finite values are kept for the gain check to name them.
                const auto numbers = numbers_in((*groups)[g], " \t", true);
                if (!numbers) {
                    result.imro_entries.clear();
                    break;
                }
                result.imro_entries.push_back(*numbers);
            }
        }

    result.saved = spikeglx_saved_channels(meta, meta_path);
    require(result.saved.empty() || static_cast<int>(result.saved.size()) >= n_neural,
            meta_path.string() + ": snsSaveChanSubset lists " + std::to_string(result.saved.size()) +
                " channels but the file holds " + std::to_string(n_neural) + " neural channels: is the .meta damaged?");
    // Acquired channels are numbered AP first, then LF, then sync: an LF file's channel k is ~imroTbl entry k - nAP.
    int acquired_ap = result.imro_entries.empty() ? n_neural : static_cast<int>(result.imro_entries.size());
    if (const auto counts = find_key(meta, "acqApLfSy")) {
        const std::vector<int> acquired = comma_separated_counts(*counts);
        if (acquired.size() == 3 && acquired[0] > 0)
            acquired_ap = acquired[0];
    }
    for (int k = 0; k < n_neural; ++k) {
        const int channel = result.saved.empty() ? k : result.saved[static_cast<std::size_t>(k)];
        result.imro_index.push_back(channel >= acquired_ap ? channel - acquired_ap : channel);
    }
    return result;
}

/// Larger than any probe's rows or electrodes; bounds map values before they become ints.
constexpr double kMaxRows = 1e6;

/// A probe from ~snsShankMap "(shanks,columns,rows)(shank:column:row:used)..." (SpikeGLX before 2023: one entry per
/// saved neural channel) placed by the model's documented layout.
probe::Probe probe_from_shank_map(const std::string& value, const probe::NeuropixelsModel& model, const ImecProbe& imec,
                                  int n_neural, const std::string& where) {
    const auto groups = paren_groups(value);
    require(groups && groups->size() > 1, where + ": ~snsShankMap is malformed (expected (shanks,columns,rows) and "
                                                  "(shank:column:row:used) entries)");
    std::vector<std::size_t> entries;
    const int n_entries = static_cast<int>(groups->size()) - 1;
    for (int e = 0; e < n_entries; ++e)
        if (n_entries == n_neural || imec.saved.empty() || std::binary_search(imec.saved.begin(), imec.saved.end(), e))
            entries.push_back(static_cast<std::size_t>(e) + 1);
    require(static_cast<int>(entries.size()) == n_neural,
            where + ": ~snsShankMap describes " + std::to_string(entries.size()) +
                " saved channels but the recording has " + std::to_string(n_neural) + " neural channels");
    probe::Probe probe;
    for (const std::size_t g : entries) {
        const auto fields = numbers_in((*groups)[g], ":");
        require(fields && fields->size() == 4 && (*fields)[0] >= 0 && (*fields)[1] >= 0 && (*fields)[2] >= 0,
                where + ": ~snsShankMap entry (" + (*groups)[g] + ") should be (shank:column:row:used)");
        require((*fields)[0] < model.shanks && (*fields)[1] < model.columns && (*fields)[2] < kMaxRows,
                where + ": ~snsShankMap entry (" + (*groups)[g] + ") names a site " + model.family +
                    " does not have (" + std::to_string(model.shanks) + " shank(s) of " +
                    std::to_string(model.columns) + " columns)");
        const int shank = static_cast<int>((*fields)[0]);
        const int column = static_cast<int>((*fields)[1]);
        const int row = static_cast<int>((*fields)[2]);
        probe::Contact contact;
        contact.shank = shank;
        contact.x_um = model.x_um(shank, column, row);
        contact.y_um = model.y_um(row);
        contact.excluded = (*fields)[3] == 0;
        contact.id = std::string("s")
                         .append(std::to_string(shank))
                         .append("e")
                         .append(std::to_string(row * model.columns + column));
        probe.contacts.push_back(std::move(contact));
    }
    return probe;
}

/// A probe from the electrode each ~imroTbl entry selects (metadata without ~snsGeomMap or ~snsShankMap).
probe::Probe probe_from_imro(const probe::NeuropixelsModel& model, const ImecProbe& imec, const std::string& where) {
    constexpr int kChannelsPerBank = 384;
    probe::Probe probe;
    for (const int index : imec.imro_index) {
        require(index >= 0 && index < static_cast<int>(imec.imro_entries.size()),
                where + ": ~imroTbl has no entry for channel " + std::to_string(index));
        const std::vector<double>& entry = imec.imro_entries[static_cast<std::size_t>(index)];
        require(std::all_of(entry.begin(), entry.end(),
                            [](double v) { return std::isfinite(v) && v >= 0 && v < kMaxRows; }),
                where + ": ~imroTbl entry " + std::to_string(index) + " holds a value that is not a channel number");
        int shank = 0;
        int electrode = 0;
        switch (model.imro) {
        case probe::ImroFormat::np1:
            require(entry.size() == 5 || entry.size() == 6,
                    where + ": ~imroTbl entries of " + model.family + " should be (chan bank refid apgain lfgain ...)");
            electrode = static_cast<int>(entry[1]) * kChannelsPerBank + static_cast<int>(entry[0]);
            break;
        case probe::ImroFormat::np2_single:
            require(entry.size() == 4,
                    where + ": ~imroTbl entries of " + model.family + " should be (chan bank refid electrode)");
            electrode = static_cast<int>(entry[3]);
            break;
        case probe::ImroFormat::np2_multi:
            require(entry.size() == 5,
                    where + ": ~imroTbl entries of " + model.family + " should be (chan shank bank refid electrode)");
            shank = static_cast<int>(entry[1]);
            electrode = static_cast<int>(entry[4]);
            break;
        case probe::ImroFormat::not_readable:
            throw InputError(where + ": the electrodes of " + model.family + " cannot be read from ~imroTbl alone");
        }
        require(shank >= 0 && shank < model.shanks && electrode >= 0,
                where + ": ~imroTbl selects shank " + std::to_string(shank) + " electrode " +
                    std::to_string(electrode) + ", which " + model.family + " does not have");
        const int row = electrode / model.columns;
        const int column = electrode % model.columns;
        probe::Contact contact;
        contact.shank = shank;
        contact.x_um = model.x_um(shank, column, row);
        contact.y_um = model.y_um(row);
        contact.id = std::string("s").append(std::to_string(shank)).append("e").append(std::to_string(electrode));
        probe.contacts.push_back(std::move(contact));
    }
    return probe;
}

/// Fills info.probe and info.geometry_source from ~snsGeomMap (SpikeGLX 2023 and later), else ~snsShankMap, else
/// ~imroTbl with the documented layout of the probe; a malformed map leaves info.geometry_error instead.
void read_imec_geometry(const MetaMap& meta, const std::filesystem::path& meta_path, const ImecProbe& imec,
                        RecordingInfo& info) {
    const std::string where = meta_path.string();
    try {
        if (const auto geom_map = find_key(meta, "~snsGeomMap")) {
            info.probe = probe::probe_from_spikeglx_geom_map(*geom_map, info.n_channels, where, imec.saved);
            info.geometry_source = where + " (~snsGeomMap)";
            return;
        }
        if (!imec.model)
            return;
        if (const auto shank_map = find_key(meta, "~snsShankMap")) {
            info.probe = probe_from_shank_map(*shank_map, *imec.model, imec, info.n_channels, where);
            info.geometry_source = where + " (~snsShankMap, " + imec.model->family + " layout)";
        } else if (!imec.imro_entries.empty() && imec.model->imro != probe::ImroFormat::not_readable) {
            info.probe = probe_from_imro(*imec.model, imec, where);
            info.geometry_source = where + " (~imroTbl, " + imec.model->family + " layout)";
        } else {
            return;
        }
        info.probe->name = imec.part + " (" + imec.model->family + ")";
        probe::check_distinct_positions(*info.probe, where);
    } catch (const InputError& error) {
        info.probe.reset();
        info.geometry_source.clear();
        info.geometry_error = error.what();
    }
}

/// The amplifier gain of each delivered channel: ~imroTbl entries of NP1.0-based probes (per channel), the ~imroTbl
/// header of UHD 1110, imChan0apGain / imChan0lfGain, else the fixed gain of the probe type. Empty when unknown.
std::vector<double> imec_channel_gains(const MetaMap& meta, const std::filesystem::path& meta_path,
                                       const ImecProbe& imec, bool lfp_stream, std::string& source) {
    const char* band = lfp_stream ? "LF" : "AP";
    const bool np1_entries = imec.model ? imec.model->imro == probe::ImroFormat::np1
                                        : !imec.imro_entries.empty() && imec.imro_entries.front().size() == 6;
    if (np1_entries && !imec.imro_entries.empty()) {
        std::vector<double> gains;
        for (const int index : imec.imro_index) {
            if (index < 0 || index >= static_cast<int>(imec.imro_entries.size()))
                break;
            const std::vector<double>& entry = imec.imro_entries[static_cast<std::size_t>(index)];
            if (entry.size() < 5)
                break;
            require(std::isfinite(entry[lfp_stream ? 4 : 3]),
                    meta_path.string() + ": the " + band +
                        " gain in ~imroTbl is not a finite number: correct the .meta, or give the gain with "
                        "--uv-per-bit");
            if (entry[lfp_stream ? 4 : 3] <= 0)
                break;
            gains.push_back(entry[lfp_stream ? 4 : 3]);
        }
        if (gains.size() == imec.imro_index.size() && !gains.empty()) {
            source = std::string("~imroTbl ") + band + " gain per channel";
            return gains;
        }
    }
    // UHD 1110: "(type,colmode,refid,apgain,lfgain,hpfilt)" sets one gain for all channels.
    if (imec.model && imec.model->imro == probe::ImroFormat::not_readable && imec.imro_header.size() >= 5)
        if (const auto gain = parse_number<double>(imec.imro_header[lfp_stream ? 4 : 3]); gain && *gain > 0) {
            source = std::string("~imroTbl header ") + band + " gain";
            return std::vector<double>(imec.imro_index.size(), *gain);
        }
    const char* key = lfp_stream ? "imChan0lfGain" : "imChan0apGain";
    if (const auto gain = gain_input(meta, meta_path, key)) {
        source = key;
        return std::vector<double>(imec.imro_index.size(), *gain);
    }
    if (imec.model && imec.model->fixed_gain > 0) {
        source = "fixed gain " + format_double(imec.model->fixed_gain) + " of " + imec.model->family;
        return std::vector<double>(imec.imro_index.size(), imec.model->fixed_gain);
    }
    return {};
}

/// Sets info.microvolts_per_bit (of the first delivered channel), info.gain_source and info.gain_fallback:
/// range / maxInt / gain * 1e6, with imAiRangeMax and imMaxInt defaulting to the probe type's documented values.
void read_imec_gain(const MetaMap& meta, const std::filesystem::path& meta_path, const ImecProbe& imec, bool lfp_stream,
                    RecordingInfo& info) {
    // SpikeGlxWriter states an unknown gain as imAiRangeMax=0 (e.g. a stream from a link that carries none).
    if (const auto stated = find_key(meta, "imAiRangeMax"); stated && parse_number<double>(*stated) == 0.0) {
        info.gain_source = "unknown (imAiRangeMax=0): amplitudes in LSB";
        info.gain_fallback = true;
        return;
    }
    std::vector<std::string> parts;
    double range = 0;
    if (const auto range_max = gain_input(meta, meta_path, "imAiRangeMax")) {
        range = *range_max;
        // The documented conversion uses imAiRangeMax; a stated asymmetric range is used by its half-span.
        if (const auto range_min = optional_number(meta, "imAiRangeMin"); range_min && *range_min < 0)
            range = (*range_max - *range_min) / 2;
        parts.push_back("imAiRangeMax=" + format_double(range));
    } else if (imec.model) {
        range = imec.model->range_volts;
        parts.push_back("range " + format_double(range) + " V of " + imec.model->family + " (imAiRangeMax absent)");
    }
    double max_int = 0;
    if (const auto stated = gain_input(meta, meta_path, "imMaxInt")) {
        max_int = *stated;
        parts.push_back("imMaxInt=" + format_double(max_int));
    } else if (imec.model) {
        max_int = imec.model->max_int;
        parts.push_back("maxInt " + format_double(max_int) + " of " + imec.model->family + " (imMaxInt absent)");
    }
    std::string gain_source;
    const std::vector<double> gains = imec_channel_gains(meta, meta_path, imec, lfp_stream, gain_source);
    if (range <= 0 || max_int <= 0 || gains.empty()) {
        info.gain_source = "unknown (" + imec.part + ": no documented range, maxInt or gain): amplitudes in LSB";
        info.gain_fallback = true;
        return;
    }
    parts.push_back(gain_source);
    info.microvolts_per_bit = range / max_int / gains.front() * 1e6;
    info.gain_source.clear();
    for (const std::string& part : parts)
        info.gain_source.append(info.gain_source.empty() ? "" : ", ").append(part);
    const auto differing = std::find_if(gains.begin(), gains.end(), [&](double g) { return g != gains.front(); });
    if (differing != gains.end()) {
        const std::string note = "channels differ in gain (channel 0: " + format_double(gains.front()) + ", channel " +
                                 std::to_string(differing - gains.begin()) + ": " + format_double(*differing) +
                                 "): amplitudes use channel 0's " + format_double(info.microvolts_per_bit) +
                                 " uV/bit for every channel";
        info.warning.append(info.warning.empty() ? "" : "; ").append(note);
        info.gain_source += " (differs between channels: channel 0's)";
    }
}

/// NI-DAQ streams: niAiRangeMax / niMaxInt / niMNGain.
void read_nidq_gain(const MetaMap& meta, const std::filesystem::path& meta_path, RecordingInfo& info) {
    const auto ni_range = gain_input(meta, meta_path, "niAiRangeMax");
    const auto ni_max_int = gain_input(meta, meta_path, "niMaxInt");
    if (ni_range && ni_max_int) {
        const auto gain = gain_input(meta, meta_path, "niMNGain");
        info.microvolts_per_bit = *ni_range / *ni_max_int / gain.value_or(1.0) * 1e6;
        info.gain_source = "niAiRangeMax, niMaxInt" + std::string(gain ? ", niMNGain" : " (no niMNGain: gain 1)");
        return;
    }
    info.gain_source = "unknown (no niAiRangeMax / niMaxInt): amplitudes in LSB";
    info.gain_fallback = true;
}

} // namespace

MetaMap read_spikeglx_meta(const std::filesystem::path& meta_path) {
    std::ifstream in(meta_path);
    require(in.is_open(), "cannot read " + meta_path.string() + ": check that it exists and is readable");
    MetaMap meta;
    std::string line;
    for (int line_number = 1; std::getline(in, line); ++line_number) {
        const std::string content = trim(line);
        if (content.empty())
            continue;
        const auto equals = content.find('=');
        require(equals != std::string::npos && equals > 0, meta_path.string() + ":" + std::to_string(line_number) +
                                                               ": expected key=value, found '" + content +
                                                               "': is this a SpikeGLX .meta file?");
        meta[trim(content.substr(0, equals))] = trim(content.substr(equals + 1));
    }
    require(!in.bad(), "read error in " + meta_path.string());
    return meta;
}

std::vector<int> spikeglx_saved_channels(const MetaMap& meta, const std::filesystem::path& meta_path) {
    const auto value = find_key(meta, "snsSaveChanSubset");
    if (!value || *value == "all")
        return {};
    return parse_channel_list(*value, meta_path.string() + ": snsSaveChanSubset");
}

RecordingInfo read_spikeglx_info(const std::filesystem::path& bin_path, const SpikeGlxReadOptions& options) {
    const bool allow_truncated = options.allow_truncated;
    std::filesystem::path meta_path = bin_path;
    meta_path.replace_extension(".meta");
    std::error_code ec;
    require(std::filesystem::is_regular_file(meta_path, ec),
            bin_path.string() + ": no " + meta_path.filename().string() +
                " beside it: SpikeGLX recordings need their .meta file");
    const MetaMap meta = read_spikeglx_meta(meta_path);

    const int n_channels = required_number<int>(meta, meta_path, "nSavedChans", "the number of saved channels");
    require(n_channels > 0, meta_path.string() + ": nSavedChans must be positive");
    const bool nidq = !meta.contains("imSampRate") && meta.contains("niSampRate");
    const double sample_rate =
        required_number<double>(meta, meta_path, nidq ? "niSampRate" : "imSampRate", "the sampling rate in Hz");
    require(std::isfinite(sample_rate) && sample_rate > 0, meta_path.string() + ": the sampling rate must be positive");

    require(std::filesystem::is_regular_file(bin_path, ec), bin_path.string() + ": no such file: check the path");
    const std::uintmax_t actual_size = options.data_bytes.value_or(std::filesystem::file_size(bin_path, ec));
    require(!ec, bin_path.string() + ": cannot read its size: " + ec.message());
    // SpikeGLX writes fileSizeBytes when a file is closed; a .meta without it (a crash, some tools) is read by the
    // .bin's own size, with a warning that the size could not be checked.
    std::string warning;
    std::uint64_t declared_size = actual_size;
    if (meta.contains("fileSizeBytes"))
        declared_size = required_number<std::uint64_t>(meta, meta_path, "fileSizeBytes", "the size of the .bin file");
    else
        warning = meta_path.string() + " has no fileSizeBytes: using the size of " + bin_path.filename().string() +
                  " (" + std::to_string(actual_size) + " bytes), which could not be checked against the .meta";
    // A longer file than the .meta says is not a cut recording: the .meta belongs to another file.
    require(actual_size == declared_size || (allow_truncated && actual_size < declared_size),
            bin_path.string() + " is " + std::to_string(actual_size) + " bytes but " + meta_path.filename().string() +
                " says fileSizeBytes=" + std::to_string(declared_size) +
                (actual_size < declared_size
                     ? ": the recording is truncated (e.g. by a crash; pass --allow-truncated to process its whole "
                       "frames) or the .meta belongs to another file"
                     : ": the .meta belongs to another file"));
    const std::uint64_t frame_bytes = static_cast<std::uint64_t>(n_channels) * sizeof(std::int16_t);
    require(allow_truncated || actual_size % frame_bytes == 0,
            bin_path.string() + " is " + std::to_string(actual_size) + " bytes, not a whole number of frames of " +
                std::to_string(n_channels) + " int16 channels (" + std::to_string(actual_size % frame_bytes) +
                " bytes left over): nSavedChans in the .meta is wrong or the file is damaged (a file cut by a crash: "
                "pass --allow-truncated to process its whole frames)");
    const std::uint64_t whole_frames = actual_size / frame_bytes;
    require(whole_frames > 0 || !allow_truncated, bin_path.string() + " is " + std::to_string(actual_size) +
                                                      " bytes: not one whole frame of " + std::to_string(n_channels) +
                                                      " int16 channels, nothing to process");
    if (actual_size != declared_size || actual_size % frame_bytes != 0)
        warning = bin_path.string() + " is truncated: using its " + std::to_string(whole_frames) + " whole frames (" +
                  std::to_string(whole_frames * frame_bytes) + " bytes) of the " +
                  std::to_string(declared_size / frame_bytes) + " frames (" + std::to_string(declared_size) +
                  " bytes) its .meta declares";

    // SpikeGLX names the LFP band of an imec probe NAME.imecN.lf.bin; its gain is the LF gain.
    const bool lfp_stream = bin_path.stem().extension() == ".lf";
    RecordingInfo info;
    info.n_channels = n_channels;
    // snsApLfSy counts the saved channels of each type, in that order: the sync channel(s) come last and carry no
    // neural signal, so they are skipped (the file keeps them: Phy's params.py names nSavedChans).
    if (const auto counts = find_key(meta, "snsApLfSy")) {
        const std::vector<int> ap_lf_sy = comma_separated_counts(*counts);
        require(
            ap_lf_sy.size() == 3 && ap_lf_sy[2] < n_channels && ap_lf_sy[0] + ap_lf_sy[1] + ap_lf_sy[2] == n_channels,
            meta_path.string() + ": snsApLfSy=" + *counts +
                " should be three channel counts (AP,LF,SY) adding up to nSavedChans=" + std::to_string(n_channels) +
                ": is the .meta damaged?");
        const int sync = ap_lf_sy[2];
        if (sync > 0) {
            info.n_channels = n_channels - sync;
            info.n_file_channels = n_channels;
        }
    }
    for (int channel = info.n_channels; channel < info.file_channels(); ++channel)
        info.skipped_channels.emplace_back(channel, "SpikeGLX sync (SY) channel");
    info.sample_rate = sample_rate;
    info.n_frames = whole_frames;
    info.format = "spikeglx";
    info.data_path = bin_path;
    info.warning = warning;
    if (nidq || (!meta.contains("imAiRangeMax") && meta.contains("niAiRangeMax"))) {
        if (!options.gain_given)
            read_nidq_gain(meta, meta_path, info);
    } else {
        const ImecProbe imec = describe_imec_probe(meta, meta_path, info.n_channels);
        read_imec_geometry(meta, meta_path, imec, info);
        if (!options.gain_given)
            read_imec_gain(meta, meta_path, imec, lfp_stream, info);
    }
    return info;
}

std::unique_ptr<RecordingSource> open_spikeglx(const std::filesystem::path& bin_path) {
    return open_interleaved_int16(read_spikeglx_info(bin_path));
}

namespace {

/// The .meta of a SpikeGlxWriter's recording of `frames` frames. The gain is encoded with imMaxInt=32768 and
/// imChan0apGain=1, so imAiRangeMax alone carries the scale: imAiRangeMax / imMaxInt / gain * 1e6 ==
/// microvolts_per_bit, which is what read_spikeglx_info computes.
/// The keys of a SpikeGlxWriter's .meta that do not change with its length: what SpikeGLX's readers and neo need
/// beyond the sizes and the gain (docs/FORMATS.md §1.3).
std::string writer_header_text(const std::filesystem::path& bin_path, int n_channels, const probe::Probe* probe) {
    std::ostringstream meta;
    meta << "acqApLfSy=" << n_channels << ",0,0\n"
         << "firstSample=0\n";
    // neo takes the run, gate, trigger, probe and band from fileName's stem, named as SpikeGLX names its files
    // (RUN_gG_tT.imecN.ap.bin); a file named otherwise is given the name SpikeGLX would have used. The name only:
    // the .meta stays the same wherever the pair is written or moved (simulate: same seed, same bytes).
    const std::string name = bin_path.filename().string();
    const bool spikeglx_name =
        name.find(".imec") != std::string::npos && name.size() > 7 && name.compare(name.size() - 7, 7, ".ap.bin") == 0;
    meta << "fileName=" << (spikeglx_name ? name : bin_path.stem().string() + "_g0_t0.imec0.ap.bin") << "\n";
    // ~snsChanMap: (AP,LF,SY counts)(name;channel:order) per saved channel, the channel names neo reads.
    meta << "~snsChanMap=(" << n_channels << ",0,0)";
    for (int c = 0; c < n_channels; ++c)
        meta << "(AP" << c << ';' << c << ':' << c << ')';
    meta << "\n";
    if (!probe || probe->n_channels() != n_channels)
        return meta.str();
    // The part number of a Neuropixels probe (the first word of the names its geometry gets), else the probe's name.
    const std::string first_word = probe->name.substr(0, probe->name.find(' '));
    const std::string part = !first_word.empty() && probe::neuropixels_model(first_word, std::nullopt)
                                 ? first_word
                                 : (probe->name.empty() ? std::string("unknown") : probe->name);
    std::string part_field = part;
    std::replace_if(
        part_field.begin(), part_field.end(), [](char c) { return c == ',' || c == '(' || c == ')'; }, '_');
    meta << "imDatPrb_pn=" << part_field << "\n";
    // ~snsGeomMap (SpikeGLX 2023): (part,shanks,shank_pitch,shank_width)(shank:x:z:used) per saved channel, x from the
    // shank's left edge. The pitch is the spacing of the shanks' left edges when it is regular, else 0 with x absolute.
    std::map<int, double> left, right;
    for (const probe::Contact& contact : probe->contacts) {
        auto [l, new_left] = left.try_emplace(contact.shank, contact.x_um);
        l->second = std::min(l->second, contact.x_um);
        auto [r, new_right] = right.try_emplace(contact.shank, contact.x_um);
        r->second = std::max(r->second, contact.x_um);
    }
    const int n_shanks = left.rbegin()->first + 1;
    double pitch = 0;
    if (static_cast<int>(left.size()) == n_shanks && n_shanks > 1) {
        pitch = (left.at(1) - left.at(0));
        for (int s = 1; s < n_shanks && pitch > 0; ++s)
            if (std::abs(left.at(s) - left.at(0) - s * pitch) > 1e-6)
                pitch = 0;
        if (pitch <= 0)
            pitch = 0;
    }
    double width = 0;
    for (const auto& [shank, l] : left)
        width = std::max(width, right.at(shank) - (pitch > 0 ? l : 0.0));
    meta << "~snsGeomMap=(" << part_field << ',' << n_shanks << ',' << format_double(pitch) << ','
         << format_double(width) << ')';
    for (const probe::Contact& contact : probe->contacts)
        meta << '(' << contact.shank << ':'
             << format_double(contact.x_um - (pitch > 0 ? left.at(0) + contact.shank * pitch : 0.0)) << ':'
             << format_double(contact.y_um) << ':' << (contact.excluded ? 0 : 1) << ')';
    meta << "\n";
    return meta.str();
}

std::string writer_meta_text(int n_channels, double sample_rate, double microvolts_per_bit, std::uint64_t frames,
                             const std::string& header) {
    constexpr double kMaxInt = 32768.0;
    const double range_volts = microvolts_per_bit * kMaxInt / 1e6;
    const std::uint64_t file_size = frames * static_cast<std::uint64_t>(n_channels) * sizeof(std::int16_t);
    std::ostringstream meta;
    meta << "typeThis=imec\n"
         << "nSavedChans=" << n_channels << "\n"
         << "snsApLfSy=" << n_channels << ",0,0\n"
         << "snsSaveChanSubset=all\n"
         << "imSampRate=" << format_double(sample_rate) << "\n"
         << "fileSizeBytes=" << file_size << "\n"
         << "fileTimeSecs=" << format_double(static_cast<double>(frames) / sample_rate) << "\n"
         << "imAiRangeMax=" << format_double(range_volts) << "\n"
         << "imAiRangeMin=" << format_double(-range_volts) << "\n"
         << "imMaxInt=" << static_cast<int>(kMaxInt) << "\n"
         << "imChan0apGain=1\n"
         << header;
    return meta.str();
}

/// Rewrites `file` with text in place (no truncation first: on a full disk, the blocks it already has are reused),
/// then renames it to destination.
void rewrite_and_rename(const std::filesystem::path& file, const std::string& text,
                        const std::filesystem::path& destination) {
    overwrite_start(file, text);
    std::error_code ec;
    std::filesystem::resize_file(file, text.size(), ec);
    require(!ec, "cannot truncate " + file.string() + ": " + ec.message());
    std::filesystem::rename(file, destination, ec);
    require(!ec, "cannot rename " + file.string() + " to " + destination.string() + ": " + ec.message());
}

std::filesystem::path meta_path_of(std::filesystem::path bin_path) {
    bin_path.replace_extension(".meta");
    return bin_path;
}

} // namespace

struct SpikeGlxWriter::State {
    std::filesystem::path bin_path;
    std::filesystem::path temporary;
    std::filesystem::path meta_temporary;
    std::ofstream out;
    int n_channels = 0;
    double sample_rate = 0;
    double microvolts_per_bit = 0;
    std::string header; ///< the .meta's keys that do not depend on the length (writer_header_text)
    std::uint64_t frames_written = 0;
    bool finished = false;
};

SpikeGlxWriter::SpikeGlxWriter(std::filesystem::path bin_path, int n_channels, double sample_rate,
                               double microvolts_per_bit, const probe::Probe* probe)
    : state_(std::make_unique<State>()) {
    require(n_channels > 0, "SpikeGLX output " + bin_path.string() + ": the channel count must be positive");
    require(std::isfinite(sample_rate) && sample_rate > 0,
            "SpikeGLX output " + bin_path.string() + ": the sample rate must be positive");
    require(std::isfinite(microvolts_per_bit) && microvolts_per_bit >= 0,
            "SpikeGLX output " + bin_path.string() + ": microvolts per bit must be positive (or 0 when unknown)");
    State& state = *state_;
    state.temporary = temporary_path(bin_path);
    state.meta_temporary = temporary_path(meta_path_of(bin_path));
    state.bin_path = std::move(bin_path);
    state.n_channels = n_channels;
    state.sample_rate = sample_rate;
    state.microvolts_per_bit = microvolts_per_bit;
    state.header = writer_header_text(state.bin_path, n_channels, probe);
    // The .meta is written first, for zero frames: after a crash it tells `spikeline recover` what the data is.
    {
        std::ofstream meta(state.meta_temporary, std::ios::binary | std::ios::trunc);
        require(meta.is_open(),
                "cannot create " + state.meta_temporary.string() + ": check that the folder exists and is writable");
        meta << writer_meta_text(n_channels, sample_rate, microvolts_per_bit, 0, state.header);
        meta.flush();
        if (!meta.good())
            throw_write_error(state.meta_temporary.string());
    }
    state.out.open(state.temporary, std::ios::binary | std::ios::trunc);
    require(state.out.is_open(),
            "cannot create " + state.temporary.string() + ": check that the folder exists and is writable");
}

SpikeGlxWriter::~SpikeGlxWriter() {
    if (state_ && !state_->finished) {
        state_->out.close();
        std::error_code ignored;
        std::filesystem::remove(state_->temporary, ignored);
        std::filesystem::remove(state_->meta_temporary, ignored);
    }
}

void SpikeGlxWriter::write(const std::int16_t* frames, std::size_t n_frames) {
    require(!state_->finished, "SpikeGLX output " + state_->bin_path.string() + ": write after finish");
    const std::size_t bytes = n_frames * static_cast<std::size_t>(state_->n_channels) * sizeof(std::int16_t);
    state_->out.write(reinterpret_cast<const char*>(frames), static_cast<std::streamsize>(bytes));
    if (!state_->out.good())
        throw_write_error(state_->temporary.string());
    state_->frames_written += n_frames;
}

void SpikeGlxWriter::flush() {
    state_->out.flush();
    if (!state_->out.good())
        throw_write_error(state_->temporary.string());
}

std::uint64_t SpikeGlxWriter::frames_written() const {
    return state_->frames_written;
}

std::uint64_t SpikeGlxWriter::finish() {
    State& state = *state_;
    require(!state.finished, "SpikeGLX output " + state.bin_path.string() + ": finish called twice");
    // From here on the temporaries are never removed: whatever fails, what reached the disk stays for recover.
    state.finished = true;
    state.out.flush();
    state.out.close();

    // After a failed write (disk full) the file may end inside a frame, or before the frames counted: keep the whole
    // frames that reached it.
    const std::uint64_t frame_bytes = static_cast<std::uint64_t>(state.n_channels) * sizeof(std::int16_t);
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(state.temporary, ec);
    require(!ec, "cannot read the size of " + state.temporary.string() + ": " + ec.message());
    const std::uint64_t frames = std::min<std::uint64_t>(state.frames_written, size / frame_bytes);
    if (frames * frame_bytes != size) {
        std::filesystem::resize_file(state.temporary, frames * frame_bytes, ec);
        require(!ec, "cannot truncate " + state.temporary.string() + ": " + ec.message());
    }

    // The .bin goes into place first: the .meta appearing last marks the pair as complete.
    std::filesystem::rename(state.temporary, state.bin_path, ec);
    require(!ec, "cannot rename " + state.temporary.string() + " to " + state.bin_path.string() + ": " + ec.message());
    rewrite_and_rename(
        state.meta_temporary,
        writer_meta_text(state.n_channels, state.sample_rate, state.microvolts_per_bit, frames, state.header),
        meta_path_of(state.bin_path));
    return frames;
}

SpikeGlxRecovery recover_spikeglx(const std::filesystem::path& data, const std::filesystem::path& meta_source,
                                  const std::filesystem::path& bin_path) {
    const MetaMap meta = read_spikeglx_meta(meta_source);
    const auto channels = required_number<int>(meta, meta_source, "nSavedChans", "the number of channels per frame");
    require(channels > 0, meta_source.string() + ": nSavedChans must be positive");
    const std::string rate_key = meta.count("imSampRate") ? "imSampRate" : "niSampRate";
    const auto sample_rate = required_number<double>(meta, meta_source, rate_key, "the sample rate");
    require(std::isfinite(sample_rate) && sample_rate > 0, meta_source.string() + ": the sample rate must be positive");

    SpikeGlxRecovery recovery;
    recovery.bin_path = bin_path;
    const std::uint64_t frame_bytes = static_cast<std::uint64_t>(channels) * sizeof(std::int16_t);
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(data, ec);
    require(!ec, "cannot read the size of " + data.string() + ": " + ec.message());
    recovery.frames = size / frame_bytes;
    recovery.bytes_dropped = size - recovery.frames * frame_bytes;
    if (recovery.bytes_dropped > 0) {
        std::filesystem::resize_file(data, recovery.frames * frame_bytes, ec);
        require(!ec, "cannot truncate " + data.string() + ": " + ec.message());
    }
    if (data != bin_path) {
        std::filesystem::rename(data, bin_path, ec);
        require(!ec, "cannot rename " + data.string() + " to " + bin_path.string() + ": " + ec.message());
    }

    // Every line as it was, but the two that describe the data's length.
    std::ifstream in(meta_source, std::ios::binary);
    std::ostringstream text;
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("fileSizeBytes=", 0) != 0 && line.rfind("fileTimeSecs=", 0) != 0)
            text << line << "\n";
    text << "fileSizeBytes=" << recovery.frames * frame_bytes << "\n"
         << "fileTimeSecs=" << format_double(static_cast<double>(recovery.frames) / sample_rate) << "\n";
    const std::filesystem::path meta_path = meta_path_of(bin_path);
    write_text_file(meta_path, text.str());
    if (meta_source != meta_path)
        std::filesystem::remove(meta_source, ec);
    return recovery;
}

} // namespace spikeline::io
