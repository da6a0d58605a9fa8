// libFuzzer target: a probeinterface JSON file (--probe), read and checked as every command does.
#include "fuzz_input_file.hpp"
#include "probe/probe.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    using namespace spikeline;
    const std::filesystem::path json = fuzz::write_input("probe.json", data, size);
    fuzz::expect_only_input_errors([&] {
        const probe::Probe probe = probe::read_probeinterface(json);
        probe::check_distinct_positions(probe, json.string());
        probe::neighbours_within(probe, 100.0);
    });
    return 0;
}
