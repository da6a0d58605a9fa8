#include "io/raw.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <fstream>
#include <system_error>
#include <vector>

namespace spikeline::io {

static_assert(std::endian::native == std::endian::little, "recordings are little-endian int16, read without swaps");

namespace {

constexpr int kMaxChannels = 65536;

/// Reads interleaved int16 frames straight from the file into the caller's buffer, never holding more.
class InterleavedInt16Source final : public RecordingSource {
public:
    explicit InterleavedInt16Source(RecordingInfo info) : info_(std::move(info)) {
        in_.open(info_.data_path, std::ios::binary);
        require(in_.is_open(), "cannot open " + info_.data_path.string() + " for reading: check its permissions");
    }

    const RecordingInfo& info() const override { return info_; }

    std::size_t read(std::int16_t* dst, std::size_t max_frames) override {
        const std::uint64_t remaining = info_.n_frames - frames_read_;
        const std::size_t frames = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, max_frames));
        if (frames == 0)
            return 0;
        const auto file_channels = static_cast<std::size_t>(info_.file_channels());
        const auto channels = static_cast<std::size_t>(info_.n_channels);
        const std::size_t frame_bytes = file_channels * sizeof(std::int16_t);
        // Frames with channels to skip go through a buffer of at most the caller's chunk.
        std::int16_t* target = dst;
        if (file_channels != channels) {
            staging_.resize(frames * file_channels);
            target = staging_.data();
        }
        const auto wanted = static_cast<std::streamsize>(frames * frame_bytes);
        in_.read(reinterpret_cast<char*>(target), wanted);
        if (in_.gcount() != wanted) {
            const std::uint64_t got_bytes = frames_read_ * frame_bytes + static_cast<std::uint64_t>(in_.gcount());
            throw InputError(info_.data_path.string() + ": file ended after " + std::to_string(got_bytes) +
                             " bytes, but " + std::to_string(info_.n_frames * frame_bytes) +
                             " were expected: it is truncated or was modified while being read");
        }
        if (target != dst)
            for (std::size_t f = 0; f < frames; ++f)
                std::copy_n(&staging_[f * file_channels], channels, dst + f * channels);
        frames_read_ += frames;
        return frames;
    }

private:
    RecordingInfo info_;
    std::ifstream in_;
    std::uint64_t frames_read_ = 0;
    std::vector<std::int16_t> staging_;
};

} // namespace

std::unique_ptr<RecordingSource> open_interleaved_int16(RecordingInfo info) {
    return std::make_unique<InterleavedInt16Source>(std::move(info));
}

std::unique_ptr<RecordingSource> open_raw(const std::filesystem::path& path, int n_channels, double sample_rate,
                                          double microvolts_per_bit) {
    const std::string name = path.string();
    require(n_channels >= 1 && n_channels <= kMaxChannels, name + ": --channels must be between 1 and " +
                                                               std::to_string(kMaxChannels) + ", not " +
                                                               std::to_string(n_channels));
    require(std::isfinite(sample_rate) && sample_rate > 0,
            name + ": --sample-rate must be a positive number of samples per second");
    require(std::isfinite(microvolts_per_bit) && microvolts_per_bit >= 0,
            name + ": microvolts per bit must be positive (or 0 when unknown)");
    std::error_code ec;
    require(std::filesystem::is_regular_file(path, ec), name + ": no such file: check the path");
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    require(!ec, name + ": cannot read its size: " + ec.message());
    require(size > 0, name + ": the file is empty: there is no recording to read");
    const std::uintmax_t frame_bytes = static_cast<std::uintmax_t>(n_channels) * sizeof(std::int16_t);
    const std::uintmax_t remainder = size % frame_bytes;
    require(remainder == 0, name + ": the file is " + std::to_string(size) +
                                " bytes, which is not a whole number of frames of " + std::to_string(n_channels) +
                                " int16 channels (" + std::to_string(frame_bytes) + " bytes each; " +
                                std::to_string(remainder) + " bytes left over): check --channels");

    RecordingInfo info;
    info.n_channels = n_channels;
    info.sample_rate = sample_rate;
    info.n_frames = size / frame_bytes;
    info.microvolts_per_bit = microvolts_per_bit;
    info.format = "raw";
    info.data_path = path;
    return open_interleaved_int16(std::move(info));
}

} // namespace spikeline::io
