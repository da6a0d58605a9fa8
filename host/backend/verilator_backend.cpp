// The verilator backend: the SystemVerilog core (hw_sim/rtl), simulated cycle by cycle through the harness in
// hw_sim/tb. Slow (a few million samples per second) but it runs the RTL itself on real recordings.
#include "backend/backend.hpp"
#include "detect_core_sim.hpp"
#include "util/errors.hpp"

#include <cstdlib>

namespace spikeline {
namespace {

class VerilatorBackend final : public Backend {
public:
    explicit VerilatorBackend(const HwParams& params) {
        rtl::SimOptions options;
        // A waveform of the whole run for debugging the RTL on a real recording (large: keep recordings short).
        if (const char* trace = std::getenv("SPIKELINE_RTL_TRACE"))
            options.trace_path = trace;
        try {
            core_ = rtl::make_detect_core_sim(params, options);
        } catch (const rtl::UnsupportedParams& e) {
            throw InputError(std::string("the verilator backend cannot run these settings: ") + e.what());
        }
    }

    std::string name() const override { return "verilator"; }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        core_->process(frames, n_frames, events);
    }

    void finish(std::vector<SpikeEvent>& events) override {
        core_->finish(events);
        lost_ = core_->read_register(rtl::reg::dropped);
    }

    std::uint64_t lost_events() const override { return lost_; }

private:
    std::unique_ptr<rtl::DetectCoreSim> core_;
    std::uint64_t lost_ = 0; ///< read from the core's counter at the end of the stream
};

} // namespace

std::unique_ptr<Backend> make_verilator_backend(const HwParams& params) {
    return std::make_unique<VerilatorBackend>(params);
}

} // namespace spikeline
