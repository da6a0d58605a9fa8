#include "io/open_ephys_settings.hpp"

#include "util/errors.hpp"

#include <expat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <type_traits>

namespace spikeline::io {
namespace {

using Attributes = std::map<std::string, std::string>;

/// A source processor and what settings.xml says about its streams and probes, before streams are matched.
struct ProcessorEntry {
    std::string name;
    std::string node_id;
    std::vector<std::string> streams;
    std::vector<OpenEphysProbe> probes;
    std::vector<std::string> custom_names; ///< custom_probe_name per probe
    /// ONIX: per probe, the name its streams end with ("Probe" of a 1.0e headstage, "Probe0" / "Probe1" of a 2.0e)
    std::vector<std::string> onix_names;
};

struct ParseState {
    std::string where;
    std::vector<std::string> open_elements;
    std::vector<ProcessorEntry> processors;
    bool in_processor = false;
    bool in_probe = false;
    bool probe_enabled = true;
    std::string onix_element; ///< the ONIX probe element being read (NEUROPIXELSV1E, PROBE0, ...), else empty
    bool onix_headstage_enabled = true;
    Attributes channels, x_positions, y_positions;
    std::string error; ///< the first error; parsing stops at it
};

Attributes to_map(const XML_Char** attributes) {
    Attributes result;
    for (int i = 0; attributes[i] != nullptr && attributes[i + 1] != nullptr; i += 2)
        result[attributes[i]] = attributes[i + 1];
    return result;
}

std::string value_or_empty(const Attributes& attributes, const std::string& key) {
    const auto it = attributes.find(key);
    return it == attributes.end() ? std::string() : it->second;
}

bool parse_int(const std::string& text, int& value) {
    if (text.empty())
        return false;
    char* end = nullptr;
    errno = 0;
    const long parsed = std::strtol(text.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || parsed < 0 || parsed > 1000000)
        return false;
    value = static_cast<int>(parsed);
    return true;
}

bool parse_number(const std::string& text, double& value) {
    if (text.empty())
        return false;
    char* end = nullptr;
    errno = 0;
    value = std::strtod(text.c_str(), &end);
    return errno == 0 && *end == '\0' && std::isfinite(value);
}

/// "CH12" -> channel 12; "CH12_3" -> channel 12 of shank 3 (quad-base).
bool parse_channel_key(const std::string& key, int& channel, int& shank) {
    if (key.rfind("CH", 0) != 0)
        return false;
    const std::string rest = key.substr(2);
    const auto underscore = rest.find('_');
    shank = -1;
    if (underscore == std::string::npos)
        return parse_int(rest, channel);
    return parse_int(rest.substr(0, underscore), channel) && parse_int(rest.substr(underscore + 1), shank);
}

/// Builds the probe's sites from its three per-channel attribute lists; returns an error text, empty when well-formed.
std::string fill_sites(OpenEphysProbe& probe, const Attributes& channels, const Attributes& xs, const Attributes& ys) {
    for (const auto& [key, bank_text] : channels) {
        int channel = 0, key_shank = -1;
        if (!parse_channel_key(key, channel, key_shank))
            return "CHANNELS has an attribute " + key + " that is not CH<channel>";
        OpenEphysSite site;
        // "bank" or "bank:shank" (multi-shank probes); a quad-base entry names its shank in the key instead.
        const auto colon = bank_text.find(':');
        const std::string bank_part = bank_text.substr(0, colon);
        if (!parse_int(bank_part, site.bank) ||
            (colon != std::string::npos && !parse_int(bank_text.substr(colon + 1), site.shank)))
            return "CHANNELS " + key + "=\"" + bank_text + "\" is not a bank or bank:shank";
        if (key_shank >= 0)
            site.shank = key_shank;
        const auto x = xs.find(key);
        const auto y = ys.find(key);
        if (x == xs.end() || y == ys.end())
            return "channel " + key + " has no ELECTRODE_XPOS or ELECTRODE_YPOS";
        if (!parse_number(x->second, site.x_um) || !parse_number(y->second, site.y_um))
            return "the position of " + key + " is not a number";
        if (!probe.sites.emplace(channel, site).second)
            return "channel " + std::to_string(channel) + " appears twice";
    }
    if (xs.size() != channels.size() || ys.size() != channels.size())
        return "ELECTRODE_XPOS / ELECTRODE_YPOS list other channels than CHANNELS";
    return {};
}

/// An electrode's position on the documented site layout of its probe type (SpikeGLX / IMEC probe tables; x from the
/// left column of shank 0, y from the lowest row): NP1.0 staggered (two rows of 4 sites at x 16, 48, 0, 32 um, rows
/// 20 um apart), NP2.0 single shank (2 columns 32 um apart, rows 15 um apart) and four-shank (the same per shank of
/// 1280 electrodes, shanks 250 um apart). False for other types.
bool documented_site(const std::string& part, int electrode, OpenEphysSite& site) {
    const auto one_of = [&](std::initializer_list<const char*> parts) {
        return std::any_of(parts.begin(), parts.end(), [&](const char* p) { return part == p; });
    };
    if (one_of({"PRB_1_4_0480_1", "PRB_1_4_0480_1_C", "PRB_1_2_0480_2", "NP1000", "NP1001", "NP1010", "NP1011",
                "NP1012", "NP1013"})) {
        static const double kColumnX[] = {16, 48, 0, 32};
        if (electrode >= 960)
            return false;
        site = {kColumnX[electrode % 4], 20.0 * (electrode / 2), 0, electrode / 384};
        return true;
    }
    if (one_of({"NP2000", "NP2003", "NP2004", "PRB2_1_2_0640_0", "PRB2_1_4_0480_1"})) {
        if (electrode >= 1280)
            return false;
        site = {32.0 * (electrode % 2), 15.0 * (electrode / 2), 0, electrode / 384};
        return true;
    }
    if (one_of({"NP2010", "NP2013", "NP2014", "PRB2_4_2_0640_0", "PRB2_4_4_0480_1"})) {
        if (electrode >= 4 * 1280)
            return false;
        const int shank = electrode / 1280, within = electrode % 1280;
        site = {250.0 * shank + 32.0 * (within % 2), 15.0 * (within / 2), shank, within / 384};
        return true;
    }
    return false;
}

/// ONIX probes list the electrode of each channel (SELECTED_ELECTRODES CHn="electrode"), not its position.
std::string fill_sites_from_electrodes(OpenEphysProbe& probe, const Attributes& electrodes) {
    for (const auto& [key, electrode_text] : electrodes) {
        int channel = 0, key_shank = -1, electrode = 0;
        if (!parse_channel_key(key, channel, key_shank) || key_shank >= 0)
            return "SELECTED_ELECTRODES has an attribute " + key + " that is not CH<channel>";
        if (!parse_int(electrode_text, electrode))
            return "SELECTED_ELECTRODES " + key + "=\"" + electrode_text + "\" is not an electrode index";
        OpenEphysSite site;
        if (!documented_site(probe.part_number, electrode, site))
            return {}; // a probe type without a layout here: no sites, so its streams fall back (with a warning)
        if (!probe.sites.emplace(channel, site).second)
            return "channel " + std::to_string(channel) + " appears twice";
    }
    return {};
}

void on_start(void* user, const XML_Char* name_text, const XML_Char** attribute_list) {
    auto& state = *static_cast<ParseState*>(user);
    const std::string name = name_text;
    const std::string parent = state.open_elements.empty() ? "" : state.open_elements.back();
    state.open_elements.push_back(name);
    if (!state.error.empty())
        return;
    const Attributes attributes = to_map(attribute_list);
    // A probe element's end acts on the last processor's last probe: nothing may open another inside it.
    const bool in_probe_element = state.in_probe || !state.onix_element.empty();
    const bool opens_probe = name == "NP_PROBE" || name == "NEUROPIXELSV1E" ||
                             ((name == "PROBE0" || name == "PROBE1") && parent == "NEUROPIXELSV2E");
    if (in_probe_element && ((name == "PROCESSOR" && parent == "SIGNALCHAIN") || (opens_probe && state.in_processor))) {
        state.error = name + " inside a probe element: settings.xml is malformed";
        return;
    }
    if (name == "PROCESSOR" && parent == "SIGNALCHAIN") {
        ProcessorEntry entry;
        entry.name = value_or_empty(attributes, "name");
        // GUI 0.5 prefixes the category ("Sources/Neuropix-PXI") and spells NodeId with a capital N.
        if (const auto slash = entry.name.rfind('/'); slash != std::string::npos)
            entry.name = entry.name.substr(slash + 1);
        entry.node_id = value_or_empty(attributes, "nodeId");
        if (entry.node_id.empty())
            entry.node_id = value_or_empty(attributes, "NodeId");
        state.processors.push_back(std::move(entry));
        state.in_processor = true;
    } else if (name == "STREAM" && parent == "PROCESSOR" && state.in_processor) {
        state.processors.back().streams.push_back(value_or_empty(attributes, "name"));
    } else if (name == "NP_PROBE" && state.in_processor) {
        OpenEphysProbe probe;
        probe.processor = state.processors.back().name;
        probe.node_id = state.processors.back().node_id;
        probe.part_number = value_or_empty(attributes, "probe_part_number");
        probe.model = value_or_empty(attributes, "probe_name");
        probe.serial_number = value_or_empty(attributes, "probe_serial_number");
        state.processors.back().probes.push_back(std::move(probe));
        state.processors.back().custom_names.push_back(value_or_empty(attributes, "custom_probe_name"));
        state.in_probe = true;
        state.probe_enabled = value_or_empty(attributes, "isEnabled") != "0";
        state.channels.clear();
        state.x_positions.clear();
        state.y_positions.clear();
    } else if (state.in_processor && state.onix_element.empty() &&
               (name == "NEUROPIXELSV1E" || ((name == "PROBE0" || name == "PROBE1") && parent == "NEUROPIXELSV2E"))) {
        // ONIX Source: a 1.0e headstage is itself the probe (streams "...-<name>-AP/-LFP"); a 2.0e headstage holds
        // PROBE0 and PROBE1 (streams "...-Probe0", "...-Probe1").
        OpenEphysProbe probe;
        probe.processor = state.processors.back().name;
        probe.node_id = state.processors.back().node_id;
        probe.part_number = value_or_empty(attributes, "probePartNumber");
        probe.model = name == "NEUROPIXELSV1E" ? "Neuropixels 1.0 (ONIX 1.0e headstage)" : "Neuropixels 2.0 (ONIX)";
        probe.serial_number = value_or_empty(attributes, "probeSerialNumber");
        state.processors.back().probes.push_back(std::move(probe));
        state.processors.back().custom_names.emplace_back();
        state.processors.back().onix_names.push_back(name == "NEUROPIXELSV1E" ? value_or_empty(attributes, "name")
                                                                              : "Probe" + name.substr(5));
        state.onix_element = name;
        state.probe_enabled =
            name == "NEUROPIXELSV1E" ? value_or_empty(attributes, "isEnabled") != "0" : state.onix_headstage_enabled;
        state.channels.clear();
    } else if (name == "NEUROPIXELSV2E") {
        state.onix_headstage_enabled = value_or_empty(attributes, "isEnabled") != "0";
    } else if (!state.onix_element.empty() && name == "SELECTED_ELECTRODES" && parent == state.onix_element) {
        state.channels = attributes;
    } else if (state.in_probe && parent == "NP_PROBE") {
        if (name == "CHANNELS")
            state.channels = attributes;
        else if (name == "ELECTRODE_XPOS")
            state.x_positions = attributes;
        else if (name == "ELECTRODE_YPOS")
            state.y_positions = attributes;
    }
}

void on_end(void* user, const XML_Char* name_text) {
    auto& state = *static_cast<ParseState*>(user);
    const std::string name = name_text;
    if (!state.open_elements.empty())
        state.open_elements.pop_back();
    if (!state.error.empty())
        return;
    const std::string parent = state.open_elements.empty() ? "" : state.open_elements.back();
    if (name == "PROCESSOR" && parent == "SIGNALCHAIN") {
        state.in_processor = false;
    } else if (!state.onix_element.empty() && name == state.onix_element) {
        state.onix_element.clear();
        ProcessorEntry& processor = state.processors.back();
        if (processor.probes.empty() || processor.onix_names.empty()) {
            state.error = name + " closes a probe its processor does not hold: settings.xml is malformed";
            return;
        }
        if (!state.probe_enabled) {
            processor.probes.pop_back();
            processor.custom_names.pop_back();
            processor.onix_names.pop_back();
            return;
        }
        const std::string problem = fill_sites_from_electrodes(processor.probes.back(), state.channels);
        if (!problem.empty())
            state.error = "probe " + processor.probes.back().serial_number + ": " + problem;
    } else if (name == "NP_PROBE" && state.in_probe) {
        state.in_probe = false;
        ProcessorEntry& processor = state.processors.back();
        if (processor.probes.empty()) {
            state.error = "NP_PROBE closes a probe its processor does not hold: settings.xml is malformed";
            return;
        }
        if (!state.probe_enabled) {
            processor.probes.pop_back();
            processor.custom_names.pop_back();
            return;
        }
        const std::string problem =
            fill_sites(processor.probes.back(), state.channels, state.x_positions, state.y_positions);
        if (!problem.empty())
            state.error = "probe " + processor.probes.back().serial_number + ": " + problem;
    }
}

std::string strip_band_suffix(const std::string& stream) {
    for (const std::string suffix : {"-AP", "-LFP"})
        if (stream.size() > suffix.size() && stream.compare(stream.size() - suffix.size(), suffix.size(), suffix) == 0)
            return stream.substr(0, stream.size() - suffix.size());
    return stream;
}

/// Gives each probe of the processor the stream name its data streams carry: by custom probe name when every probe
/// has a distinct one that is a stream name, else in order (the plugins list the probe streams first, in probe order).
void assign_streams(ProcessorEntry& processor) {
    std::vector<std::string> bases;
    for (const std::string& stream : processor.streams) {
        const std::string base = strip_band_suffix(stream);
        if (std::find(bases.begin(), bases.end(), base) == bases.end())
            bases.push_back(base);
    }
    const auto is_base = [&](const std::string& name) {
        return !name.empty() && std::find(bases.begin(), bases.end(), name) != bases.end();
    };
    if (!processor.onix_names.empty()) {
        // ONIX: the probe whose name ends exactly one stream name.
        // (A processor holding NP_PROBE elements too has fewer ONIX names than probes.)
        for (std::size_t i = 0; i < std::min(processor.probes.size(), processor.onix_names.size()); ++i) {
            const std::string suffix = "-" + processor.onix_names[i];
            std::vector<std::string> matches;
            for (const std::string& base : bases)
                if (base.size() > suffix.size() &&
                    base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0)
                    matches.push_back(base);
            if (matches.size() == 1)
                processor.probes[i].stream_base = matches.front();
        }
        return;
    }
    std::vector<std::string> names = processor.custom_names;
    std::sort(names.begin(), names.end());
    const bool distinct = std::adjacent_find(names.begin(), names.end()) == names.end();
    const bool by_name = distinct && std::all_of(processor.custom_names.begin(), processor.custom_names.end(), is_base);
    for (std::size_t i = 0; i < processor.probes.size(); ++i) {
        if (by_name)
            processor.probes[i].stream_base = processor.custom_names[i];
        else if (processor.probes.size() <= bases.size())
            processor.probes[i].stream_base = bases[i];
    }
}

} // namespace

std::vector<OpenEphysProbe> read_open_ephys_probes(const std::filesystem::path& settings_xml) {
    const std::string where = "Open Ephys settings " + settings_xml.string();
    std::ifstream in(settings_xml, std::ios::binary);
    require(in.good(), where + ": cannot read the file");
    std::ostringstream text;
    text << in.rdbuf();
    const std::string content = text.str();

    ParseState state;
    state.where = where;
    std::unique_ptr<std::remove_pointer_t<XML_Parser>, decltype(&XML_ParserFree)> parser(XML_ParserCreate(nullptr),
                                                                                         &XML_ParserFree);
    require(parser != nullptr, where + ": out of memory creating the XML parser");
    XML_SetUserData(parser.get(), &state);
    XML_SetElementHandler(parser.get(), &on_start, &on_end);
    if (XML_Parse(parser.get(), content.data(), static_cast<int>(content.size()), 1) == XML_STATUS_ERROR)
        throw InputError(where + ": not well-formed XML at line " +
                         std::to_string(XML_GetCurrentLineNumber(parser.get())) + " (" +
                         XML_ErrorString(XML_GetErrorCode(parser.get())) + "): is it a settings.xml Open Ephys wrote?");
    require(state.error.empty(), where + ": " + state.error);

    std::vector<OpenEphysProbe> probes;
    for (ProcessorEntry& processor : state.processors) {
        assign_streams(processor);
        for (OpenEphysProbe& probe : processor.probes)
            probes.push_back(std::move(probe));
    }
    return probes;
}

const OpenEphysProbe* find_open_ephys_probe(const std::vector<OpenEphysProbe>& probes, const std::string& stream_name,
                                            const std::string& processor, const std::string& node_id) {
    const auto same_source = [&](const OpenEphysProbe& probe) {
        return (processor.empty() || probe.processor == processor) && (node_id.empty() || probe.node_id == node_id);
    };
    const std::string base = strip_band_suffix(stream_name);
    const OpenEphysProbe* only = nullptr;
    int candidates = 0;
    for (const OpenEphysProbe& probe : probes) {
        if (!same_source(probe))
            continue;
        if (!probe.stream_base.empty() && (probe.stream_base == stream_name || probe.stream_base == base))
            return &probe;
        only = &probe;
        ++candidates;
    }
    const bool no_stream_names = only != nullptr && only->stream_base.empty();
    return candidates == 1 && no_stream_names ? only : nullptr;
}

} // namespace spikeline::io
