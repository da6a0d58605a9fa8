#pragma once
// Calibration of the stream's sorter on its own thread at idle priority, so that clustering never delays the stream:
// the pipeline starts a job (the first calibration, or a later one that keeps learning), keeps streaming (unsorted,
// or with the current calibration), and takes the result once ready().
#include "motion/motion_history.hpp"
#include "pipeline/spike_reservoir.hpp"
#include "sort/calibration.hpp"
#include "sort/units_from_folder.hpp"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace spikeline::stream {

/// The arguments of one sort::calibrate call, owned by the job (the pipeline keeps collecting meanwhile).
struct CalibrationJob {
    std::shared_ptr<const HwSortParams> geometry;
    SortOutput data;
    /// Appended to data (and motion's displacements) on the calibration thread, so that the pipeline need not copy it.
    std::optional<SpikeReservoir::Snapshot> sample;
    sort::SortSettings settings;
    int first_template_id = 0;
    std::shared_ptr<const sort::Calibration> previous; ///< null: the first calibration
    sort::CalibrationMotion motion;                    ///< motion.probe null: no motion tracking
    /// With motion tracking: the sample's displacements are refined with it once joined (MotionHistory::refine).
    std::optional<motion::MotionHistory> history;
    bool keep_basis = false;
    /// Set: the sorter is built from these offline units on the data (sort::calibrate_from_units), not clustered.
    std::shared_ptr<const sort::OfflineUnits> units_from;
};

struct CalibrationResult {
    std::shared_ptr<sort::Calibration> calibration; ///< null: calibration failed (error says why)
    std::string error;
    double wall_seconds = 0;
    sort::UnitsFromReport units_from; ///< how a job with units_from built the sorter
};

class BackgroundCalibration {
public:
    BackgroundCalibration() = default;
    BackgroundCalibration(const BackgroundCalibration&) = delete;
    BackgroundCalibration& operator=(const BackgroundCalibration&) = delete;
    ~BackgroundCalibration();

    /// Starts sort::calibrate on a SCHED_IDLE thread; only when not busy().
    void start(CalibrationJob job);
    /// A job was started and its result not taken yet.
    bool busy() const { return thread_.joinable(); }
    /// The job finished (or failed): take() will not wait.
    bool ready() const { return busy() && done_.load(); }
    /// Waits for the job if needed, releases its data and returns its result.
    CalibrationResult take();

private:
    /// The calibration thread releases its sample and data as soon as it is done with them (freeing hundreds of MB
    /// takes milliseconds, which the pipeline thread must not spend).
    CalibrationJob job_;
    std::thread thread_;
    std::atomic<bool> done_{false};
    CalibrationResult result_;
};

} // namespace spikeline::stream
