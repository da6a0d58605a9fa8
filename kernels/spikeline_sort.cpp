// L2 kernel top of detection and sorting (kernel_abi.hpp): the interface of the eight arguments, the compute unit's
// engine on chip and its memories, and one call into the engine (spikeline_engine.hpp). State lives in the `state`
// buffer between runs, so every compute unit (its own buffer) is independent.
#include "spikeline_sort.hpp"

using spikeline::kernels::SortEngine;

// depth: the largest buffers the C-simulation test bench passes per run (hls_sort_tb.cpp: 3000 frames x 64 channels,
// its program, 2048 records); Vitis HLS sizes the co-simulation's memory models from it, synthesis ignores it.
extern "C" void spikeline_sort(const std::int16_t* frames, std::uint32_t n_frames, const std::uint32_t* program,
                               std::uint32_t n_program_writes, std::uint32_t* output, std::uint32_t max_records,
                               std::uint32_t control, std::uint32_t* state) {
#pragma HLS INTERFACE m_axi port = frames offset = slave bundle = gmem_in max_read_burst_length = 64 depth = 192000
#pragma HLS INTERFACE m_axi port = program offset = slave bundle = gmem_in max_read_burst_length = 64 depth = 65536
#pragma HLS INTERFACE m_axi port = output offset = slave bundle = gmem_out max_write_burst_length = 64 depth = 65552
#pragma HLS INTERFACE m_axi port = state offset = slave bundle = gmem_state max_read_burst_length =                    \
    64 max_write_burst_length = 64 depth = 1120000
#pragma HLS INTERFACE s_axilite port = frames bundle = control
#pragma HLS INTERFACE s_axilite port = n_frames bundle = control
#pragma HLS INTERFACE s_axilite port = program bundle = control
#pragma HLS INTERFACE s_axilite port = n_program_writes bundle = control
#pragma HLS INTERFACE s_axilite port = output bundle = control
#pragma HLS INTERFACE s_axilite port = max_records bundle = control
#pragma HLS INTERFACE s_axilite port = control bundle = control
#pragma HLS INTERFACE s_axilite port = state bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
    SortEngine engine;
    // Detection: as in spikeline_detect.
#pragma HLS ARRAY_PARTITION variable = engine.detect.state.bandpass.history dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = engine.detect.state.bandpass.history dim = 2 complete
#pragma HLS BIND_STORAGE variable = engine.detect.state.bandpass.history type = ram_2p impl = bram
#pragma HLS ARRAY_PARTITION variable = engine.detect.params.neighbours dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = engine.detect.params.partners dim = 2 complete
#pragma HLS BIND_STORAGE variable = engine.detect.state.detector.noise type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = engine.detect.state.detector.best_value type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = engine.detect.state.detector.hold type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = engine.detect.state.detector.opposite_run type = ram_2p impl = bram
#pragma HLS ARRAY_PARTITION variable = engine.detect.state.dedup.artifacts.history dim = 1 complete
    // Ring of referenced frames (256 x 1024 words) and classifier tables (8192 entries): UltraRAM. The ring is split
    // in 8 banks by frame (cyclic), so a snippet row reads 8 consecutive samples of one channel per clock.
#pragma HLS ARRAY_PARTITION variable = engine.state.ring dim = 1 cyclic factor = 8
#pragma HLS BIND_STORAGE variable = engine.state.ring type = ram_2p impl = uram
#pragma HLS BIND_STORAGE variable = engine.params.entries type = ram_2p impl = uram
#pragma HLS ARRAY_PARTITION variable = engine.params.snippet_channels dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = engine.params.basis dim = 1 complete
    // Table-write queue (16384 writes of 33 words) and waiting spikes: UltraRAM / block RAM.
#pragma HLS BIND_STORAGE variable = engine.writes.writes type = ram_2p impl = uram
#pragma HLS BIND_STORAGE variable = engine.state.waiting type = ram_2p impl = bram
    spikeline::kernels::run_sort(frames, n_frames, program, n_program_writes, output, max_records, control, state,
                                 engine);
}
