#include "stream/background_calibration.hpp"

#include "util/threads.hpp"

#include <chrono>
#include <exception>

namespace spikeline::stream {

BackgroundCalibration::~BackgroundCalibration() {
    if (thread_.joinable())
        thread_.join();
}

void BackgroundCalibration::start(CalibrationJob job) {
    done_.store(false);
    result_ = {};
    job_ = std::move(job);
    thread_ = std::thread([this]() {
        name_this_thread("sl-calibration");
        make_thread_idle();
        const auto start = std::chrono::steady_clock::now();
        try {
            if (job_.sample) {
                job_.sample->copy_to(job_.data, job_.motion.displacement_um);
                if (job_.history)
                    job_.history->refine(job_.data.spikes, job_.motion.displacement_um);
                // Chunks the reservoir has replaced since are freed here. Once released, the reservoir may write its
                // chunks in place again (it copies those still shared): this thread no longer reads them.
                job_.sample.reset();
            }
            const sort::CalibrationMotion* motion = job_.motion.probe ? &job_.motion : nullptr;
            result_.calibration = std::make_shared<sort::Calibration>(
                job_.units_from ? sort::calibrate_from_units(*job_.geometry, job_.data, *job_.units_from, job_.settings,
                                                             motion, &result_.units_from)
                                : sort::calibrate(*job_.geometry, job_.data, job_.settings, job_.first_template_id,
                                                  job_.previous.get(), motion, job_.keep_basis));
        } catch (const std::exception& e) {
            result_.error = e.what();
        }
        // Freeing the joined copy (up to hundreds of MB) takes milliseconds: here, not in take() on the pipeline.
        job_.data = SortOutput{};
        job_.motion.displacement_um = {};
        result_.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        done_.store(true);
    });
}

CalibrationResult BackgroundCalibration::take() {
    thread_.join();
    job_ = {};
    return std::move(result_);
}

} // namespace spikeline::stream
