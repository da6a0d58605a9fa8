#pragma once
// A metadata-only xclbin (no bitstream) describing one of spikeline's kernels (the argument layout of
// hls/include/spikeline/hw/kernel_abi.hpp) with one or more compute units, in the public axlf layout of XRT's xclbin.h.
// XRT's noop shim (XCL_EMULATION_MODE=noop) accepts it, so the XRT backend's device, buffer and run logic can be
// tested on machines without Vitis or a card. Real images come from v++ (kernels/Makefile).
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
    int bank = -1;            ///< global arguments: index into XclbinDescription::banks (compute units may override)
};

/// One compute unit (instance) of the kernel, as v++ --nk names it.
struct XclbinComputeUnit {
    std::string name;                ///< "spikeline_sort_1"
    std::uint64_t base_address = 0;  ///< its s_axilite base on the card
    std::vector<int> arg_banks = {}; ///< bank of each argument (scalars ignored); empty: the arguments' own banks
};

/// An AXI master port of the kernel (one per m_axi bundle).
struct XclbinMasterPort {
    std::string name;             ///< "M_AXI_GMEM_IN"
    std::uint32_t data_width = 0; ///< bits
};

struct XclbinDescription {
    std::string kernel_name = "spikeline_sort";
    std::vector<XclbinComputeUnit> compute_units; ///< at least one
    std::string platform_vbnv;                    ///< e.g. xilinx_u250_gen3x16_xdma_4_1_202210_1; < 64 characters
    std::uint64_t cu_address_range = 0x10000;
    bool ap_ctrl_chain = true; ///< Vitis HLS's default control protocol for kernels (-flow_target vitis)
    std::uint16_t kernel_clock_mhz = 300;
    std::vector<XclbinMemoryBank> banks;
    std::vector<XclbinMasterPort> master_ports;
    std::vector<XclbinKernelArg> args; ///< in signature order: args[i] is argument index i
};

constexpr const char* kU250Platform = "xilinx_u250_gen3x16_xdma_4_1_202210_1";

/// One of spikeline's kernels (spikeline_detect, spikeline_sort or spikeline_rtl: the same eight arguments of
/// kernel_abi.hpp at its register offsets) with `compute_units` instances <kernel>_1, <kernel>_2, ... on an Alveo
/// U250-like platform with four DDR banks. Compute unit k (from 0) reads frames and its program from DDR[2k mod 4]
/// and keeps its state there, and writes its output image to DDR[2k+1 mod 4], as the v++ --sp lines of
/// kernels/*_u250.cfg connect them; the control protocol is ap_ctrl_chain for the HLS kernels (Vitis HLS's default)
/// and ap_ctrl_hs for the RTL kernel.
XclbinDescription spikeline_kernel_description(const std::string& kernel_name, int compute_units = 1,
                                               const std::string& platform_vbnv = kU250Platform);

/// spikeline_kernel_description("spikeline_detect", 1, platform_vbnv)
XclbinDescription spikeline_detect_description(const std::string& platform_vbnv = kU250Platform);

/// spikeline_kernel_description("spikeline_sort", 1, platform_vbnv)
XclbinDescription spikeline_sort_description(const std::string& platform_vbnv = kU250Platform);

/// The xclbin's UUID: a hash of the description, so the same description always gives the same file.
std::array<std::uint8_t, 16> xclbin_uuid(const XclbinDescription& d);

/// The EMBEDDED_METADATA XML that XRT reads the kernel's arguments, ports and instances from.
std::string xclbin_metadata_xml(const XclbinDescription& d);

/// Writes the xclbin atomically (temporary file, then rename). Sections: EMBEDDED_METADATA, MEM_TOPOLOGY,
/// IP_LAYOUT, CONNECTIVITY, CLOCK_FREQ_TOPOLOGY. Throws InputError when the description is inconsistent.
void write_xclbin(const std::filesystem::path& out, const XclbinDescription& d);

} // namespace spikeline
