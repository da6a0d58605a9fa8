// Vitis HLS C-simulation test bench of spikeline_detect: the synthetic 64-channel stream through the kernel top in
// runs of 700 frames (parameters as a register program in the first run), against L1's detect_frames on the same
// stream. Exits non-zero unless every event equals L1's and the injected spikes are found.
#include "synthetic_tb.hpp"

#include "spikeline/hw/detector.hpp"

int main() {
    using namespace spikeline;
    const std::vector<std::int16_t> data = tb::synthetic_stream();
    static kernels::DetectParams params; // large: not on the stack
    tb::synthetic_params(params);

    static hw::DetectState<kernels::DetectConfig> reference;
    hw::reset_detect(reference, params);
    std::vector<hw::SpikeEvent> expected(4096);
    const std::uint32_t n_expected =
        hw::detect_frames(reference, params, data.data(), tb::kFrames, true, expected.data(), 4096);

    tb::Unit unit(false);
    hw::program_detect_params(params, [&](std::uint32_t a, std::uint32_t v) { unit.write(a, v); });
    std::vector<tb::Record> records;
    const std::uint32_t chunk = 700;
    for (std::uint32_t start = 0; start < tb::kFrames; start += chunk) {
        const std::uint32_t n = tb::kFrames - start < chunk ? tb::kFrames - start : chunk;
        unit.run(data.data() + static_cast<std::size_t>(start) * tb::kChannels, n, tb::control_of(start, n), 512,
                 records);
    }
    bool same = records.size() == n_expected;
    std::uint32_t on_channel_10 = 0;
    for (std::size_t i = 0; same && i < records.size(); ++i) {
        same = records[i].kind == hw::abi::kRecordEvent && records[i].spike.event == expected[i];
        on_channel_10 += records[i].spike.event.channel == 10;
    }
    std::printf("spikeline_detect: %zu events (L1: %u), %s, %u on channel 10 (%u injected)\n", records.size(),
                n_expected, same ? "equal to L1" : "DIFFERENT from L1", on_channel_10, tb::kInjected);
    return same && on_channel_10 == tb::kInjected ? 0 : 1;
}
