// libFuzzer target: an Open Ephys settings.xml, parsed for its probes (expat) as `spikeline detect` does to place the
// contacts of a recording.
#include "fuzz_input_file.hpp"
#include "io/open_ephys_settings.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    using namespace spikeline;
    const std::filesystem::path xml = fuzz::write_input("settings.xml", data, size);
    fuzz::expect_only_input_errors([&] {
        const std::vector<io::OpenEphysProbe> probes = io::read_open_ephys_probes(xml);
        for (const io::OpenEphysProbe& probe : probes)
            io::find_open_ephys_probe(probes, probe.stream_base + "-AP", probe.processor, probe.node_id);
    });
    return 0;
}
