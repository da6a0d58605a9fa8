#pragma once
#include <filesystem>
#include <fstream>
#include <string>

namespace spikeline {

/// A file written under a temporary name beside its destination and renamed into place by commit().
/// Destroying it without commit() removes the temporary file, so readers never see a half-written output.
class AtomicFile {
public:
    explicit AtomicFile(std::filesystem::path destination);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    std::ofstream& stream() { return out_; }
    /// Flushes, checks for write errors, and renames the temporary file onto the destination.
    void commit();

private:
    std::filesystem::path destination_;
    std::filesystem::path temporary_;
    std::ofstream out_;
    bool committed_ = false;
};

/// Writes text to path atomically.
void write_text_file(const std::filesystem::path& path, const std::string& text);

/// Creates dir (and parents); throws InputError with a clear message when that is impossible.
void ensure_directory(const std::filesystem::path& dir);

} // namespace spikeline
