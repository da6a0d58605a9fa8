#include "io/raw.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace spikeline::io {

static_assert(std::endian::native == std::endian::little, "recordings are little-endian int16, read without swaps");

namespace {

constexpr int kMaxChannels = 65536;

/// Reads interleaved int16 frames straight from the file into the caller's buffer, never holding more; or, when the
/// file holds exactly the delivered channels, maps one chunk of it at a time (view): the page cache's pages are used
/// in place, without a copy or a reader thread.
class InterleavedInt16Source final : public RecordingSource, public InPlaceSource {
public:
    explicit InterleavedInt16Source(RecordingInfo info) : info_(std::move(info)) {
        fd_ = ::open(info_.data_path.c_str(), O_RDONLY | O_CLOEXEC);
        require(fd_ >= 0, "cannot open " + info_.data_path.string() + " for reading: " + std::strerror(errno) +
                              ": check its permissions");
    }
    ~InterleavedInt16Source() override {
        unmap();
        ::close(fd_);
    }
    InterleavedInt16Source(const InterleavedInt16Source&) = delete;
    InterleavedInt16Source& operator=(const InterleavedInt16Source&) = delete;

    const RecordingInfo& info() const override { return info_; }

    std::size_t read(std::int16_t* dst, std::size_t max_frames) override {
        unmap();
        const std::size_t frames = frames_to_deliver(max_frames);
        if (frames == 0)
            return 0;
        const auto file_channels = static_cast<std::size_t>(info_.file_channels());
        const auto channels = static_cast<std::size_t>(info_.n_channels);
        // Frames with channels to skip go through a buffer of at most the caller's chunk.
        std::int16_t* target = dst;
        if (file_channels != channels) {
            staging_.resize(frames * file_channels);
            target = staging_.data();
        }
        read_exactly(reinterpret_cast<char*>(target), frames * frame_bytes(), frames_read_ * frame_bytes());
        if (target != dst)
            for (std::size_t f = 0; f < frames; ++f)
                std::copy_n(&staging_[f * file_channels], channels, dst + f * channels);
        frames_read_ += frames;
        return frames;
    }

    bool can_view() const override { return info_.file_channels() == info_.n_channels; }

    const std::int16_t* view(std::size_t max_frames, std::size_t& n_frames) override {
        require(can_view(), "internal: view of a file with channels to skip");
        unmap();
        n_frames = frames_to_deliver(max_frames);
        if (n_frames == 0)
            return nullptr;
        const std::uint64_t offset = frames_read_ * frame_bytes();
        const std::uint64_t end = offset + n_frames * frame_bytes();
        // A file cut short after opening would fault (SIGBUS) on the missing pages: check the size first.
        struct stat status {};
        if (::fstat(fd_, &status) != 0 || static_cast<std::uint64_t>(status.st_size) < end)
            throw_truncated(static_cast<std::uint64_t>(std::max<off_t>(0, status.st_size)));
        const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
        const std::uint64_t map_offset = offset / page * page;
        map_length_ = static_cast<std::size_t>(end - map_offset);
        // Pages are mapped when the backend's threads first touch them (0.28 s of CPU per 60 s of 1024 channels on a
        // Zen 4 VM), shared among them; MAP_POPULATE did the same work on this thread alone.
        void* map = ::mmap(nullptr, map_length_, PROT_READ, MAP_PRIVATE, fd_, static_cast<off_t>(map_offset));
        if (map == MAP_FAILED) {
            map_length_ = 0;
            throw InputError("cannot map " + info_.data_path.string() + ": " + std::strerror(errno));
        }
        map_ = map;
        // The next chunk: a file not yet in the page cache is read from disk while this one is processed.
        ::posix_fadvise(fd_, static_cast<off_t>(end), static_cast<off_t>(n_frames * frame_bytes()),
                        POSIX_FADV_WILLNEED);
        frames_read_ += n_frames;
        return reinterpret_cast<const std::int16_t*>(static_cast<const char*>(map_) + (offset - map_offset));
    }

private:
    std::size_t frame_bytes() const { return static_cast<std::size_t>(info_.file_channels()) * sizeof(std::int16_t); }

    std::size_t frames_to_deliver(std::size_t max_frames) const {
        return static_cast<std::size_t>(std::min<std::uint64_t>(info_.n_frames - frames_read_, max_frames));
    }

    [[noreturn]] void throw_truncated(std::uint64_t got_bytes) const {
        throw InputError(info_.data_path.string() + ": file ended after " + std::to_string(got_bytes) + " bytes, but " +
                         std::to_string(info_.n_frames * frame_bytes()) +
                         " were expected: it is truncated or was modified while being read");
    }

    void read_exactly(char* dst, std::size_t bytes, std::uint64_t offset) const {
        std::size_t done = 0;
        while (done < bytes) {
            const ssize_t got = ::pread(fd_, dst + done, bytes - done, static_cast<off_t>(offset + done));
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                throw InputError("cannot read " + info_.data_path.string() + ": " + std::strerror(errno));
            if (got == 0)
                throw_truncated(offset + done);
            done += static_cast<std::size_t>(got);
        }
    }

    void unmap() {
        if (map_ != nullptr)
            ::munmap(map_, map_length_);
        map_ = nullptr;
        map_length_ = 0;
    }

    RecordingInfo info_;
    int fd_ = -1;
    std::uint64_t frames_read_ = 0;
    std::vector<std::int16_t> staging_;
    void* map_ = nullptr; ///< the chunk view() delivered last, unmapped at the next call (memory stays one chunk)
    std::size_t map_length_ = 0;
};

} // namespace

InPlaceSource* in_place_source(RecordingSource& source) {
    auto* in_place = dynamic_cast<InPlaceSource*>(&source);
    return in_place != nullptr && in_place->can_view() ? in_place : nullptr;
}

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
