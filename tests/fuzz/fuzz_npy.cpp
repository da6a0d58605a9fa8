// libFuzzer target: a .npy file (recordings, spike arrays, kinematics), read whole and as typed vectors.
#include "fuzz_input_file.hpp"
#include "io/npy.hpp"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    using namespace spikeline;
    const std::filesystem::path npy = fuzz::write_input("array.npy", data, size);
    fuzz::expect_only_input_errors([&] { io::read_npy(npy); });
    fuzz::expect_only_input_errors([&] { io::read_npy_vector<std::int16_t>(npy); });
    fuzz::expect_only_input_errors([&] { io::read_npy_vector<double>(npy); });
    fuzz::expect_only_input_errors([&] { io::inspect_npy_append_file(npy); });
    return 0;
}
