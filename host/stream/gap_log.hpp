#pragma once
// gaps.tsv of a stream: the runs of frames never received (link loss, overrun: zeros in the raw copy) and the
// blanked frames after them, so that analyses can mask them.
#include "util/atomic_file.hpp"

#include <cstdint>
#include <filesystem>
#include <string>

namespace spikeline::stream {

/// Rows of gaps.tsv: runs of frames of one reason, adjacent runs of the same reason merged.
class GapLog {
public:
    explicit GapLog(const std::filesystem::path& path);
    void add(std::uint64_t first, std::uint64_t n, const char* reason);
    void commit();
    std::uint64_t rows() const { return rows_ + (open_ ? 1 : 0); }

private:
    void flush();

    AtomicFile file_;
    bool open_ = false;
    std::uint64_t open_first_ = 0, open_n_ = 0, rows_ = 0;
    std::string open_reason_;
};

} // namespace spikeline::stream
