// Deliberate violation (rule interface): a kernel top whose argument `count` has no INTERFACE pragma.
#include <cstdint>
extern "C" void top(const std::int16_t* in, std::uint32_t count, std::int32_t* out) {
#pragma HLS INTERFACE m_axi port = in offset = slave bundle = gmem_in depth = 16
#pragma HLS INTERFACE m_axi port = out offset = slave bundle = gmem_out depth = 16
#pragma HLS INTERFACE s_axilite port = in bundle = control
#pragma HLS INTERFACE s_axilite port = out bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
    for (int i = 0; i < 16; ++i)
        out[i] = in[i] + static_cast<std::int32_t>(count);
}
