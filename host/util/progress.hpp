#pragma once
#include <chrono>
#include <cstdio>
#include <string>

namespace spikeline {

/// A single status line on stderr, redrawn at most a few times per second, only when stderr is a terminal
/// or when forced (so that logs of CI runs stay readable).
class ProgressLine {
public:
    explicit ProgressLine(bool enabled);
    /// Redraws the line with text if enough time has passed since the last redraw.
    void update(const std::string& text);
    /// Ends the line (prints a newline if anything was drawn).
    void finish();

private:
    bool enabled_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point last_{};
};

/// True when stderr is an interactive terminal.
bool stderr_is_terminal();

} // namespace spikeline
