#include "io/mtscomp.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <array>
#include <deque>
#include <fstream>
#include <future>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <thread>
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

/// An optional text field (fallback when absent); any other type is a damaged header, not an internal error.
std::string text_or(const nlohmann::json& header, const std::string& key, const std::string& fallback,
                    const std::string& where) {
    if (!header.contains(key))
        return fallback;
    require(header[key].is_string(),
            where + ": " + key + " is " + header[key].dump() + ", not text: the .ch is damaged");
    return header[key].get<std::string>();
}

bool required_flag(const nlohmann::json& header, const std::string& key, const std::string& where) {
    require(header.contains(key) && header[key].is_boolean(),
            where + ": missing true/false field " + key + ": is it an mtscomp .ch?");
    return header[key].get<bool>();
}

/// Reads and decompresses chunks of one .cbin; each decoder has its own file handle, so several run in parallel.
class ChunkDecoder {
public:
    ChunkDecoder(std::filesystem::path path, const MtscompHeader& header) : path_(std::move(path)), header_(header) {
        in_.open(path_, std::ios::binary);
        require(in_.is_open(), "cannot open " + path_.string() + " for reading: check its permissions");
    }

    /// Chunk `index`, time-major, with the differences undone.
    std::vector<std::uint16_t> decode(std::size_t index) {
        const std::string where = path_.string() + ": chunk " + std::to_string(index) + " of " +
                                  std::to_string(header_.chunk_bounds.size() - 1);
        const auto n_frames = static_cast<std::size_t>(header_.chunk_bounds[index + 1] - header_.chunk_bounds[index]);
        const auto n_channels = static_cast<std::size_t>(header_.n_channels);
        const std::size_t values = n_frames * n_channels;
        stored_.resize(values);
        inflate_chunk(index, where, n_frames, n_channels);
        std::vector<std::uint16_t> chunk(values);
        if (header_.channel_major) {
            // "F" order stores the chunk channel by channel: transpose into frames, blocks of channels at a time so
            // that both sides stay sequential, and undo the time differences on the way.
            constexpr std::size_t kBlock = 32;
            for (std::size_t first = 0; first < n_channels; first += kBlock) {
                const std::size_t width = std::min(kBlock, n_channels - first);
                std::array<std::uint16_t, kBlock> running{};
                for (std::size_t f = 0; f < n_frames; ++f) {
                    std::uint16_t* out = &chunk[f * n_channels + first];
                    for (std::size_t k = 0; k < width; ++k) {
                        const std::uint16_t value = stored_[(first + k) * n_frames + f];
                        running[k] = header_.time_diff ? static_cast<std::uint16_t>(running[k] + value) : value;
                        out[k] = running[k];
                    }
                }
            }
        } else {
            chunk.swap(stored_);
            if (header_.time_diff)
                for (std::size_t i = n_channels; i < values; ++i)
                    chunk[i] = static_cast<std::uint16_t>(chunk[i] + chunk[i - n_channels]);
        }
        // Sums along channels and along time commute (both modulo 2^16), so the channel differences are undone last.
        if (header_.spatial_diff)
            for (std::size_t f = 0; f < n_frames; ++f)
                for (std::size_t c = 1; c < n_channels; ++c)
                    chunk[f * n_channels + c] =
                        static_cast<std::uint16_t>(chunk[f * n_channels + c] + chunk[f * n_channels + c - 1]);
        return chunk;
    }

private:
    /// Inflates chunk `index` into stored_ (its exact size), reading the compressed bytes in pieces of bounded size.
    void inflate_chunk(std::size_t index, const std::string& where, std::size_t n_frames, std::size_t n_channels) {
        constexpr std::size_t kPieceBytes = std::size_t{1} << 20;
        std::uint64_t remaining = header_.chunk_offsets[index + 1] - header_.chunk_offsets[index];
        in_.clear();
        in_.seekg(static_cast<std::streamoff>(header_.chunk_offsets[index]));
        compressed_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kPieceBytes)));
        z_stream stream{};
        require(inflateInit(&stream) == Z_OK, where + ": zlib could not start (out of memory?)");
        const std::size_t expected_bytes = stored_.size() * sizeof(std::uint16_t);
        stream.next_out = reinterpret_cast<Bytef*>(stored_.data());
        stream.avail_out = static_cast<uInt>(expected_bytes);
        int status = Z_OK;
        while (status == Z_OK) {
            if (stream.avail_in == 0) {
                if (remaining == 0)
                    break;
                const auto piece = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kPieceBytes));
                in_.read(reinterpret_cast<char*>(compressed_.data()), static_cast<std::streamsize>(piece));
                if (in_.gcount() != static_cast<std::streamsize>(piece)) {
                    inflateEnd(&stream);
                    throw InputError(where +
                                     ": the file ended early: it is truncated or was modified while being read");
                }
                remaining -= piece;
                stream.next_in = compressed_.data();
                stream.avail_in = static_cast<uInt>(piece);
            }
            // With the output full, inflate still reads the stream's trailer; more data makes it return Z_BUF_ERROR.
            status = inflate(&stream, Z_NO_FLUSH);
        }
        const std::string message = stream.msg ? stream.msg : "";
        const bool exact = status == Z_STREAM_END && stream.avail_out == 0 && stream.avail_in == 0 && remaining == 0;
        const uLong produced = stream.total_out;
        inflateEnd(&stream);
        if (exact)
            return;
        const std::string frames =
            std::to_string(n_frames) + " frames of " + std::to_string(n_channels) + " int16 channels";
        std::string why;
        if (status == Z_DATA_ERROR)
            why = "it is not a valid zlib stream (" + message + ")";
        else if (status == Z_STREAM_END && stream.avail_out > 0)
            why = "it decompresses to " + std::to_string(produced) + " bytes, not the " +
                  std::to_string(expected_bytes) + " of its " + frames;
        else if (status == Z_STREAM_END)
            why = "bytes follow the end of its zlib stream";
        else if (status == Z_BUF_ERROR)
            why = "it decompresses to more than the " + std::to_string(expected_bytes) + " bytes of its " + frames;
        else
            why = "its zlib stream is cut short";
        throw InputError(where + " is corrupt: " + why +
                         ": the .cbin or its .ch is damaged; copy them again (mtscomp's mtsdecomp can check them)");
    }

private:
    std::filesystem::path path_;
    const MtscompHeader& header_;
    std::ifstream in_;
    std::vector<unsigned char> compressed_;
    std::vector<std::uint16_t> stored_;
};

class MtscompSource final : public RecordingSource {
public:
    MtscompSource(RecordingInfo info, MtscompHeader header) : info_(std::move(info)), header_(std::move(header)) {
        require(info_.file_channels() == header_.n_channels && info_.n_frames == header_.n_frames(),
                info_.data_path.string() + ": the recording's description disagrees with its .ch");
        ChunkDecoder check_readable(info_.data_path, header_); // a clear error now rather than from the first read
        const unsigned cores = std::thread::hardware_concurrency();
        lookahead_ = std::clamp<std::size_t>(cores / 2, 1, 4);
    }

    const RecordingInfo& info() const override { return info_; }

    std::size_t read(std::int16_t* dst, std::size_t max_frames) override {
        const auto channels = static_cast<std::size_t>(info_.n_channels);
        const auto stored_channels = static_cast<std::size_t>(header_.n_channels);
        std::size_t done = 0;
        while (done < max_frames) {
            if (position_ == chunk_frames_) {
                if (!next_chunk())
                    break;
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
    /// Takes the next decoded chunk, keeping up to lookahead_ chunks decompressing in the background (zlib is the
    /// slowest step; the chunks are independent). Memory: at most lookahead_ + 1 chunks.
    bool next_chunk() {
        const std::size_t n_chunks = header_.chunk_bounds.size() - 1;
        auto schedule = [&] {
            while (pending_.size() < lookahead_ && scheduled_ < n_chunks)
                pending_.push_back(std::async(std::launch::async, [this, index = scheduled_++] {
                    return ChunkDecoder(info_.data_path, header_).decode(index);
                }));
        };
        schedule();
        if (pending_.empty())
            return false;
        std::future<std::vector<std::uint16_t>> ready = std::move(pending_.front());
        pending_.pop_front();
        chunk_.clear();
        chunk_.shrink_to_fit();
        chunk_ = ready.get();
        schedule();
        chunk_frames_ = chunk_.size() / static_cast<std::size_t>(header_.n_channels);
        position_ = 0;
        return true;
    }

    RecordingInfo info_;
    MtscompHeader header_;
    std::size_t lookahead_ = 1;
    std::size_t scheduled_ = 0;
    std::size_t chunk_frames_ = 0;
    std::size_t position_ = 0;
    std::vector<std::uint16_t> chunk_; ///< the current chunk, time-major, after undoing the differences
    std::deque<std::future<std::vector<std::uint16_t>>> pending_; ///< last: finished before the members they use go
};

} // namespace

std::filesystem::path mtscomp_header_path(const std::filesystem::path& cbin_path) {
    std::filesystem::path ch_path = cbin_path;
    return ch_path.replace_extension(".ch");
}

MtscompHeader read_mtscomp_header(const std::filesystem::path& cbin_path, bool allow_truncated) {
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
    const std::string algorithm = text_or(header, "algorithm", "zlib", where);
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
    const std::string order = text_or(header, "chunk_order", "C", where);
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
    const std::uint64_t end = result.chunk_offsets.back();
    require(size <= end, cbin_path.string() + " is " + std::to_string(size) + " bytes but " +
                             ch_path.filename().string() + " says its chunks end at byte " + std::to_string(end) +
                             ": the .ch belongs to another file");
    if (size < end) {
        // A cut .cbin (an interrupted download or copy): its whole chunks are usable on request.
        std::size_t whole = 0;
        while (whole + 1 < result.chunk_offsets.size() && result.chunk_offsets[whole + 1] <= size)
            ++whole;
        const std::string cut = cbin_path.string() + " is " + std::to_string(size) + " bytes but " +
                                ch_path.filename().string() + " says its chunks end at byte " + std::to_string(end) +
                                ": the .cbin is truncated";
        require(allow_truncated, cut + " (an interrupted copy?; pass --allow-truncated to process its " +
                                     std::to_string(whole) + " whole chunk(s))");
        require(whole > 0, cut + " and holds no whole chunk: nothing to process");
        result.truncated_from_frames = result.n_frames();
        result.chunk_bounds.resize(whole + 1);
        result.chunk_offsets.resize(whole + 1);
    }
    if (header.contains("chopped"))
        result.chopped = required_flag(header, "chopped", where);
    return result;
}

std::unique_ptr<RecordingSource> open_mtscomp(RecordingInfo info, MtscompHeader header) {
    return std::make_unique<MtscompSource>(std::move(info), std::move(header));
}

} // namespace spikeline::io
