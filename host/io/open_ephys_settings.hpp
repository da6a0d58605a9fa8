#pragma once
// Open Ephys settings.xml: the probes the Neuropixels source processors (Neuropix-PXI, OneBox, ONIX Source) describe,
// with each probe channel's electrode position. The Neuropix-PXI and OneBox plugins write, per probe, an NP_PROBE
// element holding CHANNELS (per channel "bank" or "bank:shank"), ELECTRODE_XPOS and ELECTRODE_YPOS (per channel, in
// um), keyed CH<channel>, or CH<channel>_<shank> for the four per-shank streams of a quad-base probe. ONIX writes the
// electrode of each channel (SELECTED_ELECTRODES) in NEUROPIXELSV1E, or PROBE0 / PROBE1 of NEUROPIXELSV2E; positions
// then come from the probe type's documented layout (NP1.0, NP2.0 single and four-shank).
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace spikeline::io {

/// One probe channel's electrode as settings.xml places it.
struct OpenEphysSite {
    double x_um = 0;
    double y_um = 0;
    int shank = 0;
    int bank = 0;
};

/// One NP_PROBE of settings.xml (for a quad-base probe: one of its four per-shank entries).
struct OpenEphysProbe {
    std::string processor;     ///< the source processor's name, e.g. "Neuropix-PXI" or "OneBox"
    std::string node_id;       ///< its nodeId (the number in the stream folder names, e.g. 100)
    std::string part_number;   ///< probe_part_number, e.g. "NP2014"
    std::string model;         ///< probe_name, e.g. "Neuropixels 2.0 - Multishank"
    std::string serial_number; ///< probe_serial_number
    /// The stream name its data streams are named after ("ProbeA" for "ProbeA-AP" / "ProbeA-LFP", "ProbeC-1" for a
    /// quad-base shank, "PortA-Neuropixels2.0eHeadstage-Neuropixels2.0-Probe0" for ONIX); empty when settings.xml
    /// lists no streams (GUI before 0.6).
    std::string stream_base;
    /// By probe channel (0-based); channels settings.xml omits are absent, and all are for an ONIX probe type without
    /// a documented layout here.
    std::map<int, OpenEphysSite> sites;
};

/// Reads the enabled Neuropixels probes of a settings.xml, in the order the file lists them. Throws InputError when
/// the file is unreadable, is not well-formed XML, or holds a malformed CHANNELS / ELECTRODE_XPOS / ELECTRODE_YPOS.
std::vector<OpenEphysProbe> read_open_ephys_probes(const std::filesystem::path& settings_xml);

/// The probe whose data `stream_name` (a structure.oebin stream_name, e.g. "ProbeA-AP") carries, from the processor
/// `processor` (its name; empty: any) with node id `node_id` (empty: any). A name ending in -AP or -LFP belongs to
/// the probe named without it. When settings.xml lists no stream names and the processor has one probe, that one.
/// nullptr when none matches.
const OpenEphysProbe* find_open_ephys_probe(const std::vector<OpenEphysProbe>& probes, const std::string& stream_name,
                                            const std::string& processor, const std::string& node_id);

} // namespace spikeline::io
