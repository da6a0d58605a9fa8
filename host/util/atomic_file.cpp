#include "util/atomic_file.hpp"

#include "util/errors.hpp"

#include <system_error>
#include <unistd.h>

namespace spikeline {

AtomicFile::AtomicFile(std::filesystem::path destination)
    : destination_(std::move(destination)), temporary_(destination_.string() + ".tmp" + std::to_string(::getpid())) {
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
    require(out_.good(), "write to " + temporary_.string() + " failed (disk full?)");
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

void ensure_directory(const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    require(!ec && std::filesystem::is_directory(dir),
            "cannot create output folder " + dir.string() + (ec ? ": " + ec.message() : ""));
}

} // namespace spikeline
