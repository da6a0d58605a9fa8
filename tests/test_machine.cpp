// Benchmarks name their machine: the fields of /proc/cpuinfo they report, parsed from a real Zen 4 excerpt.
#include "util/machine.hpp"

#include <gtest/gtest.h>

namespace spikeline {
namespace {

constexpr const char* kZen4 = "processor\t: 0\n"
                              "vendor_id\t: AuthenticAMD\n"
                              "cpu family\t: 25\n"
                              "model\t\t: 17\n"
                              "model name\t: AMD EPYC\n"
                              "stepping\t: 1\n"
                              "flags\t\t: fpu avx2 avx512f avx512dq avx512bw avx512vl\n"
                              "\n"
                              "processor\t: 1\n"
                              "vendor_id\t: AuthenticAMD\n"
                              "cpu family\t: 25\n"
                              "model\t\t: 17\n"
                              "model name\t: AMD EPYC\n"
                              "stepping\t: 1\n"
                              "flags\t\t: fpu avx2 avx512f avx512dq avx512bw avx512vl\n";

TEST(Machine, CpuinfoGivesModelFamilyAndVectorFlags) {
    const MachineInfo info = parse_cpuinfo(kZen4);
    EXPECT_EQ(info.cpu_model, "AMD EPYC");
    EXPECT_EQ(info.cpu_family, 25);
    EXPECT_EQ(info.cpu_model_number, 17);
    EXPECT_EQ(info.cpu_stepping, 1);
    EXPECT_EQ(info.logical_cpus, 2);
    EXPECT_TRUE(info.cpu_has_avx512);
    EXPECT_TRUE(info.cpu_has_avx2);
    EXPECT_NE(info.summary().find("AMD EPYC (family 25 model 17 stepping 1, 2 CPUs)"), std::string::npos)
        << info.summary();
    EXPECT_NE(info.summary().find("build: " + info.build_vector_isa), std::string::npos) << info.summary();
    EXPECT_EQ(info.to_json()["cpu_family"].get<int>(), 25);
}

TEST(Machine, MissingFieldsStayUnknownAndFlagsMatchWholeWords) {
    const MachineInfo info = parse_cpuinfo("processor : 0\nflags : avx512fx avx2x\n");
    EXPECT_EQ(info.cpu_model, "unknown");
    EXPECT_EQ(info.cpu_family, -1);
    EXPECT_FALSE(info.cpu_has_avx512);
    EXPECT_FALSE(info.cpu_has_avx2);
    EXPECT_EQ(info.summary().rfind("unknown, build: ", 0), 0u) << info.summary();
}

TEST(Machine, ThisMachineNamesTheBuildsVectors) {
    const MachineInfo info = this_machine();
    EXPECT_FALSE(info.build_vector_isa.empty());
#if defined(__AVX512F__) && defined(__AVX512BW__)
    EXPECT_EQ(info.build_vector_bits, 512);
#endif
}

} // namespace
} // namespace spikeline
