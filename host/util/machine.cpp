#include "util/machine.hpp"

#include <charconv>
#include <fstream>
#include <sstream>

namespace spikeline {
namespace {

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos)
        return {};
    const auto last = s.find_last_not_of(" \t\r");
    return s.substr(first, last - first + 1);
}

int to_int(std::string_view s) {
    int value = -1;
    const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
    return error == std::errc{} && end == s.data() + s.size() ? value : -1;
}

bool has_flag(std::string_view flags, std::string_view flag) {
    for (std::size_t at = 0; at < flags.size();) {
        const auto space = flags.find(' ', at);
        const auto word = flags.substr(at, space == std::string_view::npos ? std::string_view::npos : space - at);
        if (word == flag)
            return true;
        if (space == std::string_view::npos)
            break;
        at = space + 1;
    }
    return false;
}

void set_build_fields(MachineInfo& info) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
    info.build_vector_isa = "AVX-512";
    info.build_vector_bits = 512;
#elif defined(__AVX2__)
    info.build_vector_isa = "AVX2";
    info.build_vector_bits = 256;
#elif defined(__SSE2__)
    info.build_vector_isa = "SSE2";
    info.build_vector_bits = 128;
#else
    info.build_vector_isa = "none";
    info.build_vector_bits = 0;
#endif
}

} // namespace

MachineInfo parse_cpuinfo(std::string_view text) {
    MachineInfo info;
    set_build_fields(info);
    bool first_processor = true;
    for (std::size_t at = 0; at < text.size();) {
        auto end = text.find('\n', at);
        if (end == std::string_view::npos)
            end = text.size();
        const std::string_view line = text.substr(at, end - at);
        at = end + 1;
        const auto colon = line.find(':');
        if (colon == std::string_view::npos)
            continue;
        const std::string_view key = trim(line.substr(0, colon));
        const std::string_view value = trim(line.substr(colon + 1));
        if (key == "processor") {
            first_processor = info.logical_cpus == 0;
            ++info.logical_cpus;
        }
        if (!first_processor)
            continue;
        if (key == "model name")
            info.cpu_model = std::string(value);
        else if (key == "cpu family")
            info.cpu_family = to_int(value);
        else if (key == "model")
            info.cpu_model_number = to_int(value);
        else if (key == "stepping")
            info.cpu_stepping = to_int(value);
        else if (key == "flags") {
            info.cpu_has_avx512 = has_flag(value, "avx512f") && has_flag(value, "avx512bw");
            info.cpu_has_avx2 = has_flag(value, "avx2");
        }
    }
    return info;
}

MachineInfo this_machine() {
    std::ifstream in("/proc/cpuinfo");
    std::stringstream text;
    text << in.rdbuf();
    return parse_cpuinfo(text.str());
}

std::string MachineInfo::summary() const {
    std::ostringstream out;
    out << cpu_model;
    if (cpu_family >= 0) {
        out << " (family " << cpu_family << " model " << cpu_model_number;
        if (cpu_stepping >= 0)
            out << " stepping " << cpu_stepping;
        out << ", " << logical_cpus << " CPUs)";
    }
    out << ", build: " << build_vector_isa;
    if (build_vector_bits > 0)
        out << " (" << build_vector_bits << "-bit)";
    return out.str();
}

nlohmann::json MachineInfo::to_json() const {
    return {{"cpu_model", cpu_model},
            {"cpu_family", cpu_family},
            {"cpu_model_number", cpu_model_number},
            {"cpu_stepping", cpu_stepping},
            {"logical_cpus", logical_cpus},
            {"cpu_has_avx512", cpu_has_avx512},
            {"cpu_has_avx2", cpu_has_avx2},
            {"build_vector_isa", build_vector_isa},
            {"build_vector_bits", build_vector_bits},
            {"summary", summary()}};
}

} // namespace spikeline
