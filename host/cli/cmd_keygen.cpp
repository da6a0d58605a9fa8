#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "stream/keys.hpp"
#include "util/errors.hpp"

#include <boost/program_options.hpp>
#include <cstdio>

namespace spikeline::cli {

namespace po = boost::program_options;

int cmd_keygen(int argc, char** argv) {
    std::string out;
    bool curve = false, quiet = false;
    po::options_description visible(
        "spikeline keygen --out FILE [--curve]\n\n"
        "Makes a new random key, readable by its owner only (mode 0600); never replaces an existing file.\n"
        "  default: a link key (64 hex digits) for sealed implant link frames: the receiver (stream --key FILE) and "
        "the sender (replay --key FILE) hold the same file.\n"
        "  --curve: a ZeroMQ CURVE key pair in FILE (JSON, Z85; secret) and its public key in FILE.pub. The "
        "publisher's pair goes to stream --curve-secret FILE and its FILE.pub to subscribers; a subscriber's FILE.pub "
        "goes into the publisher's --curve-clients folder.\n\n"
        "options");
    visible.add_options()                                                     //
        ("help,h", "show this help")                                          //
        ("out,o", po::value(&out)->required(), "the key file to create")      //
        ("curve", po::bool_switch(&curve), "a CURVE key pair (and FILE.pub)") //
        ("quiet,q", po::bool_switch(&quiet), "print nothing");
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, vm))
        return 0;
    if (!curve) {
        stream::write_private_file(out, stream::new_link_key_text());
        if (!quiet)
            std::printf("spikeline keygen: link key written to %s (mode 0600): give it to stream --key and to the "
                        "sender\n",
                        out.c_str());
        return 0;
    }
    const std::string public_path = out + ".pub";
    require(!std::filesystem::exists(public_path),
            public_path + " exists: keys are never overwritten (remove it first, or choose another --out)");
    const stream::CurveKeyPair keys = stream::new_curve_key_pair();
    stream::write_private_file(out, stream::curve_secret_file_text(keys));
    stream::write_private_file(public_path, stream::curve_public_file_text(keys.public_key));
    if (!quiet)
        std::printf("spikeline keygen: CURVE key pair written to %s (secret, mode 0600), public key %s to %s\n",
                    out.c_str(), keys.public_key.c_str(), public_path.c_str());
    return 0;
}

} // namespace spikeline::cli
