// libFuzzer target: an Open Ephys structure.oebin, read as `spikeline detect` reads a recording (streams, channels,
// gains), with a small continuous.dat under the folder name of the seeds.
#include "fuzz_input_file.hpp"
#include "io/open_ephys.hpp"

#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    using namespace spikeline;
    static const bool prepared = [] {
        const std::vector<unsigned char> samples(4 * 2 * 16, 0); // 16 frames of 4 channels
        // The folders the seeds name (a Neuropixels stream and an acquisition board's).
        fuzz::write_input("continuous/Neuropix-PXI-100.ProbeA-AP/continuous.dat", samples.data(), samples.size());
        fuzz::write_input("continuous/Acquisition_Board-100.Rhythm Data/continuous.dat", samples.data(),
                          samples.size());
        return true;
    }();
    (void)prepared;
    const std::filesystem::path oebin = fuzz::write_input("structure.oebin", data, size);
    fuzz::expect_only_input_errors([&] { io::read_open_ephys_info(oebin, ""); });
    fuzz::expect_only_input_errors([&] { io::read_open_ephys_info(oebin, "", true); });
    return 0;
}
