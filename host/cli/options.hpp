#pragma once
// Command-line parsing shared by the subcommands, and the options of the commands that detect (detect, bench).
#include "backend/detect_settings.hpp"
#include "export/nwb_writer.hpp"
#include "io/recording.hpp"
#include "pipeline/detect_run.hpp"

#include <boost/program_options.hpp>
#include <filesystem>
#include <string>
#include <vector>

namespace spikeline::cli {

/// Parses argv against `all` (visible options plus hidden ones, e.g. positional inputs). On --help prints `visible`
/// and returns false; otherwise checks required options and stores the values, and returns true.
bool parse_command_line(int argc, char** argv, const boost::program_options::options_description& visible,
                        const boost::program_options::options_description& all,
                        const boost::program_options::positional_options_description& positional,
                        boost::program_options::variables_map& vm);

/// The same for commands without positional arguments.
bool parse_command_line(int argc, char** argv, const boost::program_options::options_description& visible,
                        boost::program_options::variables_map& vm);

/// The NWB session options (export-nwb, sort --nwb); defined in cmd_export_nwb.cpp.
void add_nwb_session_options(boost::program_options::options_description& options, exporting::NwbExportOptions& nwb);
/// The summary line of an NWB export.
void print_nwb_summary(const std::filesystem::path& out, const exporting::NwbExportSummary& summary);

struct DetectOptionValues {
    DetectSettings settings;
    std::string polarity = "negative";
    std::string excluded_channels; ///< e.g. "5,10,100:110"
    bool no_common_reference = false;
    bool no_artifact_rejection = false;
};

void add_detect_options(boost::program_options::options_description& options, DetectOptionValues& values);

/// Finishes the settings after parsing (polarity text, flags); throws InputError on bad values.
DetectSettings finish_detect_settings(DetectOptionValues& values);

/// INPUT and how to read it: the options of every command that reads a recording.
struct InputOptionValues {
    std::string input, probe_file, open_ephys_stream;
    int channels = 0;
    double sample_rate = 0, uv_per_bit = 0;
    bool allow_truncated = false;
    bool force_non_neural = false;
    std::string shanks, channels_subset; ///< --shanks / --channels-subset lists, e.g. "0,1" / "0:383"
};

void add_input_options(boost::program_options::options_description& options, InputOptionValues& values);

/// --shanks and --channels-subset, for the commands that call open_selected_input (detect, sort).
void add_channel_selection_options(boost::program_options::options_description& options, InputOptionValues& values);

/// INPUT opened with the probe it was made with, reduced to the channels --shanks or --channels-subset select.
struct SelectedInput {
    std::unique_ptr<io::RecordingSource> source; ///< delivers the selected channels; info().channel_ids their ids
    probe::Probe probe;                          ///< contacts of the selected channels
    std::string probe_origin;
    std::vector<int> channels; ///< the selected (global) channels, ascending; empty: all
};

/// Opens INPUT (open_input), resolves its probe and applies --shanks / --channels-subset. Throws InputError when
/// both are given, a channel or shank does not exist, or the channels processed exceed what the detector takes
/// (HwConfig::max_channels), saying which selections to pass.
SelectedInput open_selected_input(const InputOptionValues& values, const boost::program_options::variables_map& vm,
                                  const std::string& usage);

/// Renumbers --exclude-channels (global ids) into the selection's channels, dropping those outside it.
void exclude_within_selection(DetectSettings& settings, const std::vector<int>& selection);

/// Opens INPUT (after parsing); throws InputError when it is missing or unreadable. Prints the reader's warning (a
/// truncated file read with --allow-truncated) to stderr.
std::unique_ptr<io::RecordingSource>
open_input(const InputOptionValues& values, const boost::program_options::variables_map& vm, const std::string& usage);

/// The files a recording is read from (the path given, its data file and .meta) and the probe file: what an output
/// folder must not replace.
std::vector<std::filesystem::path> input_files(const InputOptionValues& values, const io::RecordingInfo& info);

/// --overwrite, for the commands that write a folder.
void add_overwrite_option(boost::program_options::options_description& options, bool& overwrite);

/// Backend, threads, chunking, FPGA and progress options of the commands that run a backend over a recording.
struct RunOptionValues {
    std::string backend = "cpu";
    int threads = 0; ///< 0: default_threads(); a command may set its own default before add_run_options
    double chunk_ms = 0;
    std::string xclbin;
    unsigned device = 0;
    int buffers = 2;
    std::string kernel;    ///< xrt: spikeline_rtl, spikeline_sort or spikeline_detect (empty: from the xclbin)
    int compute_units = 1; ///< xrt: 0 every one in the xclbin
    int opencl_platform = 0, opencl_device = 0;
    bool quiet = false, progress = false;
};

void add_run_options(boost::program_options::options_description& options, RunOptionValues& values);

/// The run options (chunk size defaulted per backend, progress only on a terminal unless asked).
DetectRunOptions finish_run_options(const RunOptionValues& values, const boost::program_options::variables_map& vm,
                                    DetectOptionValues& detect);

/// Default worker thread count: the machine's cores.
int default_threads();

} // namespace spikeline::cli
