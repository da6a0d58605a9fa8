// L2 kernel top of detection (kernel_abi.hpp): the interface of the eight arguments, the compute unit's engine on
// chip and its memories, and one call into the engine (spikeline_engine.hpp). State lives in the `state` buffer
// between runs, so every compute unit (its own buffer) is independent.
#include "spikeline_detect.hpp"

using spikeline::kernels::DetectEngine;

// depth: the largest buffers the C-simulation test bench passes per run (hls_detect_tb.cpp: 3000 frames x 64
// channels, its program, 512 records); Vitis HLS sizes the co-simulation's memory models from it, synthesis ignores it.
extern "C" void spikeline_detect(const std::int16_t* frames, std::uint32_t n_frames, const std::uint32_t* program,
                                 std::uint32_t n_program_writes, std::uint32_t* output, std::uint32_t max_records,
                                 std::uint32_t control, std::uint32_t* state) {
#pragma HLS INTERFACE m_axi port = frames offset = slave bundle = gmem_in max_read_burst_length = 64 depth = 192000
#pragma HLS INTERFACE m_axi port = program offset = slave bundle = gmem_in max_read_burst_length = 64 depth = 4096
#pragma HLS INTERFACE m_axi port = output offset = slave bundle = gmem_out max_write_burst_length = 64 depth = 16400
#pragma HLS INTERFACE m_axi port = state offset = slave bundle = gmem_state max_read_burst_length =                    \
    64 max_write_burst_length = 64 depth = 60000
#pragma HLS INTERFACE s_axilite port = frames bundle = control
#pragma HLS INTERFACE s_axilite port = n_frames bundle = control
#pragma HLS INTERFACE s_axilite port = program bundle = control
#pragma HLS INTERFACE s_axilite port = n_program_writes bundle = control
#pragma HLS INTERFACE s_axilite port = output bundle = control
#pragma HLS INTERFACE s_axilite port = max_records bundle = control
#pragma HLS INTERFACE s_axilite port = control bundle = control
#pragma HLS INTERFACE s_axilite port = state bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
    DetectEngine engine;
    // Band-pass history: 6 memories (3 stages x 2 taps), so one channel's 6 reads and 6 writes take one clock.
#pragma HLS ARRAY_PARTITION variable = engine.state.bandpass.history dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = engine.state.bandpass.history dim = 2 complete
#pragma HLS BIND_STORAGE variable = engine.state.bandpass.history type = ram_2p impl = bram
    // Neighbour rows: the 16 entries of a channel read in one clock by de-duplication.
#pragma HLS ARRAY_PARTITION variable = engine.params.neighbours dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = engine.params.partners dim = 2 complete
#pragma HLS BIND_STORAGE variable = engine.params.neighbours type = ram_1p impl = bram
    // Per-channel tracker state: one true dual-port memory each (read at issue, written back later).
#pragma HLS BIND_STORAGE variable = engine.state.detector.noise type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = engine.state.detector.best_value type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = engine.state.detector.hold type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = engine.state.detector.opposite_run type = ram_2p impl = bram
    // Artefact counters: all 64 groups slide their windows in one pass.
#pragma HLS ARRAY_PARTITION variable = engine.state.dedup.artifacts.history dim = 1 complete
    spikeline::kernels::run_detect(frames, n_frames, program, n_program_writes, output, max_records, control, state,
                                   engine);
}
