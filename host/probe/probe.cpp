#include "probe/probe.hpp"

#include "probe/neuropixels.hpp"

#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <tuple>
#include <utility>

namespace spikeline::probe {

namespace {

using nlohmann::json;

constexpr int kContactsPerShank = 128;
constexpr double kColumnPitchUm = 32.0;
constexpr double kRowPitchUm = 20.0;
constexpr double kShankPitchUm = 250.0;
constexpr double kContactRadiusUm = 6.0;
/// Distances are compared with this slack so that a contact exactly on the radius counts despite rounding.
constexpr double kDistanceToleranceUm = 1e-9;

/// One connected contact of a file, before contacts are put in channel order.
struct WiredContact {
    Contact contact;
    long long channel = 0;
    std::string origin; ///< "probe P contact K", for error messages
};

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& message) {
    throw InputError(path.string() + ": " + message);
}

const json& required_field(const json& object, const char* key, const std::filesystem::path& path,
                           const std::string& where) {
    const auto it = object.find(key);
    if (it == object.end())
        fail(path, where + " has no \"" + key + "\": is this a probeinterface JSON file?");
    return *it;
}

double unit_scale_to_um(const json& probe_json, const std::filesystem::path& path, const std::string& where) {
    const std::string units = probe_json.value("si_units", std::string("um"));
    if (units == "um")
        return 1.0;
    if (units == "mm")
        return 1000.0;
    fail(path, where + " has si_units \"" + units + "\": only \"um\" and \"mm\" are supported");
}

std::string probe_name(const json& probe_json) {
    const auto annotations = probe_json.find("annotations");
    if (annotations == probe_json.end() || !annotations->is_object())
        return {};
    for (const char* key : {"name", "model_name"}) {
        const auto it = annotations->find(key);
        if (it != annotations->end() && it->is_string() && !it->get<std::string>().empty())
            return it->get<std::string>();
    }
    return {};
}

/// Appends the connected contacts of one probe; shank strings are numbered across the file in first-seen order.
void read_probe_contacts(const json& probe_json, std::size_t probe_index, std::size_t first_contact_index,
                         const std::filesystem::path& path, std::map<std::pair<std::size_t, std::string>, int>& shanks,
                         std::vector<WiredContact>& wired) {
    const std::string where = "probe " + std::to_string(probe_index);
    if (!probe_json.is_object())
        fail(path, where + " is not a JSON object");
    const int ndim = probe_json.value("ndim", 2);
    if (ndim != 2)
        fail(path, where + " has ndim " + std::to_string(ndim) +
                       ": only planar (2-D) probes are supported; export the probe with ndim 2");
    const double scale = unit_scale_to_um(probe_json, path, where);

    const json& positions = required_field(probe_json, "contact_positions", path, where);
    if (!positions.is_array())
        fail(path, where + ": contact_positions must be a list of [x, y] pairs");
    const std::size_t n_contacts = positions.size();

    const auto optional_list = [&](const char* key) -> const json* {
        const auto it = probe_json.find(key);
        if (it == probe_json.end() || it->is_null())
            return nullptr;
        if (!it->is_array() || it->size() != n_contacts)
            fail(path, where + ": " + key + " must be a list with one entry per contact (" +
                           std::to_string(n_contacts) + ")");
        return &*it;
    };
    const json* channels = optional_list("device_channel_indices");
    const json* ids = optional_list("contact_ids");
    const json* shank_ids = optional_list("shank_ids");

    for (std::size_t k = 0; k < n_contacts; ++k) {
        const std::string origin = where + " contact " + std::to_string(k);
        const json& position = positions[k];
        if (!position.is_array() || position.size() != 2 || !position[0].is_number() || !position[1].is_number())
            fail(path, origin + ": contact position must be [x, y] numbers");
        WiredContact entry;
        entry.origin = origin;
        if (channels) {
            const json& channel = (*channels)[k];
            if (!channel.is_number_integer())
                fail(path, origin + ": device_channel_indices entries must be integers");
            entry.channel = channel.get<long long>();
        } else {
            entry.channel = static_cast<long long>(first_contact_index + k);
        }
        if (entry.channel < 0) // -1: contact not connected to the recording
            continue;
        entry.contact.x_um = position[0].get<double>() * scale;
        entry.contact.y_um = position[1].get<double>() * scale;
        if (ids) {
            const json& id = (*ids)[k];
            entry.contact.id = id.is_string() ? id.get<std::string>() : id.dump();
        }
        std::string shank_text;
        if (shank_ids) {
            const json& shank = (*shank_ids)[k];
            shank_text = shank.is_string() ? shank.get<std::string>() : shank.dump();
        }
        const auto key = std::make_pair(probe_index, shank_text);
        const auto found = shanks.find(key);
        if (found == shanks.end())
            entry.contact.shank = shanks[key] = static_cast<int>(shanks.size());
        else
            entry.contact.shank = found->second;
        wired.push_back(std::move(entry));
    }
}

} // namespace

int Probe::n_shanks() const {
    int highest = -1;
    for (const Contact& contact : contacts)
        highest = std::max(highest, contact.shank);
    return highest + 1;
}

double Probe::distance_um(int a, int b) const {
    const Contact& first = contacts.at(static_cast<std::size_t>(a));
    const Contact& second = contacts.at(static_cast<std::size_t>(b));
    return std::hypot(first.x_um - second.x_um, first.y_um - second.y_um);
}

Probe default_probe(int n_channels) {
    require(n_channels > 0, "the default probe needs a positive channel count, not " + std::to_string(n_channels));
    const int per_shank = n_channels % kContactsPerShank == 0 ? kContactsPerShank : n_channels;
    Probe probe;
    probe.name = "spikeline-default-" + std::to_string(n_channels);
    probe.builtin_default = true;
    probe.contacts.reserve(static_cast<std::size_t>(n_channels));
    for (int channel = 0; channel < n_channels; ++channel) {
        const int shank = channel / per_shank;
        const int within = channel % per_shank;
        const int row = within / 2;
        const int column = within % 2;
        Contact contact;
        contact.shank = shank;
        contact.x_um = shank * kShankPitchUm + column * kColumnPitchUm;
        contact.y_um = row * kRowPitchUm;
        // Appended piecewise: "s" + std::to_string(...) trips GCC 12's false -Wrestrict positive.
        contact.id = std::string("s").append(std::to_string(shank)).append("e").append(std::to_string(within));
        probe.contacts.push_back(std::move(contact));
    }
    return probe;
}

void check_distinct_positions(const Probe& probe, const std::string& where) {
    // Positions closer than this are one place: contact pitches are several micrometres.
    constexpr double kSamePlaceUm = 0.01;
    std::vector<int> order;
    for (int c = 0; c < probe.n_channels(); ++c)
        if (!probe.contacts[static_cast<std::size_t>(c)].excluded)
            order.push_back(c);
    const auto key = [&](int c) {
        const Contact& contact = probe.contacts[static_cast<std::size_t>(c)];
        return std::make_tuple(contact.shank, std::llround(contact.x_um / kSamePlaceUm),
                               std::llround(contact.y_um / kSamePlaceUm));
    };
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key(a) < key(b); });
    std::string shared;
    int n_shared = 0;
    for (std::size_t i = 0; i < order.size();) {
        std::size_t end = i + 1;
        while (end < order.size() && key(order[end]) == key(order[i]))
            ++end;
        if (end - i > 1) {
            ++n_shared;
            if (n_shared <= 5) {
                const Contact& first = probe.contacts[static_cast<std::size_t>(order[i])];
                std::ostringstream text;
                text << "\n  channels";
                for (std::size_t k = i; k < end; ++k)
                    text << (k > i ? ", " : " ") << order[k];
                text << " at x=" << first.x_um << " y=" << first.y_um << " um on shank " << first.shank;
                shared += text.str();
            }
        }
        i = end;
    }
    require(n_shared == 0, where + ": " + std::to_string(n_shared) +
                               " position(s) are shared by several contacts of one shank, so detection would see "
                               "one signal on several channels:" +
                               shared + (n_shared > 5 ? "\n  ..." : "") + "\nfix the contact positions");
}

Probe probe_from_spikeglx_geom_map(const std::string& value, int n_channels, const std::string& where,
                                   const std::vector<int>& saved) {
    const std::string advice = ": pass --probe with the probe's probeinterface JSON instead";
    // The parenthesised groups, in order.
    std::vector<std::string> groups;
    for (std::size_t open = value.find('('); open != std::string::npos; open = value.find('(', open + 1)) {
        const std::size_t close = value.find(')', open);
        require(close != std::string::npos, where + ": ~snsGeomMap has an unclosed '('" + advice);
        groups.push_back(value.substr(open + 1, close - open - 1));
    }
    require(!groups.empty(), where + ": ~snsGeomMap holds no (...) groups" + advice);
    auto split = [](const std::string& text, char separator) {
        std::vector<std::string> parts;
        std::istringstream in(text);
        for (std::string part; std::getline(in, part, separator);)
            parts.push_back(part);
        return parts;
    };
    auto number = [&](const std::string& text, const std::string& what) {
        std::size_t used = 0;
        double parsed = 0;
        try {
            parsed = std::stod(text, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        require(used > 0 && used == text.size() && std::isfinite(parsed),
                where + ": ~snsGeomMap " + what + " '" + text + "' is not a number" + advice);
        return parsed;
    };

    const std::vector<std::string> header = split(groups.front(), ',');
    require(header.size() >= 2, where + ": ~snsGeomMap header (" + groups.front() +
                                    ") should be (part,shanks[,shank_pitch,shank_width])" + advice);
    const int n_shanks = static_cast<int>(number(header[1], "shank count"));
    const double shank_pitch_um = header.size() >= 3 ? number(header[2], "shank pitch") : 0.0;
    // SpikeGLX lists the saved channels only, in file order. A map with an entry per acquired channel (as some tools
    // write) is narrowed to the saved ones (ascending; the sync channel has no entry).
    std::vector<std::size_t> entries;
    const bool one_per_saved_channel = static_cast<int>(groups.size()) - 1 == n_channels;
    for (std::size_t g = 1; g < groups.size(); ++g)
        if (one_per_saved_channel || saved.empty() ||
            std::binary_search(saved.begin(), saved.end(), static_cast<int>(g - 1)))
            entries.push_back(g);
    require(static_cast<int>(entries.size()) == n_channels,
            where + ": ~snsGeomMap describes " + std::to_string(entries.size()) +
                " saved channels but the recording has " + std::to_string(n_channels) + " neural channels" + advice);

    Probe probe;
    probe.name = header[0] + " (SpikeGLX ~snsGeomMap)";
    for (std::size_t g : entries) {
        const std::vector<std::string> fields = split(groups[g], ':');
        require(fields.size() == 4,
                where + ": ~snsGeomMap entry (" + groups[g] + ") should be (shank:x:z:used)" + advice);
        Contact contact;
        const double shank = number(fields[0], "shank");
        require(shank >= 0 && shank == std::floor(shank) && (n_shanks <= 0 || shank < n_shanks),
                where + ": ~snsGeomMap entry (" + groups[g] + ") names shank " + fields[0] + " of " +
                    std::to_string(n_shanks) + advice);
        contact.shank = static_cast<int>(shank);
        contact.x_um = contact.shank * shank_pitch_um + number(fields[1], "x");
        contact.y_um = number(fields[2], "z");
        contact.excluded = number(fields[3], "used flag") == 0;
        contact.id = std::string("c").append(std::to_string(g - 1));
        probe.contacts.push_back(std::move(contact));
    }
    check_distinct_positions(probe, where + ": ~snsGeomMap");
    return probe;
}

Probe read_probeinterface(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in.is_open())
        fail(path, "cannot read the probe file: check that it exists and is readable");
    json document;
    try {
        document = json::parse(in);
    } catch (const json::exception& e) { // parse_error, and out_of_range for a number no double holds
        fail(path, std::string("not valid JSON: ") + e.what());
    }

    std::vector<WiredContact> wired;
    std::vector<std::string> names;
    try {
        if (!document.is_object())
            fail(path, "the top level is not a JSON object: is this a probeinterface JSON file?");
        const json& probes = required_field(document, "probes", path, "the file");
        if (!probes.is_array() || probes.empty())
            fail(path, "\"probes\" must be a non-empty list");
        std::map<std::pair<std::size_t, std::string>, int> shanks;
        std::size_t contacts_before = 0;
        for (std::size_t p = 0; p < probes.size(); ++p) {
            read_probe_contacts(probes[p], p, contacts_before, path, shanks, wired);
            contacts_before += probes[p].at("contact_positions").size();
            if (const std::string name = probe_name(probes[p]); !name.empty())
                names.push_back(name);
        }
    } catch (const json::exception& e) {
        fail(path, std::string("unexpected probeinterface structure: ") + e.what());
    }

    // Put every connected contact at its channel; each of 0..n-1 must be wired exactly once.
    const std::size_t n_channels = wired.size();
    if (n_channels == 0)
        fail(path, "no contact is connected to a recording channel (all device_channel_indices are -1)");
    std::vector<const WiredContact*> by_channel(n_channels, nullptr);
    for (const WiredContact& entry : wired) {
        if (static_cast<unsigned long long>(entry.channel) >= n_channels)
            fail(path, entry.origin + " is wired to channel " + std::to_string(entry.channel) + " but only " +
                           std::to_string(n_channels) + " contacts are connected: channels 0.." +
                           std::to_string(n_channels - 1) + " must each be wired exactly once");
        const WiredContact*& slot = by_channel[static_cast<std::size_t>(entry.channel)];
        if (slot != nullptr)
            fail(path, "channel " + std::to_string(entry.channel) + " is wired twice (" + slot->origin + " and " +
                           entry.origin + "): fix device_channel_indices");
        slot = &entry;
    }
    // With n entries in n slots and no duplicates, no slot is empty; checked anyway for a clear message.
    for (std::size_t channel = 0; channel < n_channels; ++channel)
        if (by_channel[channel] == nullptr)
            fail(path,
                 "channel " + std::to_string(channel) + " is not wired to any contact: fix device_channel_indices");

    Probe probe;
    for (std::size_t i = 0; i < names.size(); ++i)
        probe.name.append(i > 0 ? "+" : "").append(names[i]);
    probe.contacts.reserve(n_channels);
    for (const WiredContact* entry : by_channel)
        probe.contacts.push_back(entry->contact);
    check_distinct_positions(probe, path.string());
    return probe;
}

namespace {

/// probeinterface's schema requires model_name and manufacturer: a Neuropixels part number (the first word of the
/// names SpikeGLX and Open Ephys geometry get) is IMEC's model; other probes keep their name, maker unknown.
json probe_annotations(const Probe& probe) {
    const std::string first_word = probe.name.substr(0, probe.name.find(' '));
    const bool neuropixels = !first_word.empty() && neuropixels_model(first_word, std::nullopt).has_value();
    const std::string manufacturer = neuropixels ? "IMEC" : probe.builtin_default ? "spikeline" : "";
    return {
        {"name", probe.name}, {"model_name", neuropixels ? first_word : probe.name}, {"manufacturer", manufacturer}};
}

} // namespace

void write_probeinterface(const Probe& probe, const std::filesystem::path& path) {
    json positions = json::array();
    json plane_axes = json::array();
    json shapes = json::array();
    json shape_params = json::array();
    json channels = json::array();
    json ids = json::array();
    json shank_ids = json::array();
    for (std::size_t c = 0; c < probe.contacts.size(); ++c) {
        const Contact& contact = probe.contacts[c];
        positions.push_back({contact.x_um, contact.y_um});
        plane_axes.push_back(json::array({json::array({1, 0}), json::array({0, 1})}));
        shapes.push_back("circle");
        shape_params.push_back({{"radius", kContactRadiusUm}});
        channels.push_back(c);
        ids.push_back(contact.id);
        shank_ids.push_back(std::to_string(contact.shank));
    }
    json probe_json = {
        {"ndim", 2},
        {"si_units", "um"},
        {"annotations", probe_annotations(probe)},
        {"contact_annotations", json::object()},
        {"contact_positions", std::move(positions)},
        {"contact_plane_axes", std::move(plane_axes)},
        {"contact_shapes", std::move(shapes)},
        {"contact_shape_params", std::move(shape_params)},
        {"device_channel_indices", std::move(channels)},
        {"contact_ids", std::move(ids)},
        {"shank_ids", std::move(shank_ids)},
    };
    const json document = {
        {"specification", "probeinterface"},
        {"version", "0.2.21"},
        {"probes", json::array({std::move(probe_json)})},
    };
    AtomicFile file(path);
    file.stream() << document.dump(2) << "\n";
    file.commit();
}

std::vector<std::vector<int>> neighbours_within(const Probe& probe, double radius_um) {
    const int n = probe.n_channels();
    std::vector<std::vector<int>> neighbours(static_cast<std::size_t>(n));
    std::vector<std::pair<long long, int>> candidates; // (distance in pm, channel): equal distances tie by index
    for (int c = 0; c < n; ++c) {
        candidates.clear();
        const int shank = probe.contacts[static_cast<std::size_t>(c)].shank;
        for (int other = 0; other < n; ++other) {
            if (other == c || probe.contacts[static_cast<std::size_t>(other)].shank != shank)
                continue;
            const double distance = probe.distance_um(c, other);
            if (distance <= radius_um + kDistanceToleranceUm)
                candidates.emplace_back(std::llround(distance * 1e6), other);
        }
        std::sort(candidates.begin(), candidates.end());
        auto& list = neighbours[static_cast<std::size_t>(c)];
        list.reserve(candidates.size());
        for (const auto& candidate : candidates)
            list.push_back(candidate.second);
    }
    return neighbours;
}

} // namespace spikeline::probe
