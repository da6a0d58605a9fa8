#pragma once
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

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

/// Overwrites the first bytes of an existing file in place (no truncation: on a full disk the blocks it already has
/// are reused); throws WriteError when that fails.
void overwrite_start(const std::filesystem::path& path, const std::string& bytes);

/// Creates dir (and parents); throws InputError with a clear message when that is impossible. In an existing folder it
/// then removes the temporaries of processes that no longer exist (remove_stale_temporaries), but refuses (InputError)
/// while a recording cut short by a crash waits there for `spikeline recover`.
void ensure_directory(const std::filesystem::path& dir);

/// The temporary name of an output of this process: DESTINATION.tmpPID. Every temporary carries its writer's PID, so
/// that a later run can tell a dead writer's leftovers from a live one's.
std::filesystem::path temporary_path(const std::filesystem::path& destination);

/// The PID in a temporary's name (NAME.tmpPID); nothing for other names.
std::optional<long> temporary_owner(const std::filesystem::path& path);

/// Whether process pid exists (a process of another user counts as existing).
bool process_alive(long pid);

/// The NAME.bin / NAME.meta temporaries in dir of dead processes: a SpikeGLX copy cut short by a crash
/// (`spikeline recover` keeps its whole frames).
std::vector<std::filesystem::path> unrecovered_recordings(const std::filesystem::path& dir);

/// Removes the temporaries (NAME.tmpPID) in dir whose process no longer exists and returns their paths; never those of
/// a live process.
std::vector<std::filesystem::path> remove_stale_temporaries(const std::filesystem::path& dir);

} // namespace spikeline
