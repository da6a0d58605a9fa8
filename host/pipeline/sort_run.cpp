#include "pipeline/sort_run.hpp"

#include "pipeline/calibration_window.hpp"
#include "pipeline/chunk_reader.hpp"
#include "pipeline/motion_tracking.hpp"
#include "pipeline/serial_tasks.hpp"
#include "pipeline/spike_cache.hpp"
#include "pipeline/spike_reservoir.hpp"
#include "sort/snippet_labeller.hpp"
#include "sort/sorter_file.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "util/manifest.hpp"
#include "util/memory.hpp"
#include "util/progress.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <stdexcept>

namespace spikeline {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Where one chunk of the calibration pass ended: its spikes are the window's up to spikes_end.
struct WindowChunk {
    std::size_t spikes_end = 0;
    std::uint64_t frames_end = 0;
    std::vector<hw::ArtifactEvent> artifacts;
};

/// Whether the run learns after its first calibration (else its sorter is fixed, or swapped by --recalibrate-every).
bool sorter_learns(const SortRunOptions& options) {
    return options.sort.keep_learning && options.sort.recalibrate_every_s == 0 && options.sorter_file.empty() &&
           !options.units_from && options.detect.backend.name != "xrt";
}

/// A single pass, or one of a relabelling run's two.
enum class Pass { single, learning, relabelling };

/// spike_cache: the learning pass writes every chunk's sorted spikes there, the relabelling pass labels them again from
/// it instead of reading the recording. first_pass: with Pass::relabelling, the learning pass's result.
SortRunResult sort_once(const std::function<std::unique_ptr<io::RecordingSource>()>& open_source,
                        const probe::Probe& probe, const SortRunOptions& options, const std::filesystem::path& out_dir,
                        Pass pass, const std::filesystem::path& spike_cache = {},
                        const SortRunResult* first_pass = nullptr);

} // namespace

SortRunResult run_sorting(const std::function<std::unique_ptr<io::RecordingSource>()>& open_source,
                          const probe::Probe& probe, const SortRunOptions& options,
                          const std::filesystem::path& out_dir) {
    if (!options.relabel || !sorter_learns(options))
        return sort_once(open_source, probe, options, out_dir, Pass::single);
    const std::filesystem::path scratch = out_dir / ".first_pass";
    // Every spike is labelled by the last sorter, so the first pass need not keep earlier labels: it learns its units
    // once, at the recording's end, re-clustering a sample of every spike (as --relearn-all), which learns better
    // units than adding to the first ones (docs/ACCURACY.md).
    SortRunOptions learning = options;
    learning.relabel = false;
    learning.sort.relearn_all = true;
    SortRunOptions labelling = learning;
    labelling.sorter_file = scratch / "sorter.json";
    SortRunResult first, result;
    try {
        const std::filesystem::path spike_cache = scratch / "spikes.cache";
        first = sort_once(open_source, probe, learning, scratch, Pass::learning, spike_cache);
        result = sort_once(open_source, probe, labelling, out_dir, Pass::relabelling, spike_cache, &first);
    } catch (...) {
        std::filesystem::remove_all(scratch);
        throw;
    }
    std::filesystem::remove_all(scratch);
    result.sorter_loaded.clear();
    result.relabelled = true;
    result.n_calibrations = first.n_calibrations;
    result.calibration_spikes = first.calibration_spikes;
    result.n_recalibrations_skipped = first.n_recalibrations_skipped;
    result.last_skip_reason = first.last_skip_reason;
    result.calibration_wall_seconds = first.calibration_wall_seconds;
    result.clustering_wall_seconds = first.clustering_wall_seconds;
    result.first_pass_wall_seconds = first.wall_seconds;
    result.end_learning_spikes = first.end_learning_spikes;
    result.end_learning_wall_seconds = first.end_learning_wall_seconds;
    result.wall_seconds += first.wall_seconds;
    result.realtime_factor = result.wall_seconds > 0 ? result.recording_seconds / result.wall_seconds : 0;
    result.peak_rss_bytes = std::max(result.peak_rss_bytes, first.peak_rss_bytes);
    return result;
}

namespace {

SortRunResult sort_once(const std::function<std::unique_ptr<io::RecordingSource>()>& open_source,
                        const probe::Probe& probe, const SortRunOptions& options, const std::filesystem::path& out_dir,
                        Pass pass, const std::filesystem::path& spike_cache, const SortRunResult* first_pass) {
    const auto run_start = Clock::now();
    SortRunResult result;
    std::unique_ptr<io::RecordingSource> source = open_source();
    const io::RecordingInfo info = source->info();
    require(probe.n_channels() == info.n_channels, "probe and recording channel counts differ");
    require(info.n_frames > 0, "the recording " + info.data_path.string() + " holds no samples");
    const auto detect_params = make_detect_params(options.detect.settings, probe, info.sample_rate);
    const sort::SorterFileContext context =
        sort::make_sorter_file_context(probe, info.sample_rate, options.detect.settings, options.sort);
    sort::SortSettings learning = options.sort; // what calibrations learn with: the settings and the recording's rate
    learning.sample_rate = info.sample_rate;
    const std::shared_ptr<const HwSortParams> geometry = context.geometry;
    const std::filesystem::path sorter_path = out_dir / "sorter.json";
    const std::size_t chunk_frames = chunk_frames_for(options.detect.chunk_ms, info.sample_rate);
    const std::size_t values_per_spike =
        static_cast<std::size_t>(HwSortConfig::snippet_channels * (geometry->pre + 1 + geometry->post));
    const bool on_fpga = options.detect.backend.name == "xrt";
    require(!on_fpga || options.sort.recalibrate_every_s == 0,
            "--recalibrate-every needs the snippets of the labelling pass, which the xrt backend does not return: "
            "sort without it on the card, or use --backend cpu");
    const bool loaded = !options.sorter_file.empty();
    const bool from_units = options.units_from != nullptr;
    require(!from_units || (!loaded && options.sort.recalibrate_every_s == 0),
            "--units-from builds a fixed sorter from the folder's units: pass neither --sorter nor "
            "--recalibrate-every with it");
    require(!loaded || options.sort.recalibrate_every_s == 0,
            "--sorter labels with a fixed sorter while --recalibrate-every learns new ones: pass only one of them");
    // Loaded before anything is written, so that a sorter that does not fit leaves no output behind.
    sort::Calibration calibration;
    std::string loaded_text;
    if (loaded) {
        if (first_pass) { // the sorter the first pass wrote, as it wrote it
            calibration = *first_pass->last_calibration;
        } else {
            calibration = sort::read_sorter_file(options.sorter_file, context, &loaded_text);
            result.sorter_loaded = options.sorter_file;
        }
        result.calibration_spikes = calibration.n_spikes;
    }
    ensure_directory(out_dir);
    const OutputManifest manifest(out_dir);
    ProgressLine progress(options.detect.progress);
    CalibrationWindow window{{}, options.sort.max_calibration_spikes, {}};
    // Motion tracking needs the snippets of every spike (to localise it) and a backend that applies table writes.
    const bool track_motion = options.sort.motion && !on_fpga;
    if (options.sort.motion && on_fpga)
        result.motion_note = "off: motion tracking localises spikes from their snippets, which the xrt kernel does not "
                             "return (units stay where they were learnt)";
    // The first of two passes learns only a basis from its window, which takes no motion (its tracking starts below).
    const bool window_motion = track_motion && pass != Pass::learning;
    if (window_motion)
        window.motion.probe = &probe;
    const motion::MotionSettings motion_settings;
    const bool recalibrate = options.sort.recalibrate_every_s > 0;
    // The calibration pass's backend, reader and snippets label the window afterwards (no second detection over it)
    // unless the card labels (xrt), the window is learnt again (--recalibrate-every) or it held more spikes than a
    // calibration keeps (then they are detected again, from the recording's start).
    std::unique_ptr<Backend> backend;
    std::unique_ptr<ChunkReader> reader;
    std::vector<WindowChunk> window_chunks;
    const std::int16_t* rest_of_chunk = nullptr; ///< the window ended inside this chunk: its frames after the window
    std::size_t rest_frames = 0;
    std::uint64_t window_frames = 0;
    bool label_window = false;
    bool recording_ended = false; ///< the calibration pass read the whole recording
    if (loaded) {
        // The folder carries the sorter its labels came from, byte for byte (its context names the calibration's
        // settings, not this run's).
        if (first_pass)
            std::filesystem::rename(options.sorter_file, sorter_path);
        else
            write_text_file(sorter_path, loaded_text);
    } else {
        // Calibration: detect and take snippets over the first calibration_s seconds, on the host (an FPGA run
        // calibrates on the CPU backend, whose snippets are bit-identical).
        const auto calibration_start = Clock::now();
        const auto calibration_frames = std::min<std::uint64_t>(
            info.n_frames, static_cast<std::uint64_t>(std::llround(options.sort.calibration_s * info.sample_rate)));
        {
            DetectRunOptions calibration_run = options.detect;
            if (on_fpga)
                calibration_run.backend.name = "cpu";
            backend = make_run_backend(calibration_run, *detect_params, info.sample_rate, probe);
            backend->enable_sorting(geometry, true);
            reader = std::make_unique<ChunkReader>(*source, chunk_frames);
            std::vector<SpikeEvent> events;
            SortOutput sorted;
            std::size_t seen = 0;
            std::unique_ptr<MotionTracking> tracking;
            if (window_motion)
                tracking = std::make_unique<MotionTracking>(probe, info.sample_rate, geometry, motion_settings);
            while (window_frames < calibration_frames) {
                std::size_t n = 0;
                const std::int16_t* chunk = reader->next(n);
                if (n == 0) {
                    recording_ended = true; // the reader has nothing more to give
                    break;
                }
                const auto in_window =
                    static_cast<std::size_t>(std::min<std::uint64_t>(n, calibration_frames - window_frames));
                if (in_window < n) {
                    rest_of_chunk = chunk + in_window * static_cast<std::size_t>(info.n_channels);
                    rest_frames = n - in_window;
                }
                backend->process(chunk, in_window, events);
                events.clear();
                backend->take_sorted(sorted);
                window_frames += in_window;
                seen += sorted.spikes.size();
                if (tracking)
                    tracking->add(sorted, window_frames);
                window.add(sorted, values_per_spike, tracking.get());
                WindowChunk piece{window.data.spikes.size(), window_frames, {}};
                backend->take_artifacts(piece.artifacts);
                window_chunks.push_back(std::move(piece));
                sorted.spikes.clear(); // (keeping its capacity for the next chunk)
                sorted.snippets.clear();
                char line[160];
                std::snprintf(line, sizeof line, "calibrate: %.1f / %.1f s  %zu spikes",
                              static_cast<double>(window_frames) / info.sample_rate,
                              static_cast<double>(calibration_frames) / info.sample_rate, window.data.spikes.size());
                progress.update(line);
            }
            label_window = !on_fpga && !recalibrate && seen == window.data.spikes.size();
            if (pass == Pass::learning && window_frames > 0) // the window's rate over the whole recording
                require_cache_space(out_dir, spike_cache_bytes(seen * info.n_frames / window_frames, values_per_spike));
            if (tracking) // where the motion was measured to be, where that differs from the prediction
                tracking->history().refine(window.data.spikes, window.motion.displacement_um);
        }
        result.window_labelled_on_host = label_window;
        if (!label_window) {
            backend.reset();
            reader.reset();
            source.reset();
            window_chunks.clear();
            recording_ended = false; // read again from its start
        }
        const auto clustering_start = Clock::now();
        // The first of two passes learns its units at the end only (below): here the basis they will use.
        if (pass == Pass::learning)
            calibration = sort::calibrate_basis(*geometry, window.data);
        else if (from_units)
            calibration = sort::calibrate_from_units(*geometry, window.data, *options.units_from, learning,
                                                     window.motion_or_null(), &result.units_from);
        else
            calibration = sort::calibrate(*geometry, window.data, learning, 0, nullptr, window.motion_or_null());
        result.clustering_wall_seconds = seconds_since(clustering_start);
        result.calibration_spikes = window.data.spikes.size();
        result.calibration_wall_seconds = seconds_since(calibration_start);
        result.n_calibrations = 1;
        if (!label_window)
            window.clear();
        sort::write_sorter_file(calibration, context, sorter_path);
    }
    result.sorter_written = sorter_path;

    // Labelling: the whole recording from its start through the calibrated sorting stage; the calibration window, when
    // its snippets were all kept, on the host with the same arithmetic (sort::SnippetLabeller).
    const auto labelling_start = Clock::now();
    const double duration_s = static_cast<double>(info.n_frames) / info.sample_rate;
    sort::PhyWriter writer(out_dir, probe, info, geometry, duration_s);
    writer.add_calibration(calibration);
    // The first of two passes labels nothing that is kept: no Phy folder (its sorter and snippets are its output).
    const bool writes_folder = pass != Pass::learning;
    std::uint64_t spikes_handled = 0;
    const auto recalibrate_frames =
        static_cast<std::uint64_t>(std::llround(options.sort.recalibrate_every_s * info.sample_rate));
    std::uint64_t next_recalibration = recalibrate_frames;
    // Keep learning: calibrate again on a sample of every spike so far at 2, 4, 8... times the calibration window,
    // on the same basis, so that the units it finds (rare ones, late ones) reach the backend as table writes.
    const bool learn = sorter_learns(options);
    std::uint64_t next_learning =
        2 * static_cast<std::uint64_t>(std::llround(options.sort.calibration_s * info.sample_rate));
    const bool keep_snippets = recalibrate || track_motion || learn;
    std::unique_ptr<sort::SnippetLabeller> labeller; ///< labels the window until the backend takes over
    // The second of two passes labels the first pass's spikes again on the host (no backend, no reading).
    const bool from_cache = pass == Pass::relabelling;
    std::unique_ptr<SpikeCacheReader> cache_reader;
    std::unique_ptr<SpikeCacheWriter> cache_writer;
    if (pass == Pass::learning)
        cache_writer = std::make_unique<SpikeCacheWriter>(spike_cache, values_per_spike);
    if (label_window || from_cache) {
        labeller = std::make_unique<sort::SnippetLabeller>(*calibration.params);
        if (from_cache)
            cache_reader = std::make_unique<SpikeCacheReader>(spike_cache, values_per_spike);
    } else {
        if (!source) // a loaded sorter labels on the first reading
            source = open_source();
        DetectRunOptions labelling_run = options.detect;
        labelling_run.xrt.sorting = true;
        backend = make_run_backend(labelling_run, *detect_params, info.sample_rate, probe);
        backend->enable_sorting(calibration.params, keep_snippets);
        reader = std::make_unique<ChunkReader>(*source, chunk_frames);
    }
    std::unique_ptr<MotionTracking> tracking;
    std::unique_ptr<TableWriteLog> write_log;
    SpikeReservoir reservoir(options.sort.max_calibration_spikes, values_per_spike, track_motion);
    if (track_motion || learn) {
        tracking = std::make_unique<MotionTracking>(probe, info.sample_rate, geometry, motion_settings, track_motion);
        tracking->follow(calibration, true);
        if (pass == Pass::learning) // for the second pass
            tracking->record_effects();
        if (from_cache && track_motion) // the same spikes and frames: the first pass's estimates
            tracking->replay(first_pass->motion_effects);
        write_log = std::make_unique<TableWriteLog>(out_dir / "unit_updates.npy");
    }
    auto learn_from_reservoir = [&](bool at_end) {
        try {
            SortOutput sample;
            sort::CalibrationMotion motion{&probe, {}};
            // The next learning looks only at what these units leave unsorted; at the end there is none (and the
            // sample is not held twice while learning, nor while it is copied).
            if (at_end) {
                reservoir.move_to(sample, motion.displacement_um);
            } else {
                reservoir.snapshot().copy_to(sample, motion.displacement_um);
                if (!options.sort.relearn_all)
                    reservoir.restart();
            }
            if (track_motion)
                tracking->history().refine(sample.spikes, motion.displacement_um);
            calibration = sort::calibrate(*geometry, sample, learning, writer.next_template_id(), &calibration,
                                          track_motion ? &motion : nullptr, true);
            writer.add_calibration(calibration);
            tracking->follow(calibration, false);
            ++result.n_calibrations;
        } catch (const InputError& e) {
            ++result.n_recalibrations_skipped;
            result.last_skip_reason = e.what();
        }
    };
    // The first of two passes feeds nothing back from a chunk's handling to the backend (no units, so no table writes;
    // it learns only at the end): a chunk is handled on another thread while the next one is detected, which gives
    // the backend's other threads the time they waited for the main thread (docs/PERFORMANCE.md, stop 30).
    const bool handles_behind = pass == Pass::learning && !recalibrate && calibration.units.empty();
    // One chunk's sorted spikes, as the labelling pass handles them after every chunk of the recording.
    auto handle_chunk = [&](SortOutput& sorted, std::vector<hw::ArtifactEvent>& artifacts, std::size_t n) {
        if (cache_writer)
            cache_writer->append(sorted, artifacts, n);
        if (writes_folder) {
            writer.append(sorted.spikes);
            writer.append_artifacts(artifacts);
        }
        spikes_handled += sorted.spikes.size();
        artifacts.clear();
        result.frames += n;
        if (tracking)
            tracking->add(sorted, result.frames);
        if (recalibrate)
            window.add(sorted, values_per_spike, tracking.get());
        if (learn)
            reservoir.add(sorted, tracking.get());
        sorted.spikes.clear(); // (keeping its capacity for the next chunk)
        sorted.snippets.clear();
        // (Not at the end of a single pass: nothing would be labelled with it, and sorter.json is the sorter that
        // labelled the spikes. The first of two passes learns only at the end, below: its learnings re-cluster every
        // spike and carry no old unit, so one on the way would change only ids and the labels this pass discards.)
        if (learn && pass != Pass::learning && result.frames >= next_learning && result.frames < info.n_frames) {
            next_learning *= 2;
            learn_from_reservoir(false);
        }
        if (recalibrate && result.frames >= next_recalibration) {
            // Follow drift: learn again from the last period's snippets; matching units keep their ids.
            next_recalibration += recalibrate_frames;
            if (!window.data.spikes.empty()) {
                try {
                    calibration = sort::calibrate(*geometry, window.data, learning, writer.next_template_id(),
                                                  &calibration, window.motion_or_null());
                    writer.add_calibration(calibration);
                    backend->enable_sorting(calibration.params, true);
                    if (tracking)
                        tracking->follow(calibration, true);
                    ++result.n_calibrations;
                } catch (const InputError& e) {
                    // Too few spikes in this period to learn from: keep the current calibration, and say so.
                    ++result.n_recalibrations_skipped;
                    result.last_skip_reason =
                        std::string(e.what()) + " (for a recalibration the window is one --recalibrate-every period)";
                }
            }
            window.clear();
        }
        if (tracking) {
            // Units follow the latest estimate from the next frame on, in every backend alike.
            const std::vector<hw::TableWrite> writes = tracking->table_writes(result.frames);
            if (!writes.empty()) {
                if (handles_behind) // (nothing to move: the first pass has no units)
                    throw std::logic_error("sort_once: table writes in a pass that handles chunks behind detection");
                if (labeller && (from_cache || result.frames <= window_frames))
                    labeller->queue_writes(writes);
                else
                    backend->queue_table_writes(writes);
                write_log->append(writes);
            }
        }
        const double elapsed = seconds_since(labelling_start);
        const double done_s = static_cast<double>(result.frames) / info.sample_rate;
        const std::string units =
            pass == Pass::learning ? "units learnt at the end" : std::to_string(calibration.units.size()) + " units";
        char line[200];
        std::snprintf(line, sizeof line, "sort%s: %.1f / %.1f s (%.0f%%)  %.1fx real time  %.0f spikes/s  %s",
                      pass == Pass::learning      ? " (pass 1 of 2, collecting)"
                      : pass == Pass::relabelling ? " (pass 2 of 2, labelling)"
                                                  : "",
                      done_s, duration_s, 100.0 * done_s / duration_s, elapsed > 0 ? done_s / elapsed : 0.0,
                      done_s > 0 ? static_cast<double>(spikes_handled) / done_s : 0.0, units.c_str());
        progress.update(line);
    };
    std::vector<SpikeEvent> events;
    SortOutput sorted;
    std::vector<hw::ArtifactEvent> artifacts;
    // With handles_behind: the handling of the chunks before the one being detected, in their order (declared after
    // everything the jobs use, so that an exception here ends the job running before they go). behind() waits for
    // every job given and rethrows their errors.
    std::unique_ptr<SerialTasks> handling;
    if (handles_behind)
        handling = std::make_unique<SerialTasks>(16); // chunks
    auto behind = [&]() {
        if (handling)
            handling->wait();
    };
    auto handle = [&](std::function<void()> job) {
        if (handling)
            handling->add(std::move(job));
        else
            job();
    };
    auto handle_this_chunk = [&](std::size_t n) { // sorted and artifacts
        if (!handling) {
            handle_chunk(sorted, artifacts, n); // (which keeps the buffers for the next chunk)
            return;
        }
        handle([&handle_chunk, chunk = std::move(sorted), chunk_artifacts = std::move(artifacts), n]() mutable {
            handle_chunk(chunk, chunk_artifacts, n);
        });
        sorted = {};
        artifacts = {};
    };
    // Spikes the backend sorts after taking over whose labels the host gives (see below): before this sample.
    std::uint64_t relabel_before = 0;
    auto take_from_backend = [&]() {
        const std::size_t first = sorted.spikes.size();
        backend->take_sorted(sorted);
        backend->take_artifacts(artifacts);
        for (std::size_t i = first; i < sorted.spikes.size() && sorted.spikes[i].event.sample < relabel_before; ++i) {
            if (sorted.snippets.size() < (i + 1) * values_per_spike)
                throw std::logic_error("run_sorting: a spike to label on the host came without its snippet");
            labeller->label(sorted.spikes[i], &sorted.snippets[i * values_per_spike]);
        }
    };
    if (label_window) {
        // Window piece k's spikes and artefacts (its artefacts moved out).
        auto window_piece = [&](std::size_t k, SortOutput& out, std::vector<hw::ArtifactEvent>& piece_artifacts) {
            const std::size_t first = k == 0 ? 0 : window_chunks[k - 1].spikes_end;
            const std::size_t end = window_chunks[k].spikes_end;
            out.spikes.assign(window.data.spikes.begin() + static_cast<std::ptrdiff_t>(first),
                              window.data.spikes.begin() + static_cast<std::ptrdiff_t>(end));
            out.snippets.assign(window.data.snippets.begin() + static_cast<std::ptrdiff_t>(first * values_per_spike),
                                window.data.snippets.begin() + static_cast<std::ptrdiff_t>(end * values_per_spike));
            piece_artifacts = std::move(window_chunks[k].artifacts);
            return static_cast<std::size_t>(window_chunks[k].frames_end -
                                            (k == 0 ? 0 : window_chunks[k - 1].frames_end));
        };
        // The last piece's chunk goes on after the window when rest_frames > 0: it is handled once the backend has
        // sorted the rest of it.
        const std::size_t handled_now = window_chunks.size() - (rest_frames > 0 ? 1 : 0);
        const std::uint64_t handled_frames = handled_now == 0 ? 0 : window_chunks[handled_now - 1].frames_end;
        const std::uint64_t last_sample = window.data.spikes.empty() ? 0 : window.data.spikes.back().event.sample;
        SortOutput continued;
        std::vector<hw::ArtifactEvent> continued_artifacts;
        if (rest_frames > 0)
            window_piece(handled_now, continued, continued_artifacts);
        handle([&, handled_now, window_piece]() { // (window_piece by value: the job may outlive this block)
            SortOutput piece;
            std::vector<hw::ArtifactEvent> piece_artifacts;
            for (std::size_t k = 0; k < handled_now; ++k) {
                const std::size_t n = window_piece(k, piece, piece_artifacts);
                if (writes_folder) // (the first of two passes keeps no labels)
                    labeller->label(piece);
                handle_chunk(piece, piece_artifacts, n);
            }
            window.clear();
            window.data.spikes.shrink_to_fit();
            window.data.snippets.shrink_to_fit();
        });
        if (rest_frames > 0 && writes_folder)
            labeller->label(continued); // (after the pieces before: their writes apply first)
        // The backend takes over with every write before the window's end applied and those from its end on queued.
        // Spikes it still holds (all at or after the last sample it sorted, since spikes leave in sample order) would
        // have seen the writes up to theirs: a write between that sample and the window's end (only with chunks
        // shorter than the stage's latency) applies to some of them and not to others, so those spikes are labelled
        // here, from their snippets (writes come from motion tracking or learning, which keep every snippet).
        std::vector<hw::TableWrite> from_end;
        for (const hw::TableWrite& write : labeller->pending_writes()) {
            if (write.sample >= window_frames)
                from_end.push_back(write);
            else if (write.sample > last_sample)
                relabel_before = std::max(relabel_before, write.sample);
        }
        backend->enable_sorting(labeller->table_with_writes_before(window_frames), keep_snippets);
        backend->queue_table_writes(from_end);
        if (rest_frames > 0) {
            const auto window_part = static_cast<std::size_t>(window_frames - handled_frames);
            sorted = std::move(continued);
            artifacts = std::move(continued_artifacts);
            backend->process(rest_of_chunk, rest_frames, events);
            events.clear();
            take_from_backend();
            handle_this_chunk(window_part + rest_frames);
        }
    }
    if (from_cache) {
        CachedChunk chunk;
        while (cache_reader->next(chunk)) {
            std::swap(sorted, chunk.sorted); // (the next read reuses the buffers)
            std::swap(artifacts, chunk.artifacts);
            labeller->label(sorted);
            if (chunk.n_frames == 0) // what the backend gave when the recording ended
                break;
            handle_chunk(sorted, artifacts, static_cast<std::size_t>(chunk.n_frames));
        }
    } else {
        while (!recording_ended) {
            std::size_t n = 0;
            const std::int16_t* chunk = reader->next(n);
            if (n == 0)
                break;
            backend->process(chunk, n, events);
            events.clear();
            take_from_backend();
            handle_this_chunk(n);
        }
        backend->finish(events);
        take_from_backend();
    }
    behind();
    if (cache_writer) {
        cache_writer->append(sorted, artifacts, 0);
        cache_writer->finish();
    }
    if (writes_folder) {
        writer.append(sorted.spikes);
        writer.append_artifacts(artifacts);
    }
    progress.finish();
    if (learn && pass == Pass::learning) { // from a sample of the whole recording, which the second pass labels with it
        progress.update("sort (pass 1 of 2, learning): clustering a sample of " + std::to_string(reservoir.size()) +
                        " spikes of the whole recording");
        const auto learning_start = Clock::now();
        result.end_learning_spikes = reservoir.size();
        learn_from_reservoir(true);
        result.end_learning_wall_seconds = seconds_since(learning_start);
        progress.finish();
    }
    if (result.n_calibrations > 1) // the first one is on disk already
        sort::write_sorter_file(calibration, context, sorter_path);
    if (pass == Pass::learning)
        result.last_calibration = std::make_shared<const sort::Calibration>(calibration);

    result.labelling_wall_seconds = seconds_since(labelling_start);
    const auto writing_start = Clock::now();
    result.recording_seconds = static_cast<double>(result.frames) / info.sample_rate;
    result.spikes = writer.n_spikes();
    result.unsorted = writer.n_unsorted();
    result.artifacts = writer.n_artifacts();
    if (backend) {
        result.backend_name = backend->name();
        result.lost_events = backend->lost_events();
        result.artifact_candidates = backend->artifact_candidates();
        result.rtl = backend->rtl_cycle_facts();
    } else { // the first pass's backend detected these spikes
        result.backend_name = first_pass->backend_name;
        result.lost_events = first_pass->lost_events;
        result.artifact_candidates = first_pass->artifact_candidates;
        result.rtl = first_pass->rtl;
    }
    // An earlier run's motion files in this folder would describe another sort: only this run's stay.
    if (!track_motion)
        for (const char* name : {"motion.npy", "motion_times_s.npy", "motion_blocks.npy"})
            std::filesystem::remove(out_dir / name);
    if (!tracking)
        std::filesystem::remove(out_dir / "unit_updates.npy");
    if (tracking) {
        write_log->finish();
        if (track_motion)
            tracking->write_motion(out_dir);
        result.motion_estimates = tracking->estimates().size();
        std::vector<double> all;
        for (const motion::MotionEstimate& e : tracking->estimates())
            all.insert(all.end(), e.displacement.begin(), e.displacement.end());
        if (!all.empty()) {
            std::sort(all.begin(), all.end());
            result.motion_min_um = all.front();
            result.motion_max_um = all.back();
            result.motion_median_um = all[all.size() / 2];
        }
        result.units_moved = tracking->units_moved();
        if (pass == Pass::learning)
            result.motion_effects = tracking->estimator().effects();
        result.table_writes = tracking->n_writes();
    }
    nlohmann::json meta = {
        {"format", "spikeline sort output (Phy template-gui folder)"},
        {"recording", info.data_path.string()},
        {"probe", probe.name},
        {"n_channels", info.n_channels},
        {"sample_rate", info.sample_rate},
        {"n_frames", result.frames},
        {"n_spikes", result.spikes},
        {"n_unsorted", result.unsorted},
        {"n_calibrations", first_pass ? first_pass->n_calibrations : result.n_calibrations},
        {"n_recalibrations_skipped", result.n_recalibrations_skipped},
        {"calibration_spikes", result.calibration_spikes},
        {"backend", result.backend_name},
        {"lost_events", result.lost_events},
        {"artifacts", result.artifacts},
        {"artifact_candidates", result.artifact_candidates},
        {"motion_tracking", track_motion},
        {"motion_estimates", result.motion_estimates},
        {"table_writes", result.table_writes},
        {"sorter_file", sorter_path.filename().string()},
        {"sorter_loaded_from", loaded && !first_pass ? nlohmann::json(options.sorter_file.string()) : nlohmann::json()},
        {"detect_settings", to_json(options.detect.settings)},
        {"sort_settings", sort::to_json(options.sort)},
        {"cluster_ids", "0 = unsorted (group noise); unit u = cluster u + 1"},
    };
    if (first_pass)
        meta["relabelled"] = {
            {"first_pass_calibrations", first_pass->n_calibrations},
            {"first_pass_wall_seconds", first_pass->wall_seconds},
            {"end_learning_spikes", first_pass->end_learning_spikes},
            {"end_learning_wall_seconds", first_pass->end_learning_wall_seconds},
            {"note", "labels from a second pass with the first pass's last sorter (without --one-pass)"}};
    if (from_units) {
        meta["units_from"] = result.units_from.to_json();
        meta["units_from"]["folder"] = options.units_from->folder.string();
        meta["units_from"]["layout"] = options.units_from->layout;
        meta["units_from"]["labels_file"] = options.units_from->labels_file;
        meta["units_from"]["units"] = options.units_from->units.size();
    }
    if (!info.channel_ids.empty()) // a selection: channel c of the settings and outputs is channel_ids[c]
        meta["channel_ids"] = info.channel_ids;
    add_rtl_section(meta, result.rtl);
    if (writes_folder) {
        result.quality = writer.finish(with_input_provenance(meta, info, probe),
                                       static_cast<double>(result.frames) / info.sample_rate);
        result.n_units = static_cast<int>(result.quality.size()) - 1;
        manifest.write("sort");
    }
    result.peak_rss_bytes = peak_rss_bytes();
    result.writing_wall_seconds = seconds_since(writing_start);
    result.wall_seconds = seconds_since(run_start);
    result.realtime_factor = result.wall_seconds > 0 ? result.recording_seconds / result.wall_seconds : 0;
    return result;
}

} // namespace

} // namespace spikeline
