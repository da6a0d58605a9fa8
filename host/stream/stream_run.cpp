#include "stream/stream_run.hpp"

#include "io/npy.hpp"
#include "sort/sorter_file.hpp"
#include "stream/bounded_queue.hpp"
#include "stream/gap_log.hpp"
#include "stream/http_view.hpp"
#include "stream/pipeline.hpp"
#include "stream/publisher.hpp"
#include "stream/sink.hpp"
#include "stream/stream_decoding.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "util/manifest.hpp"
#include "util/memory.hpp"
#include "util/threads.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <exception>
#include <thread>

namespace spikeline::stream {

using namespace std::chrono_literals;

nlohmann::json run_stream(const StreamOptions& options, const std::atomic<bool>& stop) {
    std::unique_ptr<LiveSource> source = open_live_source(options.source);
    const SourceInfo info = source->info();

    io::RecordingInfo probe_lookup = info.recording.value_or(io::RecordingInfo{});
    probe_lookup.n_channels = info.n_channels;
    probe_lookup.sample_rate = info.sample_rate;
    probe_lookup.data_path = info.data_path;
    std::string probe_origin;
    const probe::Probe probe = resolve_probe(options.probe_file, probe_lookup, &probe_origin);
    const auto detect_params = make_detect_params(options.detect.settings, probe, info.sample_rate);
    sort::SortSettings geometry_settings = options.sort; // calibration_s 0 (no sorting) does not change geometry
    if (geometry_settings.calibration_s == 0)
        geometry_settings.calibration_s = 1;
    const std::shared_ptr<const HwSortParams> geometry =
        sort::make_sort_params(geometry_settings, probe, info.sample_rate, *detect_params);
    require(options.sort.calibration_s >= 0 && std::isfinite(options.sort.calibration_s),
            "--calibration-s must be >= 0");
    require(options.duration_s >= 0 && std::isfinite(options.duration_s), "--duration must be >= 0");
    require(options.queue_blocks >= 2, "--queue-blocks must be at least 2");
    std::unique_ptr<Backend> backend = make_run_backend(options.detect, *detect_params, info.sample_rate, probe);
    // A spike is final once its snippet's last sample (peak + post) and de-duplication's horizon have been seen.
    const std::uint64_t need_frames = static_cast<std::uint64_t>(
        std::max(geometry->post, detect_params->dedup_window + detect_params->align_window - 1));
    const auto calibration_frames =
        options.sorter_file.empty()
            ? static_cast<std::uint64_t>(std::llround(options.sort.calibration_s * info.sample_rate))
            : 0;
    const OverrunPolicy overrun = options.overrun.value_or(info.live ? OverrunPolicy::drop : OverrunPolicy::block);
    const sort::SorterFileContext sorter_context =
        sort::make_sorter_file_context(probe, info.sample_rate, options.detect.settings, geometry_settings);
    std::shared_ptr<const sort::Calibration> loaded_sorter;
    if (!options.sorter_file.empty())
        loaded_sorter =
            std::make_shared<const sort::Calibration>(sort::read_sorter_file(options.sorter_file, sorter_context));
    std::shared_ptr<const sort::OfflineUnits> units_from;
    if (!options.units_from.empty()) {
        require(options.sorter_file.empty(),
                "--units-from builds the sorter from a folder's units, --sorter loads one: "
                "pass only one of them");
        require(calibration_frames > 0, "--units-from measures the folder's units on the first --calibration-s "
                                        "seconds of the stream: give --calibration-s > 0");
        io::RecordingInfo recording = probe_lookup;
        recording.microvolts_per_bit = info.microvolts_per_bit;
        units_from = std::make_shared<const sort::OfflineUnits>(
            sort::read_offline_units(options.units_from, recording, probe, {options.units_from_all}));
    }
    std::optional<decode::DecoderModel> model;
    if (!options.decoder_model.empty())
        model = read_stream_decoder(options.decoder_model, info, loaded_sorter.get());

    // Motion tracking and learning need the snippets of every spike and a backend that applies table writes.
    const bool on_fpga = options.detect.backend.name == "xrt";
    const bool track_motion = options.sort.motion && !on_fpga;
    const bool learn = options.sort.keep_learning && calibration_frames > 0 && !units_from && !on_fpga;
    std::string motion_note;
    if (options.sort.motion && on_fpga)
        motion_note = "off: the xrt backend does not apply unit updates yet (units stay where they were learnt)";

    std::atomic<std::uint64_t> overrun_blocks{0}, overrun_frames{0}; // by the reader; read by the summary and the view
    // The live view reads what the pipeline hands over and the source's counters, on its own thread. It starts
    // before any output exists, so that a busy port stops the run without leaving files behind.
    std::unique_ptr<LiveFeed> live_feed;
    std::unique_ptr<HttpView> http_view;
    if (!options.http.empty()) {
        live_feed = std::make_unique<LiveFeed>();
        std::vector<double> positions;
        std::vector<int> shanks;
        for (const probe::Contact& contact : probe.contacts) {
            positions.push_back(contact.x_um);
            positions.push_back(contact.y_um);
            shanks.push_back(contact.shank);
        }
        nlohmann::json hello = {{"n_channels", info.n_channels},
                                {"sample_rate", info.sample_rate},
                                {"source", info.description},
                                {"probe", probe.name},
                                {"positions", positions},
                                {"shanks", shanks},
                                {"out_dir", std::filesystem::absolute(options.out_dir).string()},
                                {"decoder", model.has_value()},
                                {"calibration_s", calibration_frames > 0 ? options.sort.calibration_s : 0.0}};
        http_view = std::make_unique<HttpView>(HttpViewSettings{options.http, options.http_any}, *live_feed,
                                               std::move(hello), *source, overrun_blocks);
        // Always said (port 0 picks a free port): this is where the operator points a browser.
        std::fprintf(stderr, "stream: live view at http://%s:%u/\n",
                     options.http.substr(0, options.http.rfind(':')).c_str(), unsigned{http_view->port()});
    }
    std::optional<PublisherSecurity> security;
    if (!options.curve_secret.empty() || !options.curve_clients.empty()) {
        require(!options.curve_secret.empty() && !options.curve_clients.empty(),
                "CURVE needs both --curve-secret FILE (the publisher's key pair) and --curve-clients DIR (the "
                "subscribers' public keys)");
        require(!options.publish.empty(), "--curve-secret and --curve-clients secure --publish: give --publish too");
        security =
            PublisherSecurity{read_curve_secret(options.curve_secret), read_curve_clients(options.curve_clients)};
    }
    ensure_directory(options.out_dir);
    const OutputManifest manifest(options.out_dir);
    std::unique_ptr<Publisher> publisher;
    if (!options.publish.empty())
        publisher = std::make_unique<Publisher>(options.publish, security);

    // Sink thread: the SpikeGLX copy and the Phy folder, written in arrival order.
    SinkSettings sink_settings;
    sink_settings.out_dir = options.out_dir;
    sink_settings.save_raw = options.save_raw;
    sink_settings.saved.n_channels = info.n_channels;
    sink_settings.saved.sample_rate = info.sample_rate;
    sink_settings.saved.microvolts_per_bit = info.microvolts_per_bit;
    sink_settings.saved.format = "spikeglx";
    sink_settings.saved.data_path = std::filesystem::absolute(options.out_dir / "recording.bin");
    sink_settings.source_description = info.description;
    sink_settings.expected_duration_s = options.duration_s;
    sink_settings.decoded = model.has_value();
    sink_settings.hold_until_calibration = calibration_frames > 0;
    sink_settings.unit_updates = track_motion || learn;
    sink_settings.sorter_context = sorter_context;
    sink_settings.phy_info = {{"backend", backend->name()},
                              {"detect_settings", to_json(options.detect.settings)},
                              {"sort_settings", sort::to_json(options.sort)},
                              {"cluster_ids", "0 = unsorted (group noise); unit u = cluster u + 1"}};
    StreamSink sink(std::move(sink_settings), probe, geometry);

    // Reader thread: the source into a bounded queue, with the overrun policy.
    BoundedQueue<SourceBlock> queue(options.queue_blocks);
    std::atomic<bool> stop_reading{false};
    std::exception_ptr reader_error;
    require(options.realtime_priority >= 0 && options.realtime_priority <= 99, "--rt-priority must be in 0..99");
    std::string reader_error_text;
    std::thread reader_thread([&]() {
        name_this_thread("sl-reader");
        make_thread_realtime(options.realtime_priority); // as the pipeline's, which is reported
        try {
            source->run(stop_reading, [&](SourceBlock&& block) {
                if (overrun == OverrunPolicy::block) {
                    queue.push(std::move(block));
                } else if (!queue.try_push(block)) {
                    overrun_blocks.fetch_add(1);
                    overrun_frames.fetch_add(block.n_frames);
                }
            });
        } catch (const std::exception& e) {
            reader_error = std::current_exception();
            reader_error_text = e.what();
        } catch (...) {
            reader_error = std::current_exception();
            reader_error_text = "unknown error";
        }
        queue.close();
    });

    // The pipeline, on this thread.
    const std::string priority_error = make_thread_realtime(options.realtime_priority);
    GapLog gaps(options.out_dir / "gaps.tsv");
    std::unique_ptr<StreamDecoding> decoding;
    if (model)
        decoding = std::make_unique<StreamDecoding>(*model, publisher.get());
    PipelineSetup setup;
    setup.info = info;
    setup.probe = &probe;
    setup.backend = backend.get();
    setup.geometry = geometry;
    setup.sort = options.sort;
    setup.sort.sample_rate = info.sample_rate; // calibrations look for bursts in spike times
    setup.need_frames = need_frames;
    setup.calibration_frames = calibration_frames;
    const auto duration_frames = static_cast<std::uint64_t>(std::llround(options.duration_s * info.sample_rate));
    setup.duration_frames = duration_frames;
    // A spike found later than this after a gap started its alignment search on real data.
    setup.gap_blank_frames = static_cast<std::uint64_t>(detect_params->align_window);
    setup.scale = (info.microvolts_per_bit > 0 ? info.microvolts_per_bit : 1.0) / (1 << HwConfig::sample_frac_bits);
    setup.loaded_sorter = loaded_sorter;
    setup.units_from = units_from;
    setup.track_motion = track_motion;
    setup.learn = learn;
    setup.wait_for_calibration = info.kind == "file" && !options.source.realtime;
    setup.status = options.status;
    setup.publisher = publisher.get();
    setup.decoding = decoding.get();
    setup.sink = &sink;
    setup.gaps = &gaps;
    setup.live = live_feed.get();
    StreamPipeline pipeline(std::move(setup));
    // Whatever ends the stream, every file is finalised with what it received: errors are recorded, not thrown.
    std::string pipeline_error;
    try {
        pipeline.run(queue, stop_reading, stop, *source, overrun_blocks);
    } catch (const std::exception& e) {
        pipeline_error = e.what();
        stop_reading.store(true);
        while (!queue.closed_and_empty()) // the reader may be waiting for room
            queue.pop(20ms);
    }
    reader_thread.join();

    // End of stream: the spikes still waiting for samples after the last one, then the sinks' final files.
    if (pipeline_error.empty()) {
        try {
            pipeline.finish();
        } catch (const std::exception& e) {
            pipeline_error = e.what();
        }
    }
    sink.finish();
    std::vector<std::string> not_finished = sink.not_finished();
    try {
        gaps.commit();
    } catch (const std::exception& e) {
        not_finished.push_back(std::string("gaps.tsv: ") + e.what());
    }

    // Why it ended: an error (the first in the data's path), else a stop request, else the data's end.
    std::string ended_by, error_text;
    if (reader_error) {
        ended_by = "source_error";
        error_text = reader_error_text;
    } else if (sink.failed()) {
        ended_by = sink.disk_full() ? "disk_full" : "sink_error";
        error_text = sink.error_text();
    } else if (!pipeline_error.empty()) {
        ended_by = "pipeline_error";
        error_text = pipeline_error;
    } else if (stop.load()) {
        const int signal_number = options.stop_signal ? options.stop_signal->load() : 0;
        ended_by = signal_number == SIGINT ? "sigint" : signal_number == SIGTERM ? "sigterm" : "stop_request";
    } else if (options.duration_s > 0 && pipeline.frames() >= duration_frames) {
        ended_by = "duration";
    } else {
        ended_by = "end_of_source";
    }
    if (error_text.empty() && !not_finished.empty()) // it ended as asked, but a file is not complete
        error_text = not_finished.front();

    nlohmann::json motion_json = {{"tracking", track_motion}};
    if (!motion_note.empty())
        motion_json["note"] = motion_note;
    if (const MotionTracking* tracking = pipeline.tracking()) {
        if (track_motion) {
            try {
                tracking->write_motion(options.out_dir);
            } catch (const std::exception& e) {
                not_finished.push_back(std::string("motion.npy: ") + e.what());
            }
        }
        std::vector<double> all;
        for (const motion::MotionEstimate& e : tracking->estimates())
            all.insert(all.end(), e.displacement.begin(), e.displacement.end());
        motion_json["estimates"] = tracking->estimates().size();
        if (!all.empty()) {
            std::sort(all.begin(), all.end());
            motion_json["min_um"] = all.front();
            motion_json["max_um"] = all.back();
            motion_json["median_um"] = all[all.size() / 2];
        }
        motion_json["units_moved"] = tracking->units_moved();
        motion_json["table_writes"] = tracking->n_writes();
    }

    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - pipeline.wall_start()).count();
    const double data_s = static_cast<double>(pipeline.frames()) / info.sample_rate;
    nlohmann::json calibration_json = pipeline.calibration_json();
    if (loaded_sorter)
        calibration_json["sorter_loaded_from"] = options.sorter_file.string();
    nlohmann::json summary = {
        {"format", "spikeline stream summary"},
        {"source", info.description},
        {"source_kind", info.kind},
        {"n_channels", info.n_channels},
        {"sample_rate", info.sample_rate},
        {"microvolts_per_bit", info.microvolts_per_bit},
        {"probe", probe_origin},
        {"geometry_fallback", probe.builtin_default},
        {"gain_source", probe_lookup.gain_source},
        {"gain_fallback", probe_lookup.gain_fallback || info.microvolts_per_bit <= 0},
        {"backend", backend->name()},
        {"threads", options.detect.backend.threads},
        {"frames", pipeline.frames()},
        {"seconds", data_s},
        {"wall_seconds", wall},
        {"link_base_sample", source->base_sample()},
        {"spikes", pipeline.spikes()},
        {"spikes_published", pipeline.published()},
        {"spikes_released_at_end", pipeline.released_at_end()},
        {"lost_events", backend->lost_events()},
        {"artifacts", pipeline.artifacts()},
        {"artifact_candidates", backend->artifact_candidates()},
        {"latency", pipeline.latency().to_json()},
        {"latency_definition", "arrival of the block holding sample peak + " + std::to_string(need_frames) +
                                   " (the last one the spike needs) -> publication"},
        {"need_frames", need_frames},
        {"overrun_policy", overrun == OverrunPolicy::drop ? "drop" : "block"},
        {"overrun_blocks", overrun_blocks.load()},
        {"overrun_frames", pipeline.overrun_gap_frames()},
        {"link_gap_frames", pipeline.link_gap_frames()},
        {"gap_blank_frames", pipeline.gap_blank_frames()},
        {"blanked_spikes", pipeline.blanked_spikes()},
        {"gap_rows", gaps.rows()},
        {"queue_capacity", queue.capacity()},
        {"queue_high_water", queue.high_water()},
        {"sink_queue_high_water", sink.high_water()},
        {"source_counters", source->counters()},
        {"calibration", calibration_json},
        {"learning", pipeline.learning_json()},
        {"motion", motion_json},
        {"interrupted", stop.load()},
        {"ended_by", ended_by},
        {"error", error_text},
        {"ended_early", !error_text.empty()},
        {"frames_saved", sink.raw_frames_kept()},
        {"frames_lost", options.save_raw ? pipeline.frames() - std::min(pipeline.frames(), sink.raw_frames_kept()) : 0},
        {"spikes_saved", sink.spikes_kept()},
        {"spikes_lost", pipeline.spikes() - std::min(pipeline.spikes(), sink.spikes_kept())},
        {"not_finished", not_finished},
        {"peak_rss_bytes", peak_rss_bytes()},
        {"publish", options.publish},
        {"publisher", publisher ? publisher->to_json() : nlohmann::json()},
        {"raw_saved", options.save_raw},
        {"realtime_priority", options.realtime_priority},
        {"realtime_priority_error", priority_error},
    };
    if (decoding)
        summary["decoder"] = decoding->to_json(options.decoder_model, need_frames);
    if (http_view) {
        live_feed->flush(pipeline.frames()); // after an error the pipeline's own flush may not have run
        http_view->finish(ended_by);
        summary["http"] = {{"endpoint", options.http}, {"port", http_view->port()}};
    }
    try {
        write_text_file(options.out_dir / "stream.json", summary.dump(2) + "\n");
    } catch (const std::exception& e) { // the caller reports the summary it gets and that stream.json is missing
        summary["not_finished"].push_back(std::string("stream.json: ") + e.what());
        if (summary["error"].get<std::string>().empty()) {
            summary["error"] = e.what();
            summary["ended_early"] = true;
        }
    }
    try { // last: it vouches for every file above
        manifest.write("stream");
    } catch (const std::exception& e) {
        summary["not_finished"].push_back(std::string("manifest.json: ") + e.what());
        if (summary["error"].get<std::string>().empty()) {
            summary["error"] = e.what();
            summary["ended_early"] = true;
        }
    }
    return summary;
}

} // namespace spikeline::stream
