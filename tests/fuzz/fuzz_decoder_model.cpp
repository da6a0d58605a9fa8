// libFuzzer target: a decoder model file (`decode train` writes it; `decode eval` and `stream --decoder` read it).
#include "decode/model_file.hpp"
#include "fuzz_input_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    using namespace spikeline;
    const std::filesystem::path file = fuzz::write_input("model.json", data, size);
    fuzz::expect_only_input_errors([&] { decode::read_model(file); });
    return 0;
}
