// Only XRT's public layout header is used (no XRT library): the xclbin is assembled byte by byte as
//   axlf (magic, header, first section header) | further section headers | sections, each 8-byte aligned.
#include "fpga/xclbin_writer.hpp"

#include "spikeline/hw/kernel_abi.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <xclbin.h>

#include <cstddef>
#include <cstring>
#include <sstream>

namespace spikeline {
namespace {

using Bytes = std::vector<char>;

// resize + memcpy rather than insert: GCC 12 reports a false stringop-overflow for the latter.
template <class T> void append(Bytes& out, const T& value) {
    const std::size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &value, sizeof(T));
}

void pad_to(Bytes& out, std::size_t size) {
    if (out.size() < size)
        out.resize(size, 0);
}

std::size_t align8(std::size_t n) {
    return (n + 7) & ~std::size_t{7};
}

// Copies a string into a fixed, NUL-terminated field; too long is an error rather than a silently cut name.
template <std::size_t N, class Char> void copy_name(Char (&field)[N], const std::string& value, const char* what) {
    require(value.size() < N, std::string(what) + " '" + value + "' is longer than " + std::to_string(N - 1) +
                                  " characters, the xclbin field's limit");
    std::memset(field, 0, N);
    std::memcpy(field, value.data(), value.size());
}

std::string hex(std::uint64_t value) {
    std::ostringstream s;
    s << "0x" << std::hex << std::uppercase << value;
    return s.str();
}

// FNV-1a: small, stable across platforms and compilers, and good enough to tell descriptions apart.
std::uint64_t fnv1a(const std::string& text, std::uint64_t seed) {
    std::uint64_t h = seed;
    for (const unsigned char c : text) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

// The bank compute unit `cu` reaches argument `arg` through.
int arg_bank(const XclbinDescription& d, std::size_t cu, std::size_t arg) {
    const auto& banks = d.compute_units[cu].arg_banks;
    return banks.empty() ? d.args[arg].bank : banks[arg];
}

void validate(const XclbinDescription& d) {
    require(!d.kernel_name.empty() && !d.compute_units.empty(), "xclbin: the kernel needs a name and a compute unit");
    require(!d.banks.empty(), "xclbin: at least one memory bank is needed");
    for (const auto& bank : d.banks)
        require(bank.size_bytes > 0 && bank.size_bytes % 1024 == 0,
                "xclbin: bank " + bank.tag + " needs a size that is a positive multiple of 1024");
    // Names go into the XML unescaped.
    const auto plain = [](const std::string& s) { return s.find_first_of("<>&\"'") == std::string::npos; };
    require(plain(d.kernel_name) && plain(d.platform_vbnv), "xclbin: names must not contain XML markup characters");
    for (const auto& cu : d.compute_units) {
        require(!cu.name.empty() && plain(cu.name), "xclbin: compute unit names must be plain and not empty");
        require(cu.arg_banks.empty() || cu.arg_banks.size() == d.args.size(),
                "xclbin: compute unit " + cu.name + " needs one bank per argument (or none)");
    }
    for (const auto& arg : d.args) {
        require(plain(arg.name) && plain(arg.type) && plain(arg.port),
                "xclbin: argument names and types must not contain XML markup characters");
        require(arg.offset >= 0x10 && arg.offset + arg.size <= d.cu_address_range,
                "xclbin: argument " + arg.name + " lies outside the register map");
    }
    for (std::size_t cu = 0; cu < d.compute_units.size(); ++cu)
        for (std::size_t i = 0; i < d.args.size(); ++i) {
            const int bank = arg_bank(d, cu, i);
            if (d.args[i].global)
                require(bank >= 0 && static_cast<std::size_t>(bank) < d.banks.size(),
                        "xclbin: global argument " + d.args[i].name + " of compute unit " + d.compute_units[cu].name +
                            " needs a memory bank");
        }
}

// MEM_TOPOLOGY: the banks buffers can be allocated in; a bank no argument connects to is marked unused.
Bytes mem_topology_section(const XclbinDescription& d) {
    Bytes out;
    append(out, static_cast<std::int32_t>(d.banks.size()));
    pad_to(out, offsetof(mem_topology, m_mem_data));
    for (std::size_t i = 0; i < d.banks.size(); ++i) {
        mem_data bank{};
        bank.m_type = MEM_DDR4;
        bank.m_used = 0;
        for (std::size_t cu = 0; cu < d.compute_units.size(); ++cu)
            for (std::size_t arg = 0; arg < d.args.size(); ++arg)
                if (d.args[arg].global && static_cast<std::size_t>(arg_bank(d, cu, arg)) == i)
                    bank.m_used = 1;
        bank.m_size = d.banks[i].size_bytes / 1024;
        bank.m_base_address = d.banks[i].base_address;
        copy_name(bank.m_tag, d.banks[i].tag, "memory bank tag");
        append(out, bank);
    }
    return out;
}

// IP_LAYOUT: the compute units on the AXI-lite bus. XRT finds a kernel's CUs by the name "kernel:instance" and
// reads the control protocol and interrupt use from the properties.
Bytes ip_layout_section(const XclbinDescription& d) {
    Bytes out;
    append(out, static_cast<std::int32_t>(d.compute_units.size()));
    pad_to(out, offsetof(ip_layout, m_ip_data));
    for (std::size_t i = 0; i < d.compute_units.size(); ++i) {
        ip_data cu{};
        cu.m_type = IP_KERNEL;
        const std::uint32_t control = d.ap_ctrl_chain ? AP_CTRL_CHAIN : AP_CTRL_HS;
        // interrupt id i: one interrupt line per compute unit
        cu.properties = IP_INT_ENABLE_MASK | (control << IP_CONTROL_SHIFT) | (static_cast<std::uint32_t>(i) << 1);
        cu.m_base_address = d.compute_units[i].base_address;
        copy_name(cu.m_name, d.kernel_name + ":" + d.compute_units[i].name, "compute unit name");
        append(out, cu);
    }
    return out;
}

// CONNECTIVITY: which bank each global argument of each CU reaches; xrt::kernel::group_id() answers from it.
Bytes connectivity_section(const XclbinDescription& d) {
    Bytes out;
    std::int32_t count = 0;
    for (const auto& arg : d.args)
        count += arg.global ? 1 : 0;
    append(out, count * static_cast<std::int32_t>(d.compute_units.size()));
    pad_to(out, offsetof(connectivity, m_connection));
    for (std::size_t cu = 0; cu < d.compute_units.size(); ++cu)
        for (std::size_t i = 0; i < d.args.size(); ++i) {
            if (!d.args[i].global)
                continue;
            connection c{};
            c.arg_index = static_cast<std::int32_t>(i);
            c.m_ip_layout_index = static_cast<std::int32_t>(cu);
            c.mem_data_index = arg_bank(d, cu, i);
            append(out, c);
        }
    return out;
}

// CLOCK_FREQ_TOPOLOGY: the kernel clock (informative for tools such as xbutil).
Bytes clock_section(const XclbinDescription& d) {
    Bytes out;
    append(out, std::int16_t{2});
    pad_to(out, offsetof(clock_freq_topology, m_clock_freq));
    const std::pair<std::uint8_t, const char*> clocks[] = {{CT_DATA, "DATA_CLK"}, {CT_KERNEL, "KERNEL_CLK"}};
    for (const auto& [type, name] : clocks) {
        clock_freq clock{};
        clock.m_freq_Mhz = d.kernel_clock_mhz;
        clock.m_type = type;
        copy_name(clock.m_name, name, "clock name");
        append(out, clock);
    }
    return out;
}

struct Section {
    axlf_section_kind kind;
    const char* name;
    Bytes data;
};

} // namespace

XclbinDescription spikeline_kernel_description(const std::string& kernel_name, int compute_units,
                                               const std::string& platform_vbnv) {
    require(compute_units >= 1 && compute_units <= 16, "xclbin: between 1 and 16 compute units");
    namespace abi = hw::abi;
    XclbinDescription d;
    d.kernel_name = kernel_name;
    d.platform_vbnv = platform_vbnv;
    d.ap_ctrl_chain = kernel_name != "spikeline_rtl";
    constexpr std::uint64_t kBank = 16ULL << 30; // the U250's four 16 GiB DDR4 banks
    for (std::uint64_t i = 0; i < 4; ++i)
        d.banks.push_back({"DDR[" + std::to_string(i) + "]", 0x4000000000ULL + i * kBank, kBank});
    d.master_ports = {{"M_AXI_GMEM_IN", 512}, {"M_AXI_GMEM_OUT", 512}, {"M_AXI_GMEM_STATE", 512}};
    const char* const types[abi::kArgCount] = {"short*",        "unsigned int", "unsigned int*", "unsigned int",
                                               "unsigned int*", "unsigned int", "unsigned int",  "unsigned int*"};
    const char* const ports[abi::kArgCount] = {"M_AXI_GMEM_IN",  nullptr, "M_AXI_GMEM_IN", nullptr,
                                               "M_AXI_GMEM_OUT", nullptr, nullptr,         "M_AXI_GMEM_STATE"};
    for (int i = 0; i < abi::kArgCount; ++i) {
        const bool global = abi::kArgs[i].pointer;
        const int bank = i == abi::kArgOutput ? 1 : 0;
        d.args.push_back({abi::kArgs[i].name, types[i], global, global ? ports[i] : "S_AXI_CONTROL", global ? 8u : 4u,
                          abi::kArgOffsets[i], global ? bank : -1});
    }
    for (int cu = 0; cu < compute_units; ++cu) {
        XclbinComputeUnit unit{kernel_name + "_" + std::to_string(cu + 1),
                               0x1800000 + static_cast<std::uint64_t>(cu) * d.cu_address_range,
                               {}};
        for (const auto& arg : d.args)
            unit.arg_banks.push_back(arg.global ? (arg.bank + 2 * cu) % 4 : -1);
        d.compute_units.push_back(std::move(unit));
    }
    return d;
}

XclbinDescription spikeline_detect_description(const std::string& platform_vbnv) {
    return spikeline_kernel_description("spikeline_detect", 1, platform_vbnv);
}

XclbinDescription spikeline_sort_description(const std::string& platform_vbnv) {
    return spikeline_kernel_description("spikeline_sort", 1, platform_vbnv);
}

std::string xclbin_metadata_xml(const XclbinDescription& d) {
    std::ostringstream x;
    x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<project name=\"" << d.kernel_name << "\">\n"
      << "  <platform vendor=\"xilinx\" name=\"" << d.platform_vbnv << "\">\n"
      << "    <device name=\"fpga0\">\n"
      << "      <core name=\"OCL_REGION_0\" target=\"hw\" type=\"clc_region\">\n"
      << "        <kernelClocks>\n"
      << "          <clock port=\"DATA_CLK\" frequency=\"" << d.kernel_clock_mhz << "MHz\"/>\n"
      << "          <clock port=\"KERNEL_CLK\" frequency=\"" << d.kernel_clock_mhz << "MHz\"/>\n"
      << "        </kernelClocks>\n"
      << "        <kernel name=\"" << d.kernel_name << "\" language=\"c\" vlnv=\"xilinx.com:hls:" << d.kernel_name
      << ":1.0\" preferredWorkGroupSizeMultiple=\"0\" workGroupSize=\"1\" interrupt=\"true\" hwControlProtocol=\""
      << (d.ap_ctrl_chain ? "ap_ctrl_chain" : "ap_ctrl_hs") << "\">\n"
      << "          <port name=\"S_AXI_CONTROL\" mode=\"slave\" range=\"0x1000\" dataWidth=\"32\" "
         "portType=\"addressable\" base=\"0x0\"/>\n";
    for (const auto& port : d.master_ports)
        x << "          <port name=\"" << port.name << "\" mode=\"master\" range=\"0xFFFFFFFFFFFFFFFF\" dataWidth=\""
          << port.data_width << "\" portType=\"addressable\" base=\"0x0\"/>\n";
    for (std::size_t i = 0; i < d.args.size(); ++i) {
        const auto& a = d.args[i];
        x << "          <arg name=\"" << a.name << "\" addressQualifier=\"" << (a.global ? 1 : 0) << "\" id=\"" << i
          << "\" port=\"" << a.port << "\" size=\"" << hex(a.size) << "\" offset=\"" << hex(a.offset)
          << "\" hostOffset=\"0x0\" hostSize=\"" << hex(a.size) << "\" type=\"" << a.type << "\"/>\n";
    }
    x << "          <compileWorkGroupSize x=\"1\" y=\"1\" z=\"1\"/>\n"
      << "          <maxWorkGroupSize x=\"1\" y=\"1\" z=\"1\"/>\n";
    for (const auto& cu : d.compute_units)
        x << "          <instance name=\"" << cu.name << "\">\n"
          << "            <addrRemap base=\"" << hex(cu.base_address) << "\" range=\"" << hex(d.cu_address_range)
          << "\" port=\"S_AXI_CONTROL\"/>\n"
          << "          </instance>\n";
    x << "        </kernel>\n";
    x << "      </core>\n"
      << "    </device>\n"
      << "  </platform>\n"
      << "</project>\n";
    return x.str();
}

std::array<std::uint8_t, 16> xclbin_uuid(const XclbinDescription& d) {
    // Everything XRT sees except the UUID itself goes into the hash.
    std::ostringstream key;
    key << d.platform_vbnv << '\n' << xclbin_metadata_xml(d);
    for (std::size_t cu = 0; cu < d.compute_units.size(); ++cu)
        for (std::size_t arg = 0; arg < d.args.size(); ++arg)
            key << arg_bank(d, cu, arg) << ' ';
    for (const auto& bank : d.banks)
        key << bank.tag << ' ' << bank.base_address << ' ' << bank.size_bytes << '\n';
    const std::string text = key.str();
    const std::uint64_t halves[2] = {fnv1a(text, 0xcbf29ce484222325ULL), fnv1a(text, 0x84222325cbf29ce4ULL)};
    std::array<std::uint8_t, 16> uuid{};
    for (std::size_t i = 0; i < 16; ++i)
        uuid[i] = static_cast<std::uint8_t>(halves[i / 8] >> (8 * (i % 8)));
    uuid[6] = static_cast<std::uint8_t>((uuid[6] & 0x0F) | 0x80); // RFC 9562 version 8 (custom)
    uuid[8] = static_cast<std::uint8_t>((uuid[8] & 0x3F) | 0x80); // RFC 4122 variant
    return uuid;
}

void write_xclbin(const std::filesystem::path& out, const XclbinDescription& d) {
    validate(d);
    const std::string xml = xclbin_metadata_xml(d);
    std::vector<Section> sections;
    sections.push_back({EMBEDDED_METADATA, "metadata", Bytes(xml.begin(), xml.end())});
    sections.push_back({MEM_TOPOLOGY, "mem_topology", mem_topology_section(d)});
    sections.push_back({IP_LAYOUT, "ip_layout", ip_layout_section(d)});
    sections.push_back({CONNECTIVITY, "connectivity", connectivity_section(d)});
    sections.push_back({CLOCK_FREQ_TOPOLOGY, "clock_freq", clock_section(d)});

    // axlf already holds the first section header.
    const std::size_t headers_end = sizeof(axlf) + (sections.size() - 1) * sizeof(axlf_section_header);
    std::vector<axlf_section_header> headers;
    std::size_t offset = align8(headers_end);
    for (const auto& s : sections) {
        axlf_section_header h{};
        h.m_sectionKind = static_cast<std::uint32_t>(s.kind);
        copy_name(h.m_sectionName, s.name, "section name");
        h.m_sectionOffset = offset;
        h.m_sectionSize = s.data.size();
        headers.push_back(h);
        offset = align8(offset + s.data.size());
    }
    const std::size_t total = offset;

    axlf top{};
    std::memcpy(top.m_magic, "xclbin2", 8);
    top.m_signature_length = -1; // not signed
    std::memset(top.m_keyBlock, 0xFF, sizeof top.m_keyBlock);
    const auto uuid = xclbin_uuid(d);
    std::memcpy(&top.m_uniqueId, uuid.data(), sizeof top.m_uniqueId);
    top.m_header.m_length = total;
    top.m_header.m_timeStamp = 0; // no build time: the file depends on the description only
    top.m_header.m_versionMajor = 2;
    top.m_header.m_versionMinor = 13;
    top.m_header.m_mode = XCLBIN_FLAT;
    copy_name(top.m_header.m_platformVBNV, d.platform_vbnv, "platform VBNV");
    static_assert(sizeof top.m_header.uuid == 16);
    std::memcpy(&top.m_header.uuid, uuid.data(), 16);
    top.m_header.m_numSections = static_cast<std::uint32_t>(sections.size());
    top.m_sections[0] = headers[0];

    // Everything is copied into place in a zero-filled buffer of the final size (the padding stays zero).
    Bytes file(total, 0);
    const auto place = [&file](std::size_t at, const void* data, std::size_t size) {
        if (size > 0)
            std::memcpy(file.data() + at, data, size);
    };
    place(0, &top, sizeof top);
    for (std::size_t i = 1; i < headers.size(); ++i)
        place(sizeof(axlf) + (i - 1) * sizeof(axlf_section_header), &headers[i], sizeof(axlf_section_header));
    for (std::size_t i = 0; i < sections.size(); ++i)
        place(headers[i].m_sectionOffset, sections[i].data.data(), sections[i].data.size());

    AtomicFile f(out);
    f.stream().write(file.data(), static_cast<std::streamsize>(file.size()));
    f.commit();
}

} // namespace spikeline
