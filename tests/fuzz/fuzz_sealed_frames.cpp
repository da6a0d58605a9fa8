// libFuzzer target for the secure link receiver (sealed frames -> replay window -> link decoder).
#include "sealed_frames_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    spikeline::fuzz::sealed_frames_one_input(data, size);
    return 0;
}
