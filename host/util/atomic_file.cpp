#include "util/atomic_file.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <system_error>
#include <unistd.h>

namespace spikeline {

AtomicFile::AtomicFile(std::filesystem::path destination)
    : destination_(std::move(destination)), temporary_(temporary_path(destination_)) {
    out_.open(temporary_, std::ios::binary | std::ios::trunc);
    require(out_.is_open(), "cannot create " + temporary_.string() + ": check that the folder exists and is writable");
}

AtomicFile::~AtomicFile() {
    if (!committed_) {
        out_.close();
        std::error_code ignored;
        std::filesystem::remove(temporary_, ignored);
    }
}

void AtomicFile::commit() {
    out_.flush();
    if (!out_.good())
        throw_write_error(temporary_.string());
    out_.close();
    std::error_code ec;
    std::filesystem::rename(temporary_, destination_, ec);
    require(!ec, "cannot rename " + temporary_.string() + " to " + destination_.string() + ": " + ec.message());
    committed_ = true;
}

void write_text_file(const std::filesystem::path& path, const std::string& text) {
    AtomicFile file(path);
    file.stream() << text;
    file.commit();
}

void overwrite_start(const std::filesystem::path& path, const std::string& bytes) {
    std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
    require(out.is_open(), "cannot open " + path.string() + " to rewrite it: check its permissions");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out.good())
        throw_write_error(path.string());
}

void ensure_directory(const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    require(!ec && std::filesystem::is_directory(dir),
            "cannot create output folder " + dir.string() + (ec ? ": " + ec.message() : ""));
    const std::vector<std::filesystem::path> crashed = unrecovered_recordings(dir);
    if (!crashed.empty())
        throw InputError(dir.string() + " holds a recording cut short by a crash (" + crashed.front().string() +
                         "): run `spikeline recover " + dir.string() +
                         "` to keep its whole frames, or delete its .tmp files to start over");
    remove_stale_temporaries(dir);
}

std::filesystem::path temporary_path(const std::filesystem::path& destination) {
    return destination.string() + ".tmp" + std::to_string(::getpid());
}

std::optional<long> temporary_owner(const std::filesystem::path& path) {
    const std::string name = path.filename().string();
    const std::size_t at = name.rfind(".tmp");
    if (at == std::string::npos || at == 0)
        return std::nullopt;
    const std::string digits = name.substr(at + 4);
    if (digits.empty() || digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        return std::nullopt;
    return std::stol(digits);
}

bool process_alive(long pid) {
    if (pid <= 0)
        return true; // not a PID we could have written: never treat it as dead
    return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

namespace {

/// Regular files in dir named NAME.tmpPID whose process is gone.
std::vector<std::filesystem::path> dead_temporaries(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> found;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::optional<long> owner = temporary_owner(it->path());
        if (owner && *owner != ::getpid() && it->is_regular_file(ec) && !process_alive(*owner))
            found.push_back(it->path());
    }
    std::sort(found.begin(), found.end());
    return found;
}

} // namespace

std::vector<std::filesystem::path> unrecovered_recordings(const std::filesystem::path& dir) {
    // NAME.bin.tmpPID holds the samples; NAME.meta.tmpPID (written first) says what they are. Either one left by a
    // dead process is a recording cut short (a run of an older version may have left the .bin alone).
    std::vector<std::filesystem::path> found;
    for (const std::filesystem::path& temporary : dead_temporaries(dir)) {
        const std::string name = temporary.filename().string();
        const std::string final_name = name.substr(0, name.rfind(".tmp"));
        if (final_name.ends_with(".bin") || final_name.ends_with(".meta"))
            found.push_back(temporary);
    }
    return found;
}

std::vector<std::filesystem::path> remove_stale_temporaries(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> removed;
    for (const std::filesystem::path& temporary : dead_temporaries(dir)) {
        std::error_code ec;
        if (std::filesystem::remove(temporary, ec))
            removed.push_back(temporary);
    }
    return removed;
}

} // namespace spikeline
