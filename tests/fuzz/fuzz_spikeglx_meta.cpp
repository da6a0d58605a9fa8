// libFuzzer target: a SpikeGLX .meta beside a small .bin, read as `spikeline detect` reads it (fields, probe type,
// imroTbl, shank and geometry maps, gains, saved channels).
#include "fuzz_input_file.hpp"
#include "io/spikeglx.hpp"

#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    using namespace spikeline;
    static const std::filesystem::path bin = [] {
        const std::vector<unsigned char> frames(385 * 2 * 8, 0); // 8 frames of a 385-channel NP1.0 file
        return fuzz::write_input("recording.bin", frames.data(), frames.size());
    }();
    fuzz::write_input("recording.meta", data, size);
    fuzz::expect_only_input_errors([&] { io::read_spikeglx_info(bin); });
    io::SpikeGlxReadOptions truncated;
    truncated.allow_truncated = true;
    fuzz::expect_only_input_errors([&] { io::read_spikeglx_info(bin, truncated); });
    return 0;
}
