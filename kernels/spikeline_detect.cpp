// L2 kernel top: interface pragmas and one call into L1. The front end's state lives on chip between calls
// (static), so a stream is processed in chunks: the first call with kControlReset, the last with kControlFlush.
#include "spikeline_detect.hpp"

#include "spikeline/hw/detector.hpp"

using spikeline::hw::DetectState;
using spikeline::kernels::DetectConfig;
using spikeline::kernels::DetectParams;

// depth = the largest array hls_detect_tb.cpp passes per call (3000 frames x 64 channels, 512 events): Vitis HLS
// sizes the co-simulation's memory models from it; synthesis ignores it.
extern "C" void spikeline_detect(const std::int16_t* frames, std::uint32_t n_frames, const DetectParams* params,
                                 spikeline::hw::SpikeEvent* events, std::uint32_t max_events,
                                 std::uint32_t* event_count, std::uint32_t control) {
#pragma HLS INTERFACE m_axi port = frames offset = slave bundle = gmem_in max_read_burst_length = 64 depth = 192000
#pragma HLS INTERFACE m_axi port = params offset = slave bundle = gmem_in depth = 1
#pragma HLS INTERFACE m_axi port = events offset = slave bundle = gmem_out max_write_burst_length = 64 depth = 512
#pragma HLS INTERFACE m_axi port = event_count offset = slave bundle = gmem_out depth = 1
#pragma HLS INTERFACE s_axilite port = frames bundle = control
#pragma HLS INTERFACE s_axilite port = n_frames bundle = control
#pragma HLS INTERFACE s_axilite port = params bundle = control
#pragma HLS INTERFACE s_axilite port = events bundle = control
#pragma HLS INTERFACE s_axilite port = max_events bundle = control
#pragma HLS INTERFACE s_axilite port = event_count bundle = control
#pragma HLS INTERFACE s_axilite port = control bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
    static DetectParams local_params;
    static DetectState<DetectConfig> state;
    if (control & spikeline::kernels::kControlReset) {
        local_params = *params;
        spikeline::hw::reset_detect(state, local_params);
    }
    *event_count = spikeline::hw::detect_frames(state, local_params, frames, n_frames,
                                                (control & spikeline::kernels::kControlFlush) != 0, events, max_events);
}
