#pragma once
// Key files of the secure link and the CURVE publisher (formats in docs/FORMATS.md, sections 9.1 and 10.1), and the
// rule that a socket listens beyond loopback only with authentication on.
#include "stream/link_auth.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace spikeline::stream {

/// Throws InputError unless path is a regular file that neither its group nor others may read or write.
void require_private_file(const std::filesystem::path& path, const std::string& what);

/// Writes text to a new file of mode 0600 (atomically: a temporary renamed into place); refuses to replace a file.
void write_private_file(const std::filesystem::path& path, const std::string& text);

/// Reads a link key file (64 hex digits); refuses a file group or others may read (InputError saying chmod 600).
LinkKey read_link_key(const std::filesystem::path& path);
/// A new random link key, as its file's text.
std::string new_link_key_text();

/// A CURVE key pair in Z85 (40 characters each).
struct CurveKeyPair {
    std::string public_key;
    std::string secret_key;
};

CurveKeyPair new_curve_key_pair();
/// Text of a key pair file (private) and of its public key file.
std::string curve_secret_file_text(const CurveKeyPair& keys);
std::string curve_public_file_text(const std::string& public_key);
/// Reads a key pair file (private: refused when group or others may read it).
CurveKeyPair read_curve_secret(const std::filesystem::path& path);
/// Reads a public key file: spikeline's JSON or a line of 40 Z85 characters.
std::string read_curve_public(const std::filesystem::path& path);
/// The public keys of every *.pub file in dir (at least one, else InputError).
std::vector<std::string> read_curve_clients(const std::filesystem::path& dir);

/// Whether a ZeroMQ endpoint to bind stays on this machine: tcp to a loopback address (127.0.0.0/8, ::1,
/// localhost), ipc:// or inproc://. tcp://*:PORT and other interfaces do not.
bool endpoint_is_local(const std::string& endpoint);

} // namespace spikeline::stream
