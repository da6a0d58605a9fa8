#include "backend/opencl_backend.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "fpga/devices.hpp"

#include <boost/program_options.hpp>
#include <cstdio>
#include <cstdlib>

namespace spikeline::cli {

namespace po = boost::program_options;

namespace {

/// Prints the XRT cards; returns how many. Why there is none goes to stderr; an XRT that is not set up sets *error.
int print_xrt_devices(bool* error) {
    std::printf("XRT cards (--backend xrt --device N):\n");
    try {
        const auto devices = list_xrt_devices();
        if (devices.empty())
            std::fprintf(stderr, "spikeline devices: XRT sees no device: %s.\n", no_fpga_card_advice().c_str());
        const char* emulation = std::getenv("XCL_EMULATION_MODE");
        for (const auto& d : devices)
            std::printf("  [%u] %s  %s%s\n", d.index, d.name.c_str(), d.bdf.c_str(),
                        emulation ? (std::string("  (emulation: XCL_EMULATION_MODE=") + emulation + ")").c_str() : "");
        return static_cast<int>(devices.size());
    } catch (const InputError& e) {
        std::fprintf(stderr, "spikeline devices: %s\n", e.what());
        *error = true;
        return 0;
    }
}

/// Prints the OpenCL platforms and their devices; returns how many devices.
int print_opencl_devices(bool* error) {
    std::printf("OpenCL devices (--backend opencl --opencl-platform P --opencl-device D):\n");
    try {
        int count = 0;
        for (const auto& platform : list_opencl_devices()) {
            std::printf("  platform %d: %s (%s)\n", platform.index, platform.name.c_str(), platform.version.c_str());
            for (const auto& d : platform.devices) {
                std::printf("    device %d: %s  %s, %u compute units, %.1f GB (buffers up to %.1f GB), %s, driver %s\n",
                            d.index, d.name.c_str(), d.type.c_str(), d.compute_units,
                            static_cast<double>(d.global_memory_bytes) / 1e9,
                            static_cast<double>(d.max_allocation_bytes) / 1e9, d.version.c_str(), d.driver.c_str());
                ++count;
            }
        }
        return count;
    } catch (const InputError& e) {
        std::fprintf(stderr, "spikeline devices: %s\n", e.what());
        *error = true;
        return 0;
    }
}

} // namespace

int cmd_devices(int argc, char** argv) {
    po::options_description visible("spikeline devices\n\nLists the FPGA cards XRT can use for --backend xrt and the "
                                    "OpenCL devices for --backend opencl\n\noptions");
    visible.add_options()("help,h", "show this help");
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, vm))
        return 0;
    bool error = false;
    const int listed = print_xrt_devices(&error) + print_opencl_devices(&error);
    if (listed > 0)
        return 0;
    return error ? 2 : 1;
}

} // namespace spikeline::cli
