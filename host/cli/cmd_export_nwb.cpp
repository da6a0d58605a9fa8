#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "export/nwb_writer.hpp"
#include "util/errors.hpp"
#include "util/memory.hpp"

#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>

namespace spikeline::cli {

namespace po = boost::program_options;

void add_nwb_session_options(po::options_description& options, exporting::NwbExportOptions& nwb) {
    options.add_options() //
        ("session-description", po::value(&nwb.session_description)->default_value(nwb.session_description),
         "NWB session_description") //
        ("session-start", po::value(&nwb.session_start_time),
         "NWB session_start_time, ISO 8601 (default: the recording's modification time, UTC)") //
        ("identifier", po::value(&nwb.identifier), "NWB identifier (default: a random UUID)")  //
        ("location", po::value(&nwb.location)->default_value(nwb.location),
         "brain area of the electrodes (electrodes table, electrode groups)")      //
        ("experimenter", po::value(&nwb.experimenter), "NWB general/experimenter") //
        ("lab", po::value(&nwb.lab), "NWB general/lab")                            //
        ("institution", po::value(&nwb.institution), "NWB general/institution");
}

void print_nwb_summary(const std::filesystem::path& out, const exporting::NwbExportSummary& summary) {
    std::printf("  nwb          %s: %zu units, %llu spikes, %d electrodes on %d shank(s)%s\n", out.c_str(),
                summary.units, static_cast<unsigned long long>(summary.spikes), summary.electrodes, summary.shanks,
                summary.raw_frames > 0 ? (", raw data " + std::to_string(summary.raw_frames) + " frames").c_str() : "");
}

int cmd_export_nwb(int argc, char** argv) {
    std::string dir, out;
    bool overwrite = false, quiet = false;
    exporting::NwbExportOptions nwb;
    po::options_description visible(
        "spikeline export-nwb SORT_DIR --out FILE.nwb [options]\n\n"
        "Writes a sort folder (spikeline sort or stream; curated in Phy or not) as an NWB 2.7 file: the Units table "
        "(spike times, electrodes, mean waveforms, every cluster_<metric>.tsv as a column), the electrodes table "
        "with the probe's positions, one electrode group per shank, the Device and the session metadata; with "
        "--raw also the recording as a chunked, gzip-compressed ElectricalSeries. Memory stays bounded whatever "
        "the recording's length.\n\noptions");
    visible.add_options()                                                                                           //
        ("help,h", "show this help")                                                                                //
        ("out,o", po::value(&out)->required(), "the NWB file to write")                                             //
        ("raw", po::bool_switch(&nwb.raw), "also write the raw recording (params.py's dat_path)")                   //
        ("raw-gzip", po::value(&nwb.deflate_level)->default_value(nwb.deflate_level), "gzip level of the raw data") //
        ("overwrite", po::bool_switch(&overwrite), "replace FILE.nwb when it exists")                               //
        ("quiet,q", po::bool_switch(&quiet), "no summary");
    add_nwb_session_options(visible, nwb);
    po::options_description all;
    all.add(visible).add_options()("dir", po::value(&dir));
    po::positional_options_description positional;
    positional.add("dir", 1);
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, all, positional, vm))
        return 0;
    require(!dir.empty(), "no sort folder given: spikeline export-nwb SORT_DIR --out FILE.nwb");
    require(overwrite || !std::filesystem::exists(out), out + " exists: choose another name or pass --overwrite");
    require(!std::filesystem::is_directory(out), out + " is a folder: give the NWB file's name");
    const exporting::NwbExportSummary summary = exporting::export_nwb(dir, out, nwb);
    if (!quiet) {
        std::printf("spikeline export-nwb %s\n", dir.c_str());
        print_nwb_summary(out, summary);
        std::printf("  memory       %.0f MB peak\n", static_cast<double>(peak_rss_bytes()) / 1e6);
    }
    return 0;
}

} // namespace spikeline::cli
