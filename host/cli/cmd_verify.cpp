#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "util/errors.hpp"
#include "util/manifest.hpp"

#include <boost/program_options.hpp>
#include <cstdio>

namespace spikeline::cli {

namespace po = boost::program_options;

namespace {

/// Exit status when a file changed or is missing (2 stays bad input, e.g. no manifest).
constexpr int kVerifyFailed = 4;

} // namespace

int cmd_verify(int argc, char** argv) {
    std::string dir;
    bool quiet = false;
    po::options_description visible(
        "spikeline verify DIR\n\n"
        "Checks an output folder of detect, sort or stream against the SHA-256 of every file in its manifest.json "
        "(written last by the command) and names each file that changed or is missing. Exit status: 0 all files "
        "as written; 4 a file changed or is missing; 2 no readable manifest. Files added to the folder later are "
        "listed but do not fail the check.\n\n"
        "options");
    visible.add_options()            //
        ("help,h", "show this help") //
        ("quiet,q", po::bool_switch(&quiet), "print only the files that changed or are missing");
    po::options_description all;
    all.add(visible).add_options()("dir", po::value(&dir));
    po::positional_options_description positional;
    positional.add("dir", 1);
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, all, positional, vm))
        return 0;
    require(!dir.empty(), "no folder given: spikeline verify DIR");

    const ManifestCheck check = verify_manifest(dir);
    for (const std::string& name : check.changed)
        std::printf("CHANGED  %s\n", name.c_str());
    for (const std::string& name : check.missing)
        std::printf("MISSING  %s\n", name.c_str());
    if (!quiet) {
        for (const std::string& name : check.unlisted)
            std::printf("extra    %s (not in the manifest)\n", name.c_str());
        std::printf("spikeline verify %s: %zu files as written by %s, %zu changed, %zu missing\n", dir.c_str(),
                    check.unchanged.size(), check.command.c_str(), check.changed.size(), check.missing.size());
    }
    return check.ok() ? 0 : kVerifyFailed;
}

} // namespace spikeline::cli
