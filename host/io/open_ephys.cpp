#include "io/open_ephys.hpp"

#include "io/raw.hpp"
#include "util/errors.hpp"

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

namespace spikeline::io {
namespace {

std::filesystem::path oebin_path(const std::filesystem::path& path) {
    return std::filesystem::is_directory(path) ? path / "structure.oebin" : path;
}

std::string folder_of(const nlohmann::json& entry) {
    std::string folder = entry.value("folder_name", "");
    while (!folder.empty() && (folder.back() == '/' || folder.back() == '\\'))
        folder.pop_back();
    return folder;
}

} // namespace

bool is_open_ephys(const std::filesystem::path& path) {
    std::error_code error;
    return path.filename() == "structure.oebin" || std::filesystem::exists(path / "structure.oebin", error);
}

RecordingInfo read_open_ephys_info(const std::filesystem::path& path, const std::string& stream) {
    const std::filesystem::path oebin = oebin_path(path);
    const std::string where = "Open Ephys recording " + oebin.string();
    std::ifstream in(oebin);
    require(in.good(), where + ": cannot read the file");
    nlohmann::json root;
    try {
        root = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw InputError(where + ": invalid JSON (" + e.what() + ")");
    }
    require(root.is_object() && root.contains("continuous") && root["continuous"].is_array() &&
                !root["continuous"].empty(),
            where + ": no \"continuous\" streams listed (is it a recording folder of the binary format?)");
    const nlohmann::json& streams = root["continuous"];
    const nlohmann::json* chosen = nullptr;
    std::string names;
    for (const nlohmann::json& entry : streams) {
        require(entry.is_object(), where + ": an entry of \"continuous\" is not an object");
        const std::string folder = folder_of(entry);
        const std::string name = entry.value("stream_name", "");
        names += (names.empty() ? "" : ", ") + folder;
        if (chosen == nullptr && (stream.empty() || stream == folder || stream == name))
            chosen = &entry;
    }
    require(chosen != nullptr, where + ": no stream '" + stream + "' (streams: " + names + ")");
    const nlohmann::json& entry = *chosen;
    RecordingInfo info;
    try {
        info.n_channels = entry.at("num_channels").get<int>();
        info.sample_rate = entry.at("sample_rate").get<double>();
    } catch (const nlohmann::json::exception&) {
        throw InputError(where + ": stream '" + folder_of(entry) +
                         "' needs numeric \"num_channels\" and \"sample_rate\"");
    }
    require(info.n_channels > 0 && info.n_channels <= 65536,
            where + ": num_channels must be in 1..65536, not " + std::to_string(info.n_channels));
    require(std::isfinite(info.sample_rate) && info.sample_rate > 0, where + ": sample_rate must be positive");
    // Headstage channels share one gain; bit_volts of the first channel is microvolts per bit (0: unknown).
    if (entry.contains("channels") && entry["channels"].is_array() && !entry["channels"].empty() &&
        entry["channels"][0].is_object() && entry["channels"][0].contains("bit_volts") &&
        entry["channels"][0]["bit_volts"].is_number())
        info.microvolts_per_bit = entry["channels"][0]["bit_volts"].get<double>();
    require(std::isfinite(info.microvolts_per_bit) && info.microvolts_per_bit >= 0,
            where + ": bit_volts must be a positive number");
    info.data_path = oebin.parent_path() / "continuous" / folder_of(entry) / "continuous.dat";
    std::error_code error;
    const auto size = std::filesystem::file_size(info.data_path, error);
    require(!error, where + ": cannot read " + info.data_path.string() + " (" + error.message() + ")");
    const std::uint64_t frame_bytes = 2ull * static_cast<std::uint64_t>(info.n_channels);
    require(size > 0 && size % frame_bytes == 0, where + ": " + info.data_path.string() + " holds " +
                                                     std::to_string(size) + " bytes, not a whole number of " +
                                                     std::to_string(info.n_channels) + "-channel int16 frames");
    info.n_frames = size / frame_bytes;
    info.format = "open-ephys";
    return info;
}

std::unique_ptr<RecordingSource> open_open_ephys(const std::filesystem::path& path, const std::string& stream) {
    return open_interleaved_int16(read_open_ephys_info(path, stream));
}

} // namespace spikeline::io
