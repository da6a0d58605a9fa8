#pragma once
// A metadata-only xclbin (no bitstream) describing the spikeline_detect kernel, in the public axlf layout of XRT's
// xclbin.h. XRT's noop shim (XCL_EMULATION_MODE=noop) accepts it, so the XRT backend's device, buffer and run logic
// can be tested on machines without Vitis or a card. Real images come from v++ (kernels/Makefile).
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace spikeline {

/// One memory bank of the platform, e.g. DDR[0] of an Alveo U250.
struct XclbinMemoryBank {
    std::string tag;                ///< as v++ --sp names it: "DDR[0]", "HBM[3]"; at most 15 characters
    std::uint64_t base_address = 0; ///< device address of the bank's first byte
    std::uint64_t size_bytes = 0;   ///< a multiple of 1024 (the xclbin stores KiB)
};

/// One argument of the kernel, as the s_axilite register map and the m_axi bundles expose it.
struct XclbinKernelArg {
    std::string name;         ///< the C parameter name
    std::string type;         ///< the C type, informative only ("const short*", "unsigned int")
    bool global = false;      ///< true: a pointer into device memory (addressQualifier 1), false: a scalar (0)
    std::string port;         ///< the AXI port: "S_AXI_CONTROL" for scalars, "M_AXI_<BUNDLE>" for pointers
    std::uint32_t size = 4;   ///< bytes in the register map: 8 for pointers, 4 for 32-bit scalars
    std::uint32_t offset = 0; ///< byte offset in the register map
    int bank = -1;            ///< global arguments: index into XclbinDescription::banks
};

/// An AXI master port of the kernel (one per m_axi bundle).
struct XclbinMasterPort {
    std::string name;             ///< "M_AXI_GMEM_IN"
    std::uint32_t data_width = 0; ///< bits
};

struct XclbinDescription {
    std::string kernel_name = "spikeline_detect";
    std::string instance_name = "spikeline_detect_1"; ///< the compute unit, as v++ --nk names it
    std::string platform_vbnv;                        ///< e.g. xilinx_u250_gen3x16_xdma_4_1_202210_1; < 64 characters
    std::uint64_t cu_base_address = 0x1800000;        ///< the compute unit's s_axilite base on the card
    std::uint64_t cu_address_range = 0x10000;
    bool ap_ctrl_chain = true; ///< Vitis HLS's default control protocol for kernels (-flow_target vitis)
    std::uint16_t kernel_clock_mhz = 300;
    std::vector<XclbinMemoryBank> banks;
    std::vector<XclbinMasterPort> master_ports;
    std::vector<XclbinKernelArg> args; ///< in signature order: args[i] is argument index i
};

/// The spikeline_detect kernel (kernels/spikeline_detect.cpp) on an Alveo U250-like platform with four DDR banks:
/// frames and params on DDR[0], events and event_count on DDR[1], as kernels/spikeline_detect_u250.cfg connects them.
///
/// The register map follows Vitis HLS: 0x00 ap_ctrl, 0x04 GIE, 0x08 IER, 0x0C ISR, arguments from 0x10, each one's
/// data words (8 bytes for a pointer, 4 for a 32-bit scalar) followed by one reserved 4-byte word. That gives
/// frames 0x10, n_frames 0x1C, params 0x24, events 0x30, max_events 0x3C, event_count 0x44, control 0x50.
XclbinDescription
spikeline_detect_description(const std::string& platform_vbnv = "xilinx_u250_gen3x16_xdma_4_1_202210_1");

/// The spikeline_sort kernel (kernels/spikeline_sort.cpp, detection + sorting) on the same platform: frames and both
/// parameter blocks on DDR[0], spikes and spike_count on DDR[1].
XclbinDescription
spikeline_sort_description(const std::string& platform_vbnv = "xilinx_u250_gen3x16_xdma_4_1_202210_1");

/// The xclbin's UUID: a hash of the description, so the same description always gives the same file.
std::array<std::uint8_t, 16> xclbin_uuid(const XclbinDescription& d);

/// The EMBEDDED_METADATA XML that XRT reads the kernel's arguments, ports and instances from.
std::string xclbin_metadata_xml(const XclbinDescription& d);

/// Writes the xclbin atomically (temporary file, then rename). Sections: EMBEDDED_METADATA, MEM_TOPOLOGY,
/// IP_LAYOUT, CONNECTIVITY, CLOCK_FREQ_TOPOLOGY. Throws InputError when the description is inconsistent.
void write_xclbin(const std::filesystem::path& out, const XclbinDescription& d);

} // namespace spikeline
