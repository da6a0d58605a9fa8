#include "util/manifest.hpp"

#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <sstream>
#include <sys/stat.h>

namespace spikeline {
namespace {

namespace fs = std::filesystem;

bool excluded(const fs::path& relative) {
    return relative == kManifestName || temporary_owner(relative).has_value();
}

std::string relative_name(const fs::path& file, const fs::path& dir) {
    return file.lexically_relative(dir).generic_string();
}

} // namespace

std::string sha256_file(const fs::path& path) {
    // OpenSSL's SHA-256 uses the CPU's SHA instructions where it has them: 4-5x libsodium's portable one, which took
    // 4 % of a one-core sort (a 60 s sort folder is 60 MB).
    std::ifstream in(path, std::ios::binary);
    require(in.is_open(), "cannot read " + path.string() + " to hash it");
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    require(context && EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) == 1, "OpenSSL cannot start a SHA-256");
    std::vector<char> buffer(1 << 20);
    while (in) {
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        const auto n = static_cast<std::size_t>(in.gcount());
        if (n > 0)
            require(EVP_DigestUpdate(context.get(), buffer.data(), n) == 1, "OpenSSL's SHA-256 failed");
    }
    require(in.eof(), "cannot read " + path.string() + " to hash it (I/O error)");
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    require(EVP_DigestFinal_ex(context.get(), digest, &size) == 1 && size == 32, "OpenSSL's SHA-256 failed");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned int i = 0; i < size; ++i) {
        hex += kHex[digest[i] >> 4];
        hex += kHex[digest[i] & 15];
    }
    return hex;
}

std::map<std::string, OutputManifest::Stamp> OutputManifest::scan(const fs::path& dir) {
    std::map<std::string, Stamp> files;
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return files;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        struct stat status {};
        if (::lstat(it->path().c_str(), &status) != 0 || !S_ISREG(status.st_mode))
            continue;
        const std::string name = relative_name(it->path(), dir);
        if (excluded(name))
            continue;
        files[name] = {static_cast<std::uint64_t>(status.st_ino), static_cast<std::uint64_t>(status.st_size),
                       static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1'000'000'000 + status.st_mtim.tv_nsec};
    }
    return files;
}

OutputManifest::OutputManifest(fs::path dir) : dir_(std::move(dir)), before_(scan(dir_)) {}

std::size_t OutputManifest::write(const std::string& command) const {
    nlohmann::json files = nlohmann::json::array();
    for (const auto& [name, stamp] : scan(dir_)) {
        const auto earlier = before_.find(name);
        if (earlier != before_.end() && earlier->second == stamp)
            continue; // left by an earlier run, not written by this one
        files.push_back({{"path", name}, {"bytes", stamp.size}, {"sha256", sha256_file(dir_ / name)}});
    }
    const nlohmann::json manifest = {{"format", "spikeline manifest"},
                                     {"version", 1},
                                     {"command", command},
                                     {"algorithm", "sha256"},
                                     {"files", files}};
    write_text_file(dir_ / kManifestName, manifest.dump(2) + "\n");
    return files.size();
}

ManifestCheck verify_manifest(const fs::path& dir) {
    const fs::path manifest_path = dir / kManifestName;
    std::ifstream in(manifest_path, std::ios::binary);
    require(in.is_open(), "no " + manifest_path.string() +
                              ": DIR must be the output folder of spikeline detect, sort or stream (which write it "
                              "last); a folder finished by spikeline recover has none");
    std::ostringstream text;
    text << in.rdbuf();
    const nlohmann::json manifest = nlohmann::json::parse(text.str(), nullptr, false);
    const std::string broken = manifest_path.string() + " is damaged or not a spikeline manifest";
    require(manifest.is_object() && manifest.value("format", "") == "spikeline manifest" &&
                manifest.contains("files") && manifest["files"].is_array(),
            broken);
    ManifestCheck check;
    check.command = manifest.value("command", "");
    std::vector<std::string> listed;
    for (const nlohmann::json& entry : manifest["files"]) {
        require(entry.is_object() && entry.contains("path") && entry["path"].is_string() && entry.contains("sha256") &&
                    entry["sha256"].is_string() && entry.contains("bytes") && entry["bytes"].is_number_unsigned(),
                broken + " (an entry lacks path, bytes or sha256)");
        const fs::path relative = entry["path"].get<std::string>();
        const bool inside = !relative.empty() && relative.is_relative() &&
                            std::none_of(relative.begin(), relative.end(), [](const fs::path& p) { return p == ".."; });
        require(inside, broken + " (path '" + relative.string() + "' points outside the folder)");
        const std::string name = relative.generic_string();
        listed.push_back(name);
        const fs::path file = dir / relative;
        std::error_code ec;
        if (!fs::is_regular_file(file, ec)) {
            check.missing.push_back(name);
            continue;
        }
        const bool same = fs::file_size(file, ec) == entry["bytes"].get<std::uint64_t>() && !ec &&
                          sha256_file(file) == entry["sha256"].get<std::string>();
        (same ? check.unchanged : check.changed).push_back(name);
    }
    for (const auto& [name, stamp] : OutputManifest::scan(dir))
        if (std::find(listed.begin(), listed.end(), name) == listed.end())
            check.unlisted.push_back(name);
    return check;
}

} // namespace spikeline
