#include "util/errors.hpp"

namespace spikeline {

void require(bool condition, const std::string& message) {
    if (!condition)
        throw InputError(message);
}

} // namespace spikeline
