#pragma once
// What a benchmark figure was measured on: the CPU (model name, family, model, stepping) and the vector instructions
// the build uses. Figures without it cannot be compared across machines (a Zen 4 and a Zen 5 differed by 1.7x).
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace spikeline {

struct MachineInfo {
    std::string cpu_model = "unknown"; ///< /proc/cpuinfo "model name"
    int cpu_family = -1;               ///< "cpu family" (AMD Zen 4: 25, Zen 5: 26); -1 when not stated
    int cpu_model_number = -1;         ///< "model"
    int cpu_stepping = -1;             ///< "stepping"
    int logical_cpus = 0;              ///< processors listed
    bool cpu_has_avx512 = false;       ///< the CPU's flags name avx512f and avx512bw
    bool cpu_has_avx2 = false;
    std::string build_vector_isa; ///< what the compiler was allowed to use: "AVX-512", "AVX2", "SSE2" or "none"
    int build_vector_bits = 0;    ///< the widest vectors of that set (512, 256, 128, 0)

    /// One line for a figure's row, e.g. "AMD EPYC (family 25 model 17 stepping 1, 2 CPUs), build: AVX-512 (512-bit)".
    std::string summary() const;
    nlohmann::json to_json() const;
};

/// Parses the text of /proc/cpuinfo (the first processor's fields; the count of all); the build fields are set from
/// the compiler's target macros.
MachineInfo parse_cpuinfo(std::string_view text);

/// This machine: /proc/cpuinfo when it can be read, else only the build fields.
MachineInfo this_machine();

} // namespace spikeline
