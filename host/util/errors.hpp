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

/// Throws InputError(message) when condition is false.
void require(bool condition, const std::string& message);

} // namespace spikeline
