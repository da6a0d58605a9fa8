#include "stream/keys.hpp"

#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <netdb.h>
#include <nlohmann/json.hpp>
#include <sodium.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

namespace spikeline::stream {
namespace {

constexpr std::size_t kZ85KeyChars = 40;

std::string read_small_text(const std::filesystem::path& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    require(in.is_open(), "cannot read the " + what + " " + path.string());
    std::ostringstream text;
    text << in.rdbuf();
    require(text.str().size() <= 4096, path.string() + " is not a " + what + " (too long)");
    return text.str();
}

std::string trimmed(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos)
        return "";
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

bool is_z85_key(const std::string& key) {
    unsigned char binary[32];
    return key.size() == kZ85KeyChars && ::zmq_z85_decode(binary, key.c_str()) != nullptr;
}

bool is_loopback(const sockaddr* address) {
    if (address->sa_family == AF_INET)
        return (ntohl(reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr) >> 24) == 127;
    if (address->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr);
    return false;
}

} // namespace

void require_private_file(const std::filesystem::path& path, const std::string& what) {
    struct stat status {};
    require(::stat(path.c_str(), &status) == 0,
            "cannot read the " + what + " " + path.string() + ": " + std::strerror(errno));
    require(S_ISREG(status.st_mode), "the " + what + " " + path.string() + " is not a file");
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(status.st_mode & 07777));
    require((status.st_mode & (S_IRWXG | S_IRWXO)) == 0,
            "the " + what + " " + path.string() + " may be read or changed by other users (mode " + mode +
                "): run chmod 600 " + path.string() + ", and make a new key if others may have read it");
}

void write_private_file(const std::filesystem::path& path, const std::string& text) {
    require(!std::filesystem::exists(path),
            path.string() + " exists: keys are never overwritten (remove it first, or choose another --out)");
    const std::filesystem::path temporary = temporary_path(path);
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    require(fd >= 0, "cannot create " + temporary.string() + ": " + std::strerror(errno));
    ::fchmod(fd, 0600); // whatever the umask
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    const int error = errno;
    ::close(fd);
    if (!written) {
        ::unlink(temporary.c_str());
        throw WriteError("cannot write " + temporary.string() + ": " + std::strerror(error), error);
    }
    // link() refuses an existing destination, so a key written meanwhile by another process is not replaced.
    const bool placed = ::link(temporary.c_str(), path.c_str()) == 0;
    const int link_error = errno;
    ::unlink(temporary.c_str());
    require(placed, "cannot create " + path.string() + ": " + std::strerror(link_error));
}

LinkKey read_link_key(const std::filesystem::path& path) {
    require_private_file(path, "link key file");
    const std::string hex = trimmed(read_small_text(path, "link key file"));
    LinkKey key{};
    std::size_t decoded = 0;
    require(crypto_ready(), "libsodium cannot be initialised");
    const bool ok =
        hex.size() == 2 * kLinkKeyBytes &&
        ::sodium_hex2bin(key.data(), key.size(), hex.c_str(), hex.size(), nullptr, &decoded, nullptr) == 0 &&
        decoded == kLinkKeyBytes;
    require(ok, path.string() + " is not a link key (expected 64 hexadecimal digits, as spikeline keygen --out FILE "
                                "writes)");
    return key;
}

std::string new_link_key_text() {
    require(crypto_ready(), "libsodium cannot be initialised");
    LinkKey key{};
    ::crypto_aead_chacha20poly1305_ietf_keygen(key.data());
    char hex[2 * kLinkKeyBytes + 1];
    ::sodium_bin2hex(hex, sizeof hex, key.data(), key.size());
    ::sodium_memzero(key.data(), key.size());
    return std::string(hex) + "\n";
}

CurveKeyPair new_curve_key_pair() {
    char public_key[kZ85KeyChars + 1], secret_key[kZ85KeyChars + 1];
    require(::zmq_curve_keypair(public_key, secret_key) == 0,
            "this ZeroMQ library cannot make CURVE keys (built without libsodium?)");
    return {public_key, secret_key};
}

std::string curve_secret_file_text(const CurveKeyPair& keys) {
    return nlohmann::json{
               {"format", "spikeline curve key pair"}, {"public_key", keys.public_key}, {"secret_key", keys.secret_key}}
               .dump(2) +
           "\n";
}

std::string curve_public_file_text(const std::string& public_key) {
    return nlohmann::json{{"format", "spikeline curve public key"}, {"public_key", public_key}}.dump(2) + "\n";
}

CurveKeyPair read_curve_secret(const std::filesystem::path& path) {
    require_private_file(path, "CURVE secret key file");
    const std::string form = " (expected a key pair file of spikeline keygen --curve --out FILE)";
    nlohmann::json json;
    try {
        json = nlohmann::json::parse(read_small_text(path, "CURVE secret key file"));
    } catch (const nlohmann::json::exception&) {
        throw InputError(path.string() + " is not JSON" + form);
    }
    require(json.is_object() && json.value("public_key", nlohmann::json()).is_string() &&
                json.value("secret_key", nlohmann::json()).is_string(),
            path.string() + " has no public_key and secret_key" + form);
    CurveKeyPair keys{json["public_key"].get<std::string>(), json["secret_key"].get<std::string>()};
    require(is_z85_key(keys.public_key) && is_z85_key(keys.secret_key),
            path.string() + ": the keys must be 40 Z85 characters each" + form);
    char derived[kZ85KeyChars + 1];
    require(::zmq_curve_public(derived, keys.secret_key.c_str()) == 0 && keys.public_key == derived,
            path.string() + ": the public key does not belong to the secret key" + form);
    return keys;
}

std::string read_curve_public(const std::filesystem::path& path) {
    const std::string text = trimmed(read_small_text(path, "CURVE public key file"));
    std::string key = text;
    // '{' is also a Z85 character: a bare key that starts with it is a key, not JSON.
    if (!is_z85_key(text) && !text.empty() && text.front() == '{') {
        const nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
        key = json.is_object() && json.value("public_key", nlohmann::json()).is_string()
                  ? json["public_key"].get<std::string>()
                  : "";
    }
    require(is_z85_key(key), path.string() +
                                 " is not a CURVE public key (expected spikeline keygen --curve's FILE.pub, or one "
                                 "line of 40 Z85 characters)");
    return key;
}

std::vector<std::string> read_curve_clients(const std::filesystem::path& dir) {
    require(std::filesystem::is_directory(dir),
            "--curve-clients " + dir.string() + " is not a folder (expected a folder of clients' .pub files)");
    std::vector<std::string> keys;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
        if (entry.is_regular_file() && entry.path().extension() == ".pub")
            keys.push_back(read_curve_public(entry.path()));
    require(!keys.empty(), "--curve-clients " + dir.string() +
                               " holds no .pub file: copy each allowed subscriber's public key file there "
                               "(spikeline keygen --curve --out NAME writes NAME.pub)");
    return keys;
}

bool endpoint_is_local(const std::string& endpoint) {
    if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0)
        return true;
    if (endpoint.rfind("tcp://", 0) != 0)
        return false;
    std::string host = endpoint.substr(6);
    const auto colon = host.rfind(':');
    if (colon == std::string::npos)
        return false;
    host = host.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host.empty() || host == "*")
        return false;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr)
        return false; // an interface name or an unknown host: not known to be loopback
    bool local = true;
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next)
        local = local && is_loopback(a->ai_addr);
    ::freeaddrinfo(found);
    return local;
}

} // namespace spikeline::stream
