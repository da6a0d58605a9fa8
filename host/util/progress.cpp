#include "util/progress.hpp"

#include <unistd.h>

namespace spikeline {

ProgressLine::ProgressLine(bool enabled) : enabled_(enabled) {}

void ProgressLine::update(const std::string& text) {
    if (!enabled_)
        return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(250))
        return;
    last_ = now;
    std::fprintf(stderr, "\r%-100s", text.c_str());
    std::fflush(stderr);
    drawn_ = true;
}

void ProgressLine::finish() {
    if (drawn_)
        std::fputc('\n', stderr);
    drawn_ = false;
}

bool stderr_is_terminal() {
    return ::isatty(STDERR_FILENO) == 1;
}

} // namespace spikeline
