// libFuzzer target for the implant link decoder (built with clang -fsanitize=fuzzer,address,undefined when clang is
// available; CTest runs it for a few seconds, see tests/CMakeLists.txt).
#include "link_decoder_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    spikeline::fuzz::link_decoder_one_input(data, size);
    return 0;
}
