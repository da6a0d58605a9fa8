#include "fpga/devices.hpp"

#include <experimental/xrt_system.h>
#include <xrt/xrt_device.h>

#include <cstdlib>

namespace spikeline {
namespace {

std::string environment_value(const char* name) {
    const char* value = std::getenv(name);
    return value ? std::string("'") + value + "'" : std::string("unset");
}

} // namespace

std::vector<XrtDeviceInfo> list_xrt_devices() {
    std::vector<XrtDeviceInfo> devices;
    unsigned index = 0;
    try {
        unsigned count = xrt::system::enumerate_devices();
        if (count == 0 && std::getenv("XCL_EMULATION_MODE"))
            count = 1;
        for (; index < count; ++index) {
            const xrt::device device(index);
            XrtDeviceInfo info{index, "emulated device", "-"};
            try { // emulation shims answer no queries
                info.name = device.get_info<xrt::info::device::name>();
                info.bdf = device.get_info<xrt::info::device::bdf>();
            } catch (const std::exception&) {
            }
            devices.push_back(info);
        }
    } catch (const std::exception& e) {
        throw xrt_device_error(e, index);
    }
    return devices;
}

std::string no_fpga_card_advice() {
    return "check that an Alveo card is installed, that its xocl and xclmgmt drivers are loaded (lsmod | grep xocl) "
           "and that 'xbutil examine' lists it; without a card use --backend cpu";
}

InputError xrt_device_error(const std::exception& xrt_error, unsigned device_index) {
    // XRT 2.13 reports these three causes only through its messages; anything else keeps XRT's own words.
    const std::string what = xrt_error.what();
    const std::string said = " (XRT says: " + what + ")";
    if (what.find("No such library") != std::string::npos)
        return InputError("XRT is not set up" + said + ": XILINX_XRT (" + environment_value("XILINX_XRT") +
                          ") must be XRT's install folder, whose lib/ holds the card's driver library or, under "
                          "XCL_EMULATION_MODE (" +
                          environment_value("XCL_EMULATION_MODE") +
                          "), that mode's shim (libxrt_noop.so.2 for noop); run 'source /opt/xilinx/xrt/setup.sh' or "
                          "fix XILINX_XRT");
    if (what.find("XILINX_XRT") != std::string::npos)
        return InputError("XRT is not set up" + said +
                          ": with Xilinx's XRT package run 'source /opt/xilinx/xrt/setup.sh'; with Debian's packages "
                          "(libxrt1) set XILINX_XRT to a folder whose lib/ links to /usr/lib/x86_64-linux-gnu");
    if (what.find("Could not open device") != std::string::npos)
        return InputError("no FPGA card at XRT device index " + std::to_string(device_index) + said + ": " +
                          no_fpga_card_advice());
    return InputError("XRT cannot open device " + std::to_string(device_index) + said + ": " + no_fpga_card_advice());
}

} // namespace spikeline
