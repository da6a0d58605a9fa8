#pragma once
// Command-line parsing shared by the subcommands, and the options of the commands that detect (detect, bench).
#include "backend/detect_settings.hpp"

#include <boost/program_options.hpp>
#include <string>

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

struct DetectOptionValues {
    DetectSettings settings;
    std::string polarity = "negative";
    bool no_common_reference = false;
};

void add_detect_options(boost::program_options::options_description& options, DetectOptionValues& values);

/// Finishes the settings after parsing (polarity text, flags); throws InputError on bad values.
DetectSettings finish_detect_settings(DetectOptionValues& values);

/// Default worker thread count: the machine's cores.
int default_threads();

} // namespace spikeline::cli
