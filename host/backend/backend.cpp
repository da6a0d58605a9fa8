#include "backend/backend.hpp"

#include "spikeline/hw/detector.hpp"
#include "util/errors.hpp"

namespace spikeline {
namespace {

class ReferenceBackend final : public Backend {
public:
    explicit ReferenceBackend(const HwParams& params)
        : detector_(std::make_unique<hw::Detector<HwConfig>>(params)), n_channels_(params.n_channels) {}

    std::string name() const override { return "reference"; }

    void process(const std::int16_t* frames, std::size_t n_frames, std::vector<SpikeEvent>& events) override {
        auto emit = [&events](const SpikeEvent& e) { events.push_back(e); };
        for (std::size_t f = 0; f < n_frames; ++f)
            detector_->process_frame(frames + f * static_cast<std::size_t>(n_channels_), emit);
    }

    void finish(std::vector<SpikeEvent>& events) override {
        detector_->flush([&events](const SpikeEvent& e) { events.push_back(e); });
    }

    std::uint64_t dropped_candidates() const override { return detector_->candidates_dropped(); }

private:
    std::unique_ptr<hw::Detector<HwConfig>> detector_;
    int n_channels_;
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
    throw InputError("unknown backend '" + options.name + "': available backends are cpu and reference");
}

} // namespace spikeline
