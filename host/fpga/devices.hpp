#pragma once
// What XRT sees: the cards (or the emulated device under XCL_EMULATION_MODE), for `spikeline devices`; and, shared
// with the XRT backend, why XRT could not open one, telling "XRT is not set up" apart from "no card".
#include "util/errors.hpp"

#include <exception>
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

/// What to check when XRT is set up but sees no card.
std::string no_fpga_card_advice();

/// Turns the exception XRT threw while enumerating or opening devices into an InputError that names the cause:
/// XRT not set up (XILINX_XRT unset, or its lib/ lacks the card's driver library or the shim that
/// XCL_EMULATION_MODE selects), or no card at device_index. Other failures keep XRT's message.
InputError xrt_device_error(const std::exception& xrt_error, unsigned device_index);

} // namespace spikeline
