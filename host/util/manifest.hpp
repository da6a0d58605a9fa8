#pragma once
// manifest.json: the SHA-256 of every file a command wrote into its output folder, written last and atomically, so
// that `spikeline verify DIR` can name any output that changed or went missing since (format: docs/FORMATS.md §16).
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace spikeline {

inline constexpr const char* kManifestName = "manifest.json";

/// SHA-256 of a file's bytes, as 64 lowercase hex digits; throws InputError when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

/// Remembers what an output folder holds before a command writes to it; write() then lists every file the command
/// created or replaced (new, or another inode, size or modification time), so that files of earlier runs left in the
/// folder are not vouched for.
class OutputManifest {
public:
    explicit OutputManifest(std::filesystem::path dir);
    /// Hashes the files written since construction and writes DIR/manifest.json atomically; returns how many it lists.
    std::size_t write(const std::string& command) const;

    struct Stamp {
        std::uint64_t inode = 0, size = 0;
        std::int64_t modified_ns = 0;
        bool operator==(const Stamp&) const = default;
    };
    /// The regular files under dir (relative '/' paths), without manifest.json and temporaries (NAME.tmpPID).
    static std::map<std::string, Stamp> scan(const std::filesystem::path& dir);

private:
    std::filesystem::path dir_;
    std::map<std::string, Stamp> before_;
};

struct ManifestCheck {
    std::vector<std::string> unchanged;
    std::vector<std::string> changed; ///< another SHA-256 or size than the manifest says
    std::vector<std::string> missing;
    std::vector<std::string> unlisted; ///< in the folder but not in the manifest (not an error: e.g. notes added later)
    std::string command;               ///< the command that wrote the manifest
    bool ok() const { return changed.empty() && missing.empty(); }
};

/// Checks DIR against DIR/manifest.json; throws InputError when there is no readable manifest.
ManifestCheck verify_manifest(const std::filesystem::path& dir);

} // namespace spikeline
