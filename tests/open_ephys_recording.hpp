#pragma once
// An Open Ephys binary recording folder (structure.oebin + one continuous stream) around existing int16 samples.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace spikeline::testing {

/// Writes FOLDER/structure.oebin and FOLDER/continuous/Acquisition_Board-100.Rhythm Data/continuous.dat (a copy of
/// `samples`), one stream "Rhythm Data" of `channels` channels at 0.195 uV/bit.
inline void write_open_ephys_recording(const std::filesystem::path& folder, const std::filesystem::path& samples,
                                       int channels, double sample_rate) {
    const std::filesystem::path data = folder / "continuous" / "Acquisition_Board-100.Rhythm Data";
    std::filesystem::create_directories(data);
    std::filesystem::copy_file(samples, data / "continuous.dat");
    nlohmann::json channel_list = nlohmann::json::array();
    for (int c = 0; c < channels; ++c)
        channel_list.push_back({{"channel_name", "CH" + std::to_string(c + 1)}, {"bit_volts", 0.195}, {"units", "uV"}});
    const nlohmann::json oebin = {{"GUI version", "0.6.7"},
                                  {"continuous",
                                   {{{"folder_name", "Acquisition_Board-100.Rhythm Data/"},
                                     {"sample_rate", sample_rate},
                                     {"stream_name", "Rhythm Data"},
                                     {"num_channels", channels},
                                     {"channels", channel_list}}}},
                                  {"events", nlohmann::json::array()},
                                  {"spikes", nlohmann::json::array()}};
    std::ofstream(folder / "structure.oebin") << oebin.dump(2);
}

} // namespace spikeline::testing
