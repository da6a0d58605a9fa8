#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "fpga/devices.hpp"

#include <boost/program_options.hpp>
#include <cstdio>
#include <cstdlib>

namespace spikeline::cli {

namespace po = boost::program_options;

int cmd_devices(int argc, char** argv) {
    po::options_description visible(
        "spikeline devices\n\nLists the FPGA cards XRT can use for --backend xrt\n\noptions");
    visible.add_options()("help,h", "show this help");
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, vm))
        return 0;
    const auto devices = list_xrt_devices();
    if (devices.empty()) {
        std::fprintf(stderr, "spikeline devices: XRT sees no device: %s.\n", no_fpga_card_advice().c_str());
        return 1;
    }
    const char* emulation = std::getenv("XCL_EMULATION_MODE");
    for (const auto& d : devices)
        std::printf("[%u] %s  %s%s\n", d.index, d.name.c_str(), d.bdf.c_str(),
                    emulation ? (std::string("  (emulation: XCL_EMULATION_MODE=") + emulation + ")").c_str() : "");
    return 0;
}

} // namespace spikeline::cli
