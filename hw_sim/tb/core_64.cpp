// The 64-channel core: fast to simulate, used by most co-simulation tests.
#include "Vspikeline_core_64.h"
#include "detect_core_sim_impl.hpp"

namespace spikeline::rtl {

std::unique_ptr<DetectCoreSim> make_core_64(const SimOptions& options) {
    return std::make_unique<VerilatedCore<Vspikeline_core_64>>(64, options);
}

} // namespace spikeline::rtl
