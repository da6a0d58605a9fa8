#include "backend/backend.hpp"

#include "spikeline/hw/detector.hpp"
#include "util/errors.hpp"

namespace spikeline {
namespace {

class ReferenceBackend final : public Backend {
public:
    explicit ReferenceBackend(const HwParams& params)
        : params_(std::make_unique<HwParams>(params)), state_(std::make_unique<hw::DetectState<HwConfig>>()) {
        hw::reset_detect(*state_, *params_);
    }

    std::string name() const override { return "reference"; }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        auto emit = [&events](const SpikeEvent& e) { events.push_back(e); };
        for (std::size_t f = 0; f < n_frames; ++f)
            hw::detect_one_frame(*state_, *params_, frames + f * static_cast<std::size_t>(params_->n_channels), emit);
    }

    void finish(std::vector<SpikeEvent>& events) override {
        hw::detect_flush(*state_, *params_, [&events](const SpikeEvent& e) { events.push_back(e); });
    }

    std::uint64_t lost_events() const override { return state_->dedup.dropped; }

private:
    std::unique_ptr<HwParams> params_;
    std::unique_ptr<hw::DetectState<HwConfig>> state_;
};

} // namespace

std::unique_ptr<Backend> make_reference_backend(const HwParams& params) {
    return std::make_unique<ReferenceBackend>(params);
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options, const HwParams& params) {
    require(options.threads >= 1 && options.threads <= 256,
            "--threads must be between 1 and 256 (got " + std::to_string(options.threads) + ")");
    if (options.name == "cpu")
        return make_cpu_backend(params, options.threads);
    if (options.name == "reference")
        return make_reference_backend(params);
    throw InputError("unknown backend '" + options.name + "': available backends are cpu, reference and xrt (FPGA)");
}

} // namespace spikeline
