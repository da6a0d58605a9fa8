#include "stream/background_calibration.hpp"

#include "stream/thread_priority.hpp"

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
    thread_ = std::thread([this, job = std::move(job)]() {
        make_thread_idle();
        const auto start = std::chrono::steady_clock::now();
        try {
            result_.calibration = std::make_shared<sort::Calibration>(
                sort::calibrate(*job.geometry, job.data, job.settings, job.first_template_id, job.previous.get(),
                                job.motion.probe ? &job.motion : nullptr, job.keep_basis));
        } catch (const std::exception& e) {
            result_.error = e.what();
        }
        result_.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        done_.store(true);
    });
}

CalibrationResult BackgroundCalibration::take() {
    thread_.join();
    return std::move(result_);
}

} // namespace spikeline::stream
