#pragma once
// NWB 2.x export of a sort folder (docs/FORMATS.md §15): the Units table (spike times, electrodes, mean waveforms,
// every cluster_<metric>.tsv as a column), the electrodes table with the probe's positions, one electrode group per
// shank, the Device, session metadata and, on request, the raw recording as a chunked, compressed ElectricalSeries.
// Written with HDF5's C library in bounded memory (spikes and samples stream through), to a temporary renamed into
// place when complete.
#include <cstdint>
#include <filesystem>
#include <string>

namespace spikeline::exporting {

/// What export_nwb writes besides the sort folder's own content.
struct NwbExportOptions {
    std::string session_description = "spike sorting by spikeline";
    std::string identifier;           ///< empty: a random UUID
    std::string session_start_time;   ///< ISO 8601; empty: the recording's modification time (UTC)
    std::string location = "unknown"; ///< brain area of the electrodes (the electrodes table's location column)
    std::string experimenter;         ///< optional
    std::string lab, institution;     ///< optional
    bool raw = false;                 ///< also write the recording params.py names as an ElectricalSeries
    int deflate_level = 4;            ///< gzip level of the raw data (1-9)
};

/// What export_nwb wrote.
struct NwbExportSummary {
    std::size_t units = 0;
    std::uint64_t spikes = 0;
    int electrodes = 0;
    int shanks = 0;
    std::uint64_t raw_frames = 0; ///< 0 without the raw data
};

/// Writes the sort folder sort_dir (spikeline's Phy folder) as the NWB 2.7 file out. Throws InputError when the folder
/// is not a sort folder or is inconsistent, WriteError (an InputError) when the file cannot be written.
NwbExportSummary export_nwb(const std::filesystem::path& sort_dir, const std::filesystem::path& out,
                            const NwbExportOptions& options);

} // namespace spikeline::exporting
