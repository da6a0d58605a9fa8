#include "cli/options.hpp"

#include <iostream>
#include <thread>

namespace spikeline::cli {

namespace po = boost::program_options;

bool parse_command_line(int argc, char** argv, const po::options_description& visible,
                        const po::options_description& all, const po::positional_options_description& positional,
                        po::variables_map& vm) {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
        std::cout << visible << "\n";
        return false;
    }
    po::notify(vm);
    return true;
}

bool parse_command_line(int argc, char** argv, const po::options_description& visible, po::variables_map& vm) {
    return parse_command_line(argc, argv, visible, visible, po::positional_options_description(), vm);
}

void add_detect_options(po::options_description& options, DetectOptionValues& values) {
    DetectSettings& s = values.settings;
    options.add_options()                                                                                    //
        ("band-low", po::value(&s.band_low_hz)->default_value(s.band_low_hz), "band-pass low edge (Hz)")     //
        ("band-high", po::value(&s.band_high_hz)->default_value(s.band_high_hz), "band-pass high edge (Hz)") //
        ("threshold", po::value(&s.threshold_sigma)->default_value(s.threshold_sigma),
         "detection threshold in robust noise sigmas (median|x|/0.6745)") //
        ("polarity", po::value(&values.polarity)->default_value(values.polarity),
         "spike polarity: negative, positive or both")                                                          //
        ("align-ms", po::value(&s.align_ms)->default_value(s.align_ms), "search for the peak after a crossing") //
        ("dead-time-ms", po::value(&s.dead_time_ms)->default_value(s.dead_time_ms),
         "per-channel dead time after a peak") //
        ("dedup-ms", po::value(&s.dedup_ms)->default_value(s.dedup_ms),
         "+- time within which neighbouring detections are merged") //
        ("dedup-radius-um", po::value(&s.dedup_radius_um)->default_value(s.dedup_radius_um),
         "radius within which detections are merged") //
        ("shadow-ms", po::value(&s.shadow_ms)->default_value(s.shadow_ms),
         "after a spike, smaller detections nearby within this time are its lobes (0: off)") //
        ("shadow-ratio", po::value(&s.shadow_ratio)->default_value(s.shadow_ratio),
         "a detection below this fraction of a preceding nearby spike is a lobe") //
        ("warmup-ms", po::value(&s.warmup_ms)->default_value(s.warmup_ms),
         "no detection while the noise estimate settles") //
        ("no-common-reference", po::bool_switch(&values.no_common_reference), "do not subtract the per-shank mean");
}

DetectSettings finish_detect_settings(DetectOptionValues& values) {
    values.settings.polarity = parse_polarity(values.polarity);
    values.settings.common_reference = !values.no_common_reference;
    return values.settings;
}

int default_threads() {
    const unsigned cores = std::thread::hardware_concurrency();
    return cores == 0 ? 1 : static_cast<int>(cores);
}

} // namespace spikeline::cli
