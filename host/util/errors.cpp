#include "util/errors.hpp"

#include <cerrno>
#include <cstring>

namespace spikeline {

WriteError::WriteError(const std::string& message, int error_number)
    : InputError(message), error_number_(error_number) {}

bool WriteError::disk_full() const {
    return error_number_ == ENOSPC || error_number_ == EDQUOT || error_number_ == EFBIG;
}

void throw_write_error(const std::string& path) {
    const int error_number = errno;
    const std::string reason = error_number != 0 ? std::strerror(error_number) : "unknown error";
    const bool full = error_number == ENOSPC || error_number == EDQUOT || error_number == EFBIG;
    throw WriteError("write to " + path + " failed: " + reason +
                         (full ? " (no room left: free disk space or raise the file size limit)" : ""),
                     error_number);
}

void require(bool condition, const std::string& message) {
    if (!condition)
        throw InputError(message);
}

} // namespace spikeline
