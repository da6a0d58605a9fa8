#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "stream/recover.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <boost/program_options.hpp>
#include <cstdio>

namespace spikeline::cli {

namespace po = boost::program_options;

int cmd_recover(int argc, char** argv) {
    std::string dir;
    bool quiet = false;
    po::options_description visible(
        "spikeline recover DIR\n\n"
        "After a crash (SIGKILL, power loss) of a stream (or detect, sort, simulate) writing into DIR, turns what is "
        "on disk into a folder that opens: recording.bin cut to whole frames with a valid recording.meta, the "
        "per-spike arrays (spike_times.npy, ...) cut to one length, gaps.tsv and unit_updates.npy to whole rows; "
        "other temporaries of the dead process (files it was finishing) are removed. Writes DIR/recover.json and "
        "says what was kept and lost. The Phy folder's derived files (templates, cluster tables, params.py) are "
        "not rebuilt: `spikeline sort DIR/recording.bin --sorter DIR/sorter.json --out NEW` makes a full one.\n\n"
        "options");
    visible.add_options()            //
        ("help,h", "show this help") //
        ("quiet,q", po::bool_switch(&quiet), "no report");
    po::options_description all;
    all.add(visible).add_options()("dir", po::value(&dir));
    po::positional_options_description positional;
    positional.add("dir", 1);
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, all, positional, vm))
        return 0;
    require(!dir.empty(), "no folder given: spikeline recover DIR");

    const stream::RecoveryReport report = stream::recover_folder(dir);
    if (!quiet) {
        if (!report.recovered_anything && report.removed.empty()) {
            std::printf("spikeline recover: nothing to recover in %s (no temporaries of a dead process; "
                        "recording.bin, if any, matches its .meta)\n",
                        dir.c_str());
            return 0;
        }
        std::printf("spikeline recover %s\n", dir.c_str());
        for (const std::string& action : report.actions)
            std::printf("  %s\n", action.c_str());
        std::printf("  lost         %llu bytes cut short (partial frames and rows), %llu spikes not in every array;"
                    " data still in the process's memory when it died is not on disk\n",
                    static_cast<unsigned long long>(report.bytes_dropped),
                    static_cast<unsigned long long>(report.spikes_dropped));
        if (report.spikes_after_recording > 0)
            std::printf("  note         %llu spikes lie after recording.bin's last frame (their raw data was not "
                        "written yet)\n",
                        static_cast<unsigned long long>(report.spikes_after_recording));
        if (report.recovered_anything)
            std::printf("  report       %s\n", (std::filesystem::path(dir) / "recover.json").c_str());
    }
    return 0;
}

} // namespace spikeline::cli
