#pragma once
// For the fuzz targets of file parsers: each input is written to a file in a private folder of this process, and the
// parser is run on it. A parser may refuse an input only with InputError (what the CLI reports as bad input, exit 2);
// any other exception escapes and libFuzzer reports it as a crash, as it does memory errors and undefined behaviour.
#include "util/errors.hpp"

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace spikeline::fuzz {

/// A folder of this process's own under the temporary directory, kept for the process's life (inputs overwrite).
inline const std::filesystem::path& scratch_dir() {
    static const std::filesystem::path dir = [] {
        const std::filesystem::path shm = "/dev/shm";
        const std::filesystem::path base =
            std::filesystem::is_directory(shm) ? shm : std::filesystem::temp_directory_path();
        const std::filesystem::path d = base / ("spikeline_fuzz_" + std::to_string(::getpid()));
        std::filesystem::create_directories(d);
        return d;
    }();
    return dir;
}

inline std::filesystem::path write_input(const std::string& name, const unsigned char* data, std::size_t size) {
    const std::filesystem::path path = scratch_dir() / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    return path;
}

/// Runs parse(); InputError is the expected refusal of bad input.
template <class Parse> void expect_only_input_errors(Parse&& parse) {
    try {
        parse();
    } catch (const InputError&) {
    }
}

} // namespace spikeline::fuzz
