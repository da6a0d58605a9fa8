// The 64-channel kernel: fast to simulate, used by the default co-simulation tests.
#include "Vspikeline_rtl_64.h"
#include "rtl_kernel_sim_impl.hpp"

namespace spikeline::rtl {

std::unique_ptr<RtlKernelSim> make_rtl_kernel_64(const MemoryTiming& timing) {
    return std::make_unique<VerilatedKernel<Vspikeline_rtl_64>>(64, timing);
}

} // namespace spikeline::rtl
