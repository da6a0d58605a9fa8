#pragma once
// Command-line options shared by the commands that detect (detect, bench).
#include "backend/detect_settings.hpp"

#include <boost/program_options.hpp>
#include <string>

namespace spikeline::cli {

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
