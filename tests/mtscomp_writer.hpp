#pragma once
// A small mtscomp writer for tests, written from the format's description (int-brain-lab/mtscomp README and .ch
// fields) independently of the reader: NAME.cbin holds one zlib stream per chunk of the int16 differences along time
// (first frame of the chunk kept) and, optionally, along channels (first channel kept), stored channel by channel
// ("F") or frame by frame ("C"); NAME.ch is the JSON index.
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace spikeline::testing {

struct CbinLayout {
    std::size_t chunk_frames = 300;
    bool channel_major = true; ///< chunk_order "F" (mtscomp's default) or "C"
    bool time_diff = true;
    bool spatial_diff = false;
};

/// Compresses interleaved int16 samples (n_channels per frame) into dir/NAME.cbin + dir/NAME.ch; returns the .cbin.
inline std::filesystem::path write_cbin(const std::filesystem::path& dir, const std::string& name,
                                        const std::vector<std::int16_t>& samples, int n_channels, double sample_rate,
                                        const CbinLayout& layout = {}) {
    const auto channels = static_cast<std::size_t>(n_channels);
    const std::size_t n_frames = samples.size() / channels;
    const std::filesystem::path cbin = dir / (name + ".cbin");
    std::ofstream out(cbin, std::ios::binary);
    std::vector<std::uint64_t> bounds{0}, offsets{0};
    for (std::size_t first = 0; first < n_frames; first += layout.chunk_frames) {
        const std::size_t frames = std::min(layout.chunk_frames, n_frames - first);
        // Differences in 16-bit wrap-around arithmetic, as numpy takes them on int16 arrays.
        auto at = [&](std::size_t f, std::size_t c) {
            return static_cast<std::uint16_t>(samples[(first + f) * channels + c]);
        };
        std::vector<std::uint16_t> diff(frames * channels);
        for (std::size_t f = 0; f < frames; ++f)
            for (std::size_t c = 0; c < channels; ++c)
                diff[f * channels + c] =
                    layout.time_diff && f > 0 ? static_cast<std::uint16_t>(at(f, c) - at(f - 1, c)) : at(f, c);
        if (layout.spatial_diff)
            for (std::size_t f = 0; f < frames; ++f)
                for (std::size_t c = channels - 1; c > 0; --c)
                    diff[f * channels + c] =
                        static_cast<std::uint16_t>(diff[f * channels + c] - diff[f * channels + c - 1]);
        std::vector<std::uint16_t> stored(diff.size());
        for (std::size_t f = 0; f < frames; ++f)
            for (std::size_t c = 0; c < channels; ++c)
                stored[layout.channel_major ? c * frames + f : f * channels + c] = diff[f * channels + c];
        uLongf size = compressBound(static_cast<uLong>(stored.size() * 2));
        std::vector<Bytef> compressed(size);
        if (compress2(compressed.data(), &size, reinterpret_cast<const Bytef*>(stored.data()),
                      static_cast<uLong>(stored.size() * 2), Z_DEFAULT_COMPRESSION) != Z_OK)
            throw std::runtime_error("zlib compress2 failed");
        out.write(reinterpret_cast<const char*>(compressed.data()), static_cast<std::streamsize>(size));
        bounds.push_back(first + frames);
        offsets.push_back(offsets.back() + size);
    }
    const nlohmann::json header = {
        {"version", "1.0"},
        {"algorithm", "zlib"},
        {"comp_level", -1},
        {"do_time_diff", layout.time_diff},
        {"do_spatial_diff", layout.spatial_diff},
        {"dtype", "int16"},
        {"n_channels", n_channels},
        {"sample_rate", sample_rate},
        {"chunk_bounds", bounds},
        {"chunk_offsets", offsets},
        {"chunk_order", layout.channel_major ? "F" : "C"},
        {"shape", {n_frames, channels}},
    };
    std::ofstream(dir / (name + ".ch")) << header.dump(2);
    return cbin;
}

} // namespace spikeline::testing
