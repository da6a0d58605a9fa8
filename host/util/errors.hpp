#pragma once
#include <stdexcept>
#include <string>

namespace spikeline {

/// An error caused by the user's input (files, options, metadata). Its message says what is wrong and what
/// to do; the CLI prints it without a stack of context and exits with status 2.
class InputError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A write to an output file failed (disk full, file size limit, I/O error). It is an InputError, so commands that
/// have nothing to salvage exit with status 2 and its message; the stream catches it to keep what was written.
class WriteError : public InputError {
public:
    WriteError(const std::string& message, int error_number);
    int error_number() const { return error_number_; }
    /// ENOSPC, EDQUOT or EFBIG: no room left for the data (the disk, a quota, or a file size limit).
    bool disk_full() const;

private:
    int error_number_;
};

/// Throws WriteError naming path and the system's reason (errno, read right after the failed write).
[[noreturn]] void throw_write_error(const std::string& path);

/// Throws InputError(message) when condition is false.
void require(bool condition, const std::string& message);

} // namespace spikeline
