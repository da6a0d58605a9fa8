// The 1024-channel kernel: one probe (cosim_long tests).
#include "Vspikeline_rtl_1024.h"
#include "rtl_kernel_sim_impl.hpp"

namespace spikeline::rtl {

std::unique_ptr<RtlKernelSim> make_rtl_kernel_1024(const MemoryTiming& timing) {
    return std::make_unique<VerilatedKernel<Vspikeline_rtl_1024>>(1024, timing);
}

} // namespace spikeline::rtl
