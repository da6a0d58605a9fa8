#pragma once
// What XRT sees: the cards (or the emulated device under XCL_EMULATION_MODE), for `spikeline devices`.
#include <string>
#include <vector>

namespace spikeline {

struct XrtDeviceInfo {
    unsigned index = 0;
    std::string name; ///< the shell (platform) name, e.g. xilinx_u250_gen3x16_xdma_shell_4_1
    std::string bdf;  ///< PCIe bus:device.function
};

/// Lists the XRT devices; an empty list when there is none. Under XCL_EMULATION_MODE (which XRT's enumeration
/// does not count) the emulated device 0 is listed when it opens. Throws InputError when XRT itself is not set up.
std::vector<XrtDeviceInfo> list_xrt_devices();

} // namespace spikeline
