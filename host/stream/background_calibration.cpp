#include "stream/background_calibration.hpp"

#include "stream/thread_priority.hpp"

#include <chrono>
#include <exception>

namespace spikeline::stream {

BackgroundCalibration::~BackgroundCalibration() {
    if (thread_.joinable())
        thread_.join();
}

void BackgroundCalibration::start(std::shared_ptr<const HwSortParams> geometry, SortOutput data,
                                  sort::SortSettings settings) {
    thread_ = std::thread([this, geometry = std::move(geometry), data = std::move(data), settings]() {
        make_thread_idle();
        const auto start = std::chrono::steady_clock::now();
        try {
            result_ = std::make_shared<sort::Calibration>(sort::calibrate(*geometry, data, settings));
        } catch (const std::exception& e) {
            error_ = e.what();
        }
        wall_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        done_.store(true);
    });
}

std::shared_ptr<sort::Calibration> BackgroundCalibration::take() {
    thread_.join();
    applied_ = true;
    return result_;
}

} // namespace spikeline::stream
