#include "io/mtscomp.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <zlib.h>

namespace spikeline::io {

namespace {

/// One decompressed chunk is held in memory: refuse headers that would make that unbounded.
constexpr std::uint64_t kMaxChunkBytes = std::uint64_t{1} << 30;

/// The non-negative integers of an array field, strictly increasing from 0, with at least two entries.
std::vector<std::uint64_t> increasing_from_zero(const nlohmann::json& header, const std::string& key,
                                                const std::string& where) {
    require(header.contains(key) && header[key].is_array(),
            where + ": missing array " + key + ": is it an mtscomp .ch?");
    std::vector<std::uint64_t> values;
    for (const auto& item : header[key]) {
        require(item.is_number_unsigned() || (item.is_number_integer() && item.get<std::int64_t>() >= 0),
                where + ": " + key + " holds " + item.dump() + ", not a non-negative integer");
        const auto value = item.get<std::uint64_t>();
        require(values.empty() ? value == 0 : value > values.back(),
                where + ": " + key + " must start at 0 and increase (entry " + std::to_string(values.size()) + " is " +
                    std::to_string(value) + "): the .ch is damaged");
        values.push_back(value);
    }
    require(values.size() >= 2, where + ": " + key + " lists no chunk: the .ch is damaged or describes no data");
    return values;
}

bool required_flag(const nlohmann::json& header, const std::string& key, const std::string& where) {
    require(header.contains(key) && header[key].is_boolean(),
            where + ": missing true/false field " + key + ": is it an mtscomp .ch?");
    return header[key].get<bool>();
}

/// Undoes the differences along channels (within each frame) and then along time (per channel), modulo 2^16 as
/// the int16 differences were taken; frames is time-major.
void undo_differences(std::vector<std::uint16_t>& frames, std::size_t n_frames, std::size_t n_channels,
                      bool spatial_diff, bool time_diff) {
    if (spatial_diff)
        for (std::size_t f = 0; f < n_frames; ++f)
            for (std::size_t c = 1; c < n_channels; ++c)
                frames[f * n_channels + c] =
                    static_cast<std::uint16_t>(frames[f * n_channels + c] + frames[f * n_channels + c - 1]);
    if (time_diff)
        for (std::size_t f = 1; f < n_frames; ++f)
            for (std::size_t c = 0; c < n_channels; ++c)
                frames[f * n_channels + c] =
                    static_cast<std::uint16_t>(frames[f * n_channels + c] + frames[(f - 1) * n_channels + c]);
}

class MtscompSource final : public RecordingSource {
public:
    MtscompSource(RecordingInfo info, MtscompHeader header) : info_(std::move(info)), header_(std::move(header)) {
        require(info_.file_channels() == header_.n_channels && info_.n_frames == header_.n_frames(),
                info_.data_path.string() + ": the recording's description disagrees with its .ch");
        in_.open(info_.data_path, std::ios::binary);
        require(in_.is_open(), "cannot open " + info_.data_path.string() + " for reading: check its permissions");
    }

    const RecordingInfo& info() const override { return info_; }

    std::size_t read(std::int16_t* dst, std::size_t max_frames) override {
        const auto channels = static_cast<std::size_t>(info_.n_channels);
        const auto stored_channels = static_cast<std::size_t>(header_.n_channels);
        std::size_t done = 0;
        while (done < max_frames) {
            if (position_ == chunk_frames_) {
                if (next_chunk_ + 1 >= header_.chunk_bounds.size())
                    break;
                load_chunk(next_chunk_++);
            }
            const std::size_t frames = std::min(max_frames - done, chunk_frames_ - position_);
            for (std::size_t f = 0; f < frames; ++f) {
                const std::uint16_t* frame = &chunk_[(position_ + f) * stored_channels];
                std::int16_t* out = dst + (done + f) * channels;
                for (std::size_t c = 0; c < channels; ++c)
                    out[c] = static_cast<std::int16_t>(frame[c]);
            }
            position_ += frames;
            done += frames;
        }
        return done;
    }

private:
    void load_chunk(std::size_t index) {
        const std::string where = info_.data_path.string() + ": chunk " + std::to_string(index) + " of " +
                                  std::to_string(header_.chunk_bounds.size() - 1);
        const std::uint64_t n_frames = header_.chunk_bounds[index + 1] - header_.chunk_bounds[index];
        const auto n_channels = static_cast<std::size_t>(header_.n_channels);
        const std::uint64_t stored_bytes = header_.chunk_offsets[index + 1] - header_.chunk_offsets[index];
        compressed_.resize(static_cast<std::size_t>(stored_bytes));
        in_.seekg(static_cast<std::streamoff>(header_.chunk_offsets[index]));
        in_.read(reinterpret_cast<char*>(compressed_.data()), static_cast<std::streamsize>(stored_bytes));
        require(in_.gcount() == static_cast<std::streamsize>(stored_bytes),
                where + ": the file ended early: it is truncated or was modified while being read");

        const std::size_t values = static_cast<std::size_t>(n_frames) * n_channels;
        stored_.resize(values);
        z_stream stream{};
        require(inflateInit(&stream) == Z_OK, where + ": zlib could not start (out of memory?)");
        stream.next_in = compressed_.data();
        stream.avail_in = static_cast<uInt>(stored_bytes);
        stream.next_out = reinterpret_cast<Bytef*>(stored_.data());
        stream.avail_out = static_cast<uInt>(values * sizeof(std::uint16_t));
        const int status = inflate(&stream, Z_FINISH);
        const std::string message = stream.msg ? stream.msg : "";
        const bool exact = status == Z_STREAM_END && stream.avail_out == 0 && stream.avail_in == 0;
        const uLong produced = stream.total_out;
        inflateEnd(&stream);
        if (!exact) {
            std::string why;
            if (status == Z_DATA_ERROR)
                why = "it is not a valid zlib stream (" + message + ")";
            else if (status == Z_STREAM_END)
                why = "it decompresses to " + std::to_string(produced) + " bytes, not the " +
                      std::to_string(values * sizeof(std::uint16_t)) + " of its " + std::to_string(n_frames) +
                      " frames of " + std::to_string(n_channels) + " int16 channels";
            else
                why = "its zlib stream is cut short or longer than its frames (" + std::to_string(n_frames) +
                      " frames of " + std::to_string(n_channels) + " int16 channels)";
            throw InputError(where + " is corrupt: " + why +
                             ": the .cbin or its .ch is damaged; copy them again (mtscomp's mtsdecomp can check them)");
        }
        chunk_.resize(values);
        // "F" order stores the chunk channel by channel; the reader delivers frames.
        if (header_.channel_major) {
            const auto frames = static_cast<std::size_t>(n_frames);
            for (std::size_t c = 0; c < n_channels; ++c)
                for (std::size_t f = 0; f < frames; ++f)
                    chunk_[f * n_channels + c] = stored_[c * frames + f];
        } else {
            chunk_.swap(stored_);
        }
        undo_differences(chunk_, static_cast<std::size_t>(n_frames), n_channels, header_.spatial_diff,
                         header_.time_diff);
        chunk_frames_ = static_cast<std::size_t>(n_frames);
        position_ = 0;
    }

    RecordingInfo info_;
    MtscompHeader header_;
    std::ifstream in_;
    std::size_t next_chunk_ = 0;
    std::size_t chunk_frames_ = 0;
    std::size_t position_ = 0;
    std::vector<unsigned char> compressed_;
    std::vector<std::uint16_t> stored_;
    std::vector<std::uint16_t> chunk_; ///< the current chunk, time-major, after undoing the differences
};

} // namespace

std::filesystem::path mtscomp_header_path(const std::filesystem::path& cbin_path) {
    std::filesystem::path ch_path = cbin_path;
    return ch_path.replace_extension(".ch");
}

MtscompHeader read_mtscomp_header(const std::filesystem::path& cbin_path) {
    const std::filesystem::path ch_path = mtscomp_header_path(cbin_path);
    const std::string where = ch_path.string();
    std::error_code ec;
    require(std::filesystem::is_regular_file(ch_path, ec),
            cbin_path.string() + ": no " + ch_path.filename().string() +
                " beside it: a compressed .cbin needs the .ch file written with it (its chunk index)");
    std::ifstream in(ch_path);
    require(in.is_open(), "cannot read " + where + ": check its permissions");
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw InputError(where + " is not valid JSON (" + e.what() + "): is it the mtscomp .ch of " +
                         cbin_path.filename().string() + "?");
    }
    require(header.is_object(), where + " is not a JSON object: is it an mtscomp .ch?");

    if (header.contains("version")) {
        const std::string version = header["version"].is_string() ? header["version"].get<std::string>() : "";
        require(version.rfind("1.", 0) == 0,
                where + ": format version " + header["version"].dump() + " is not supported (only 1.x)");
    }
    const std::string algorithm = header.value("algorithm", std::string("zlib"));
    require(algorithm == "zlib", where + ": compression algorithm '" + algorithm +
                                     "' is not supported (only zlib): decompress it with mtscomp's mtsdecomp first");
    require(header.contains("dtype") && header["dtype"].is_string(), where + ": missing dtype: is it an mtscomp .ch?");
    const std::string dtype = header["dtype"].get<std::string>();
    require(dtype == "int16" || dtype == "<i2" || dtype == "i2",
            where + ": dtype '" + dtype +
                "' is not supported (spikeline reads int16 recordings): decompress it with mtsdecomp and convert it");
    require(header.contains("n_channels") && header["n_channels"].is_number_integer() &&
                header["n_channels"].get<std::int64_t>() > 0 && header["n_channels"].get<std::int64_t>() <= 65536,
            where + ": n_channels must be an integer from 1 to 65536");
    require(header.contains("sample_rate") && header["sample_rate"].is_number() &&
                header["sample_rate"].get<double>() > 0,
            where + ": sample_rate must be a positive number");

    MtscompHeader result;
    result.n_channels = header["n_channels"].get<int>();
    result.sample_rate = header["sample_rate"].get<double>();
    result.chunk_bounds = increasing_from_zero(header, "chunk_bounds", where);
    result.chunk_offsets = increasing_from_zero(header, "chunk_offsets", where);
    require(result.chunk_bounds.size() == result.chunk_offsets.size(),
            where + ": chunk_bounds lists " + std::to_string(result.chunk_bounds.size() - 1) +
                " chunks but chunk_offsets " + std::to_string(result.chunk_offsets.size() - 1) +
                ": the .ch is damaged");
    // Files written before mtscomp stored chunk_order kept numpy's default, frame by frame.
    const std::string order = header.value("chunk_order", std::string("C"));
    require(order == "F" || order == "C", where + ": chunk_order '" + order + "' is not supported (F or C)");
    result.channel_major = order == "F";
    result.time_diff = required_flag(header, "do_time_diff", where);
    result.spatial_diff = required_flag(header, "do_spatial_diff", where);

    const auto frame_bytes = static_cast<std::uint64_t>(result.n_channels) * 2;
    for (std::size_t i = 0; i + 1 < result.chunk_bounds.size(); ++i) {
        const std::uint64_t frames = result.chunk_bounds[i + 1] - result.chunk_bounds[i];
        require(frames <= kMaxChunkBytes / frame_bytes &&
                    result.chunk_offsets[i + 1] - result.chunk_offsets[i] <= kMaxChunkBytes,
                where + ": chunk " + std::to_string(i) +
                    " is larger than 1 GiB: recompress with shorter chunks (mtscomp -c SECONDS)");
    }

    require(std::filesystem::is_regular_file(cbin_path, ec), cbin_path.string() + ": no such file: check the path");
    const std::uintmax_t size = std::filesystem::file_size(cbin_path, ec);
    require(!ec, cbin_path.string() + ": cannot read its size: " + ec.message());
    require(
        size == result.chunk_offsets.back(),
        cbin_path.string() + " is " + std::to_string(size) + " bytes but " + ch_path.filename().string() +
            " says its chunks end at byte " + std::to_string(result.chunk_offsets.back()) +
            (size < result.chunk_offsets.back() ? ": the .cbin is truncated" : ": the .ch belongs to another file"));
    return result;
}

std::unique_ptr<RecordingSource> open_mtscomp(RecordingInfo info, MtscompHeader header) {
    return std::make_unique<MtscompSource>(std::move(info), std::move(header));
}

} // namespace spikeline::io
