// libFuzzer target: an mtscomp recording, NAME.ch (the input up to its first NUL byte) and NAME.cbin (the rest), opened
// as `spikeline detect` opens it (also with --allow-truncated) and read through its first frames.
#include "fuzz_input_file.hpp"
#include "io/recording.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    using namespace spikeline;
    const unsigned char* separator = std::find(data, data + size, 0);
    const std::size_t header_size = static_cast<std::size_t>(separator - data);
    fuzz::write_input("rec.ch", data, header_size);
    const std::size_t cbin_start = std::min(size, header_size + 1);
    const std::filesystem::path cbin = fuzz::write_input("rec.cbin", data + cbin_start, size - cbin_start);
    for (const bool allow_truncated : {false, true}) {
        fuzz::expect_only_input_errors([&] {
            io::OpenOptions options;
            options.allow_truncated = allow_truncated;
            auto source = io::open_recording(cbin, options);
            const std::size_t channels = static_cast<std::size_t>(source->info().n_channels);
            std::vector<std::int16_t> frames(256 * channels);
            for (int block = 0; block < 16 && source->read(frames.data(), 256) > 0; ++block) {
            }
        });
    }
    return 0;
}
