// L2 kernel top of detection + sorting: interface pragmas and the L1 calls. State lives on chip between calls, as in
// spikeline_detect: the first call of a stream carries kControlReset, the last kControlFlush.
#include "spikeline_sort.hpp"

#include "spikeline/hw/detector.hpp"

using spikeline::hw::DetectState;
using spikeline::hw::SortedSpike;
using spikeline::hw::SortState;
using spikeline::hw::SpikeEvent;
using spikeline::hw::TableWrite;
using spikeline::hw::TableWriteQueue;
using spikeline::kernels::DetectConfig;
using spikeline::kernels::DetectParams;
using spikeline::kernels::SortConfig;
using spikeline::kernels::SortParams;

// depth: the largest arrays the C-simulation tests pass per call (3000 frames x 128 channels, 4096 spikes).
extern "C" void spikeline_sort(const std::int16_t* frames, std::uint32_t n_frames, const DetectParams* detect_params,
                               const SortParams* sort_params, const TableWrite* table_writes, std::uint32_t n_writes,
                               SortedSpike* spikes, std::uint32_t max_spikes, std::uint32_t* spike_count,
                               std::uint32_t control) {
#pragma HLS INTERFACE m_axi port = frames offset = slave bundle = gmem_in max_read_burst_length = 64 depth = 384000
#pragma HLS INTERFACE m_axi port = detect_params offset = slave bundle = gmem_in depth = 1
#pragma HLS INTERFACE m_axi port = sort_params offset = slave bundle = gmem_in depth = 1
#pragma HLS INTERFACE m_axi port = table_writes offset = slave bundle = gmem_in depth = 16384
#pragma HLS INTERFACE m_axi port = spikes offset = slave bundle = gmem_out max_write_burst_length = 64 depth = 4096
#pragma HLS INTERFACE m_axi port = spike_count offset = slave bundle = gmem_out depth = 1
#pragma HLS INTERFACE s_axilite port = frames bundle = control
#pragma HLS INTERFACE s_axilite port = n_frames bundle = control
#pragma HLS INTERFACE s_axilite port = detect_params bundle = control
#pragma HLS INTERFACE s_axilite port = sort_params bundle = control
#pragma HLS INTERFACE s_axilite port = table_writes bundle = control
#pragma HLS INTERFACE s_axilite port = n_writes bundle = control
#pragma HLS INTERFACE s_axilite port = spikes bundle = control
#pragma HLS INTERFACE s_axilite port = max_spikes bundle = control
#pragma HLS INTERFACE s_axilite port = spike_count bundle = control
#pragma HLS INTERFACE s_axilite port = control bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
    static DetectParams local_detect;
    static SortParams local_sort;
    static DetectState<DetectConfig> detect;
    static SortState<SortConfig> sort;
    static TableWriteQueue<SortConfig> writes;
    if (control & spikeline::kernels::kControlReset) {
        local_detect = *detect_params;
        spikeline::hw::reset_detect(detect, local_detect);
        spikeline::hw::reset_sort(sort);
    }
    if (control & (spikeline::kernels::kControlReset | spikeline::kernels::kControlLoadSort)) {
        local_sort = *sort_params;
        writes.head = 0; // writes queued for the previous classifier
        writes.count = 0;
    }
QUEUE_WRITES:
    for (std::uint32_t i = 0; i < n_writes; ++i)
        spikeline::hw::queue_table_write(writes, table_writes[i]);
    auto before_spike = [&](std::uint64_t sample) { spikeline::hw::apply_table_writes(writes, local_sort, sample); };

    std::uint32_t count = 0;
    auto store = [&](const SortedSpike& spike, const std::int32_t(*)[SortConfig::max_snippet_samples]) {
        if (count < max_spikes)
            spikes[count] = spike;
        ++count;
    };
    auto queue = [&](const SpikeEvent& e) { spikeline::hw::sort_add(sort, e); };
SORT_FRAMES:
    for (std::uint32_t f = 0; f < n_frames; ++f) {
        spikeline::hw::detect_one_frame(detect, local_detect,
                                        frames + static_cast<std::uint64_t>(f) * local_detect.n_channels, queue);
        const std::uint64_t frame = detect.frame - 1;
        spikeline::hw::sort_push_frame(sort, local_sort, frame, detect.referenced);
        spikeline::hw::sort_advance(sort, local_sort, frame, store, before_spike);
    }
    if (control & spikeline::kernels::kControlFlush) {
        spikeline::hw::detect_flush(detect, local_detect, queue);
        spikeline::hw::sort_flush(sort, local_sort, detect.frame, store, before_spike);
    }
    if (detect.frame > SortConfig::ring_frames) // every spike before this has been sorted: keep the queue short
        spikeline::hw::apply_table_writes(writes, local_sort, detect.frame - SortConfig::ring_frames);
    *spike_count = count;
}
