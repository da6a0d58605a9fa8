#pragma once
// Probe geometry in the recording's channel order, read from and written to probeinterface JSON
// (specification "probeinterface", version 0.2.x: probes[] with ndim, si_units, contact_positions,
// contact_shapes, contact_shape_params, contact_ids, shank_ids, device_channel_indices).
#include <filesystem>
#include <string>
#include <vector>

namespace spikeline::probe {

struct Contact {
    double x_um = 0;
    double y_um = 0;
    int shank = 0;
    std::string id;
    bool excluded = false; ///< neither detected nor in the common reference (a reference site, or a bad channel)
};

/// contacts[c] is the contact wired to recording channel c (device_channel_indices resolved).
struct Probe {
    std::string name;
    std::vector<Contact> contacts;
    bool builtin_default = false; ///< default_probe's made-up layout, not the recording's geometry

    int n_channels() const { return static_cast<int>(contacts.size()); }
    int n_shanks() const;
    double distance_um(int a, int b) const;
};

/// The built-in high-density probe: shanks of 128 contacts (8 shanks for 1024 channels), 2 columns 32 um apart,
/// 20 um vertical pitch, shanks 250 um apart. n_channels not divisible by 128 gives one shank.
Probe default_probe(int n_channels = 1024);

/// Reads a probeinterface JSON file (the first probe, or all probes concatenated in device-channel order).
/// Throws InputError on unreadable JSON, missing fields, or channels missing or wired twice.
Probe read_probeinterface(const std::filesystem::path& path);

/// The probe a SpikeGLX .meta describes in its ~snsGeomMap value (SpikeGLX 2023 and later): a header
/// "(part,shanks,shank_pitch_um,shank_width_um)" (the last two may be absent) and one "(shank:x:z:used)" per saved
/// neural channel in file order, x from the shank's left edge, z up the shank, in um. Contacts flagged unused
/// (reference sites, channels turned off in SpikeGLX) stay channels of the file but are marked excluded. SpikeGLX lists
/// the saved channels only; a map with more entries than n_channels is taken as one entry per acquired channel and
/// narrowed to `saved` (snsSaveChanSubset, ascending; empty: all). Throws InputError naming `where` when the value is
/// malformed or does not describe n_channels saved neural channels.
Probe probe_from_spikeglx_geom_map(const std::string& value, int n_channels, const std::string& where,
                                   const std::vector<int>& saved = {});

/// Throws InputError naming `where` and the channels when contacts of one shank share a position (excluded contacts
/// aside): detection would see one signal twice. Both probe readers call it.
void check_distinct_positions(const Probe& probe, const std::string& where);

/// Writes probeinterface JSON atomically; device_channel_indices are 0..n-1.
void write_probeinterface(const Probe& probe, const std::filesystem::path& path);

/// For every channel, the other channels on the same shank within radius_um, nearest first (ties by index).
std::vector<std::vector<int>> neighbours_within(const Probe& probe, double radius_um);

} // namespace spikeline::probe
