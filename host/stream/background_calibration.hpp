#pragma once
// Calibration of the stream's sorter on its own thread at idle priority, so that clustering never delays the stream:
// the pipeline starts it, keeps streaming (unsorted, or with the previous calibration), and polls done().
#include "sort/calibration.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace spikeline::stream {

class BackgroundCalibration {
public:
    BackgroundCalibration() = default;
    BackgroundCalibration(const BackgroundCalibration&) = delete;
    BackgroundCalibration& operator=(const BackgroundCalibration&) = delete;
    ~BackgroundCalibration();

    /// Starts sort::calibrate(*geometry, data, settings) on a SCHED_IDLE thread.
    void start(std::shared_ptr<const HwSortParams> geometry, SortOutput data, sort::SortSettings settings);
    /// The calibration finished (or failed) and has not been taken yet.
    bool ready() const { return thread_.joinable() && !applied_ && done_.load(); }
    /// Joins the thread and marks the result taken; the result is null when calibration failed (error() says why).
    std::shared_ptr<sort::Calibration> take();
    /// Started and not taken: waits for it (at the end of the stream).
    bool pending() const { return thread_.joinable() && !applied_; }

    const std::shared_ptr<sort::Calibration>& result() const { return result_; }
    const std::string& error() const { return error_; }
    double wall_seconds() const { return wall_seconds_; }

private:
    std::thread thread_;
    std::atomic<bool> done_{false};
    std::shared_ptr<sort::Calibration> result_;
    std::string error_;
    double wall_seconds_ = 0;
    bool applied_ = false;
};

} // namespace spikeline::stream
