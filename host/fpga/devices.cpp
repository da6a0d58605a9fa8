#include "fpga/devices.hpp"

#include "util/errors.hpp"

#include <experimental/xrt_system.h>
#include <xrt/xrt_device.h>

#include <cstdlib>

namespace spikeline {

std::vector<XrtDeviceInfo> list_xrt_devices() {
    std::vector<XrtDeviceInfo> devices;
    try {
        unsigned count = xrt::system::enumerate_devices();
        if (count == 0 && std::getenv("XCL_EMULATION_MODE"))
            count = 1;
        for (unsigned index = 0; index < count; ++index) {
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
        throw InputError(std::string("XRT is not usable here (") + e.what() +
                         "): install XRT and 'source /opt/xilinx/xrt/setup.sh' (with Debian's packages: set "
                         "XILINX_XRT to a folder whose lib/ links to /usr/lib/x86_64-linux-gnu)");
    }
    return devices;
}

} // namespace spikeline
