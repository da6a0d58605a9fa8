// The 1024-channel core: one probe, the size synthesised by scripts/synth_estimate.sh.
#include "Vspikeline_core_1024.h"
#include "detect_core_sim_impl.hpp"

namespace spikeline::rtl {

std::unique_ptr<DetectCoreSim> make_core_1024(const SimOptions& options) {
    return std::make_unique<VerilatedCore<Vspikeline_core_1024>>(1024, options);
}

} // namespace spikeline::rtl
