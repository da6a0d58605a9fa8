#include "stream/gap_log.hpp"

namespace spikeline::stream {

GapLog::GapLog(const std::filesystem::path& path) : file_(path) {
    file_.stream() << "first_frame\tn_frames\treason\n";
    file_.stream().flush(); // at setup: after a crash, `spikeline recover` finds at least the header
}

void GapLog::add(std::uint64_t first, std::uint64_t n, const char* reason) {
    if (open_ && open_first_ + open_n_ == first && open_reason_ == reason) {
        open_n_ += n;
        return;
    }
    flush();
    open_ = true;
    open_first_ = first;
    open_n_ = n;
    open_reason_ = reason;
}

void GapLog::commit() {
    flush();
    file_.commit();
}

void GapLog::flush() {
    if (open_)
        file_.stream() << open_first_ << '\t' << open_n_ << '\t' << open_reason_ << '\n';
    rows_ += open_ ? 1 : 0;
    open_ = false;
}

} // namespace spikeline::stream
