#pragma once
// Offline sorting: calibration on the first seconds of a recording, then the whole recording through the backend's
// sorting stage into a Phy folder, streaming with bounded memory.
#include "motion/motion_estimator.hpp"
#include "pipeline/detect_run.hpp"
#include "sort/phy_writer.hpp"
#include "sort/sort_settings.hpp"
#include "sort/units_from_folder.hpp"

#include <functional>
#include <memory>
#include <optional>

namespace spikeline {

struct SortRunOptions {
    DetectRunOptions detect = detect_options_for_sorting(); ///< backend, threads, detection settings, chunk, progress
    sort::SortSettings sort;
    /// A sorter file (sort::read_sorter_file) to label with instead of calibrating; empty: calibrate.
    std::filesystem::path sorter_file;
    /// Offline units (sort::read_offline_units) the sorter is built from on the calibration window instead of
    /// clustering it (sort::calibrate_from_units); a fixed sorter: no learning. Null: calibrate.
    std::shared_ptr<const sort::OfflineUnits> units_from;
    /// Two passes where the sorter learns (no sorter file or offline units, learning on, no --recalibrate-every, not
    /// xrt): the first detects into a scratch folder, keeping every spike's snippet, and learns its units at the
    /// recording's end from a sample of them all; the second labels those snippets with that sorter, so that spikes
    /// from before a unit was learnt get its label. Otherwise one pass.
    bool relabel = false;
};

struct SortRunResult {
    std::uint64_t frames = 0;
    std::uint64_t spikes = 0;
    std::uint64_t unsorted = 0;
    int n_units = 0;
    int n_calibrations = 0;               ///< calibrations learnt in this run (0 with a loaded sorter)
    int n_recalibrations_skipped = 0;     ///< --recalibrate-every periods that could not be learnt from
    std::string last_skip_reason;         ///< why the last of them was skipped
    std::size_t calibration_spikes = 0;   ///< snippets the first calibration (or the loaded one) learnt from
    std::filesystem::path sorter_loaded;  ///< the sorter file labelled with; empty: calibrated here
    std::filesystem::path sorter_written; ///< out_dir/sorter.json: the last calibration, for later runs
    sort::UnitsFromReport units_from;     ///< with options.units_from: how the sorter was built
    double calibration_wall_seconds = 0;  ///< reading + detecting the window + clustering
    double clustering_wall_seconds = 0;   ///< of which host clustering
    double labelling_wall_seconds = 0;    ///< labelling the whole recording (the window's spikes on the host)
    double writing_wall_seconds = 0;      ///< the Phy folder's remaining files, motion files, metadata
    double wall_seconds = 0;              ///< the whole run
    bool window_labelled_on_host = false; ///< the calibration pass's snippets labelled the window (not re-read)
    double recording_seconds = 0;
    double realtime_factor = 0; ///< recording_seconds / wall_seconds
    std::string backend_name;
    std::optional<RtlCycleFacts> rtl; ///< the verilator backend's cycle facts
    std::uint64_t lost_events = 0;
    std::uint64_t artifacts = 0;           ///< rows of artifacts.npy
    std::uint64_t artifact_candidates = 0; ///< candidates dropped as artefacts
    std::size_t motion_estimates = 0;      ///< 0: motion tracking off (motion_note says why when it was asked for)
    double motion_min_um = 0, motion_max_um = 0, motion_median_um = 0; ///< over every block and estimate
    int units_moved = 0;            ///< units away from where they were learnt at the end
    std::uint64_t table_writes = 0; ///< classifier-table writes made to follow the motion
    std::string motion_note;
    bool relabelled = false;              ///< two passes ran (options.relabel and a sorter that learns)
    double first_pass_wall_seconds = 0;   ///< then: the learning pass (wall_seconds holds both)
    std::size_t end_learning_spikes = 0;  ///< then: the sample the first pass learnt its units from, at the end
    double end_learning_wall_seconds = 0; ///< and the time that learning took
    std::vector<motion::MotionEffect> motion_effects;          ///< the first of two passes: its motion, for the second
    std::shared_ptr<const sort::Calibration> last_calibration; ///< and the sorter it wrote to sorter_written
    std::size_t peak_rss_bytes = 0;
    std::vector<sort::ClusterQuality> quality;
};

/// open_source opens the recording from its start. It is read once: the calibration pass keeps the window's snippets,
/// which are labelled on the host once the sorter is learnt, and its backend goes on labelling the rest. It is read
/// twice (the window detected again) when the window held more spikes than a calibration keeps, with
/// --recalibrate-every, and when the xrt backend labels. Writes the Phy folder into out_dir (see PhyWriter) and the
/// latest calibration as out_dir/sorter.json. Throws InputError on bad input or settings, or a sorter file that does
/// not fit the run. With options.relabel, the first pass goes into out_dir/.first_pass (removed at the end) and the
/// second, with its sorter, into out_dir; the result holds the first pass's calibration figures.
SortRunResult run_sorting(const std::function<std::unique_ptr<io::RecordingSource>()>& open_source,
                          const probe::Probe& probe, const SortRunOptions& options,
                          const std::filesystem::path& out_dir);

} // namespace spikeline
