#include "stream/stream_run.hpp"

#include "decode/online.hpp"
#include "io/npy.hpp"
#include "io/spikeglx.hpp"
#include "sort/calibration.hpp"
#include "sort/phy_writer.hpp"
#include "sort/sorter_file.hpp"
#include "stream/bounded_queue.hpp"
#include "stream/latency.hpp"
#include "stream/spike_message.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "util/memory.hpp"
#include "util/progress.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <pthread.h>
#include <sched.h>
#include <thread>
#include <variant>

#include <zmq.hpp>

namespace spikeline::stream {
namespace {

using namespace std::chrono_literals;

struct RawItem {
    std::vector<std::int16_t> frames;
    std::size_t n_frames = 0;
};
struct SpikesItem {
    std::vector<hw::SortedSpike> spikes;
};
struct CalibrationItem {
    std::shared_ptr<const sort::Calibration> calibration;
};
struct DecodedItem {
    std::vector<decode::BinEstimate> bins;
};
using SinkItem = std::variant<RawItem, SpikesItem, CalibrationItem, DecodedItem>;

/// A calibration learnt on its own thread at idle priority, so that it never delays the stream.
struct BackgroundCalibration {
    std::thread thread;
    std::atomic<bool> done{false};
    std::shared_ptr<sort::Calibration> result;
    std::string error;
    double wall_seconds = 0;
    bool applied = false;

    void start(std::shared_ptr<const HwSortParams> geometry, SortOutput data, sort::SortSettings settings) {
        thread = std::thread([this, geometry = std::move(geometry), data = std::move(data), settings]() {
            sched_param idle{};
            ::sched_setscheduler(0, SCHED_IDLE, &idle); // best effort: this thread only
            const auto start = std::chrono::steady_clock::now();
            try {
                result = std::make_shared<sort::Calibration>(sort::calibrate(*geometry, data, settings));
            } catch (const std::exception& e) {
                error = e.what();
            }
            wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            done.store(true);
        });
    }
    ~BackgroundCalibration() {
        if (thread.joinable())
            thread.join();
    }
};

/// Rows of gaps.tsv: runs of zero-filled frames, adjacent runs of the same reason merged.
class GapLog {
public:
    explicit GapLog(const std::filesystem::path& path) : file_(path) {
        file_.stream() << "first_frame\tn_frames\treason\n";
    }
    void add(std::uint64_t first, std::uint64_t n, const char* reason) {
        if (open_ && open_first_ + open_n_ == first && open_reason_ == reason) {
            open_n_ += n;
            return;
        }
        flush();
        open_ = true;
        open_first_ = first;
        open_n_ = n;
        open_reason_ = reason;
    }
    void commit() {
        flush();
        file_.commit();
    }
    std::uint64_t rows() const { return rows_ + (open_ ? 1 : 0); }

private:
    void flush() {
        if (open_)
            file_.stream() << open_first_ << '\t' << open_n_ << '\t' << open_reason_ << '\n';
        rows_ += open_ ? 1 : 0;
        open_ = false;
    }
    AtomicFile file_;
    bool open_ = false;
    std::uint64_t open_first_ = 0, open_n_ = 0, rows_ = 0;
    std::string open_reason_;
};

/// Puts the calling thread in the SCHED_FIFO class, so that compilers and other batch work cannot delay it; returns
/// an empty string or why the kernel refused (it needs root or CAP_SYS_NICE).
std::string make_thread_realtime(int priority) {
    if (priority <= 0)
        return "";
    sched_param parameters{};
    parameters.sched_priority = priority;
    const int error = ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &parameters);
    return error == 0 ? "" : std::string("SCHED_FIFO refused: ") + std::strerror(error);
}

/// Reads a decoder model and checks that this stream can feed it: the model's sample rate, and labels the stream
/// produces (threshold-crossing channels of this probe; sorted clusters only with the sorter they came from).
decode::DecoderModel read_stream_decoder(const std::filesystem::path& file, const SourceInfo& info,
                                         const sort::Calibration* sorter) {
    decode::DecoderModel model = decode::read_model(file);
    const std::string where = "decoder model " + file.string() + ": ";
    if (std::abs(model.sample_rate - info.sample_rate) > 1e-6 * info.sample_rate)
        throw InputError(where + "trained at " + std::to_string(model.sample_rate) + " Hz but the stream runs at " +
                         std::to_string(info.sample_rate) + " Hz: train it on a recording at the stream's rate");
    switch (model.unit_source) {
    case decode::UnitSource::channels:
        if (!model.unit_ids.empty() && (model.unit_ids.front() < 0 || model.unit_ids.back() >= info.n_channels))
            throw InputError(where + "its inputs are channels up to " + std::to_string(model.unit_ids.back()) +
                             " but the stream has " + std::to_string(info.n_channels) +
                             " channels: train it on threshold crossings of this probe");
        break;
    case decode::UnitSource::units:
        throw InputError(where + "trained on ground-truth units (spike_units.npy), which a live stream does not have: "
                                 "train it on threshold crossings (spikeline detect output) instead");
    case decode::UnitSource::clusters: {
        if (!sorter)
            throw InputError(where + "trained on sorted clusters, whose ids only mean something with the sorter that "
                                     "produced them: pass that sort's sorter.json with --sorter (or train the model on "
                                     "threshold crossings, spikeline detect output)");
        std::vector<std::int32_t> clusters{0}; // Phy cluster 0: the unsorted spikes
        for (const sort::Unit& unit : sorter->units)
            clusters.push_back(unit.id + 1);
        for (const std::int32_t id : model.unit_ids)
            if (std::find(clusters.begin(), clusters.end(), id) == clusters.end())
                throw InputError(where + "cluster " + std::to_string(id) +
                                 " is not a unit of the sorter: train the model on the output of a sort that used "
                                 "this sorter");
        break;
    }
    }
    return model;
}

std::int64_t realtime_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace

nlohmann::json run_stream(const StreamOptions& options, const std::atomic<bool>& stop) {
    std::unique_ptr<LiveSource> source = open_live_source(options.source);
    const SourceInfo info = source->info();
    const std::size_t stride = static_cast<std::size_t>(info.n_channels);

    io::RecordingInfo probe_lookup;
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
    const std::size_t values_per_spike =
        static_cast<std::size_t>(HwSortConfig::snippet_channels * (geometry->pre + 1 + geometry->post));
    const auto calibration_frames =
        options.sorter_file.empty()
            ? static_cast<std::uint64_t>(std::llround(options.sort.calibration_s * info.sample_rate))
            : 0;
    const auto duration_frames = static_cast<std::uint64_t>(std::llround(options.duration_s * info.sample_rate));
    const double scale =
        (info.microvolts_per_bit > 0 ? info.microvolts_per_bit : 1.0) / (1 << HwConfig::sample_frac_bits);
    const OverrunPolicy overrun = options.overrun.value_or(info.live ? OverrunPolicy::drop : OverrunPolicy::block);
    const sort::SorterFileContext sorter_context =
        sort::make_sorter_file_context(probe, info.sample_rate, options.detect.settings, geometry_settings);
    std::shared_ptr<const sort::Calibration> loaded_sorter;
    if (!options.sorter_file.empty())
        loaded_sorter =
            std::make_shared<const sort::Calibration>(sort::read_sorter_file(options.sorter_file, sorter_context));
    std::optional<decode::DecoderModel> model;
    if (!options.decoder_model.empty())
        model = read_stream_decoder(options.decoder_model, info, loaded_sorter.get());

    ensure_directory(options.out_dir);
    const std::filesystem::path bin_path = options.out_dir / "recording.bin";
    io::RecordingInfo saved;
    saved.n_channels = info.n_channels;
    saved.sample_rate = info.sample_rate;
    saved.microvolts_per_bit = info.microvolts_per_bit;
    saved.format = "spikeglx";
    saved.data_path = std::filesystem::absolute(bin_path);

    std::unique_ptr<zmq::context_t> zmq_context;
    std::unique_ptr<zmq::socket_t> publisher;
    if (!options.publish.empty()) {
        zmq_context = std::make_unique<zmq::context_t>(1);
        publisher = std::make_unique<zmq::socket_t>(*zmq_context, zmq::socket_type::pub);
        // Room for minutes of spikes for a subscriber that stalls; beyond it ZeroMQ drops for that subscriber only.
        publisher->set(zmq::sockopt::sndhwm, 1'000'000);
        publisher->set(zmq::sockopt::linger, 2000);
        try {
            publisher->bind(options.publish);
        } catch (const zmq::error_t& e) {
            throw InputError("cannot publish on '" + options.publish + "': " + e.what() +
                             " (expected e.g. tcp://127.0.0.1:5556, on a free port)");
        }
    }

    // Sink thread: the SpikeGLX copy and the Phy folder, written in arrival order.
    BoundedQueue<SinkItem> sink_queue(1000);
    std::exception_ptr sink_error;
    std::thread sink_thread([&]() {
        try {
            std::optional<io::SpikeGlxWriter> raw;
            if (options.save_raw)
                raw.emplace(bin_path, info.n_channels, info.sample_rate, info.microvolts_per_bit);
            sort::PhyWriter phy(options.out_dir, probe, saved, geometry, options.duration_s);
            std::optional<io::NpyAppendWriter<double>> decoded;
            if (model)
                decoded.emplace(options.out_dir / "decoded_velocity.npy", std::vector<std::size_t>{3});
            std::uint64_t frames = 0, spikes = 0, unsorted = 0;
            int n_calibrations = 0;
            // Spikes before the first calibration are held back until its templates are registered: Phy template
            // ids must start with the calibration's, and unsorted spikes create templates as they come.
            bool holding = calibration_frames > 0;
            std::vector<hw::SortedSpike> held;
            for (;;) {
                std::optional<SinkItem> item = sink_queue.pop(100ms);
                if (!item) {
                    if (sink_queue.closed_and_empty())
                        break;
                    continue;
                }
                if (auto* r = std::get_if<RawItem>(&*item)) {
                    if (raw)
                        raw->write(r->frames.data(), r->n_frames);
                    frames += r->n_frames;
                } else if (auto* s = std::get_if<SpikesItem>(&*item)) {
                    if (holding)
                        held.insert(held.end(), s->spikes.begin(), s->spikes.end());
                    else
                        phy.append(s->spikes);
                } else if (auto* c = std::get_if<CalibrationItem>(&*item)) {
                    phy.add_calibration(*c->calibration);
                    sort::write_sorter_file(*c->calibration, sorter_context, options.out_dir / "sorter.json");
                    ++n_calibrations;
                    phy.append(held);
                    held = {};
                    holding = false;
                } else if (auto* d = std::get_if<DecodedItem>(&*item)) {
                    for (const decode::BinEstimate& bin : d->bins) {
                        const double row[3] = {static_cast<double>(bin.end_sample) / info.sample_rate, bin.vx, bin.vy};
                        decoded->append(row, 3);
                    }
                }
            }
            phy.append(held);
            if (decoded)
                decoded->finish();
            spikes = phy.n_spikes();
            unsorted = phy.n_unsorted();
            if (raw)
                raw->finish();
            phy.finish({{"format", "spikeline stream output (Phy template-gui folder)"},
                        {"recording", saved.data_path.string()},
                        {"source", info.description},
                        {"probe", probe.name},
                        {"n_channels", info.n_channels},
                        {"sample_rate", info.sample_rate},
                        {"n_frames", frames},
                        {"n_spikes", spikes},
                        {"n_unsorted", unsorted},
                        {"n_calibrations", n_calibrations},
                        {"backend", backend->name()},
                        {"detect_settings", to_json(options.detect.settings)},
                        {"sort_settings", sort::to_json(options.sort)},
                        {"cluster_ids", "0 = unsorted (group noise); unit u = cluster u + 1"}},
                       static_cast<double>(frames) / info.sample_rate);
        } catch (...) {
            sink_error = std::current_exception();
            sink_queue.close();
        }
    });
    auto to_sink = [&](SinkItem item) {
        if (!sink_queue.push(std::move(item)) && !sink_error)
            sink_error = std::make_exception_ptr(std::runtime_error("the sink queue closed early"));
    };

    // Reader thread: the source into a bounded queue, with the overrun policy.
    BoundedQueue<SourceBlock> queue(options.queue_blocks);
    std::atomic<bool> stop_reading{false};
    std::atomic<std::uint64_t> overrun_blocks{0}, overrun_frames{0};
    std::exception_ptr reader_error;
    require(options.realtime_priority >= 0 && options.realtime_priority <= 99, "--rt-priority must be in 0..99");
    std::string priority_error;
    std::thread reader_thread([&]() {
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
        } catch (...) {
            reader_error = std::current_exception();
        }
        queue.close();
    });

    // The pipeline, on this thread.
    priority_error = make_thread_realtime(options.realtime_priority);
    GapLog gaps(options.out_dir / "gaps.tsv");
    LatencyHistogram latency;
    ProgressLine status(options.status);
    BackgroundCalibration calibration;
    bool collecting = calibration_frames > 0;
    SortOutput window;
    backend->enable_sorting(loaded_sorter ? loaded_sorter->params : geometry, collecting);
    if (loaded_sorter) // registered before any spike, so that the Phy folder keeps the sorter's template ids
        to_sink(CalibrationItem{loaded_sorter});
    std::deque<std::pair<std::uint64_t, std::int64_t>> arrivals; // {end frame, arrival} of processed blocks
    std::vector<SpikeEvent> events;
    SortOutput sorted;
    std::uint64_t expected = 0, published = 0, spikes_total = 0, flushed_spikes = 0, link_gap_frames = 0;
    std::uint64_t overrun_gap_frames = 0;
    std::int64_t first_arrival = 0;
    const auto wall_start = std::chrono::steady_clock::now();
    std::uint64_t last_status_spikes = 0;
    auto last_status_time = wall_start;
    double spikes_per_second = 0;

    auto publish = [&](const std::vector<hw::SortedSpike>& spikes, bool at_end) {
        for (const hw::SortedSpike& spike : spikes) {
            std::int64_t latency_ns = -1;
            if (!at_end) {
                const std::uint64_t needed = spike.event.sample + need_frames;
                while (arrivals.size() > 1 && arrivals.front().first <= needed)
                    arrivals.pop_front();
            }
            SpikeMessage message;
            message.sample = spike.event.sample;
            message.channel = spike.event.channel;
            message.unit = spike.unit;
            message.amplitude = static_cast<float>(spike.event.amplitude * scale);
            if (publisher) {
                message.host_time_ns = realtime_ns();
                if (!at_end && !arrivals.empty())
                    latency_ns = monotonic_ns() - arrivals.front().second;
                message.latency_ns = latency_ns;
                unsigned char bytes[kSpikeMessageBytes];
                encode_spike_message(message, bytes);
                publisher->send(zmq::const_buffer(bytes, sizeof bytes), zmq::send_flags::dontwait);
                ++published;
            } else if (!at_end && !arrivals.empty()) {
                latency_ns = monotonic_ns() - arrivals.front().second;
            }
            if (latency_ns >= 0)
                latency.add(latency_ns);
            else
                ++flushed_spikes;
        }
        spikes_total += spikes.size();
    };

    // Online decoding: spikes go in as they are published; a bin is decoded once every spike it can hold has been
    // released, i.e. once the stream has passed its end by need_frames.
    std::unique_ptr<decode::OnlineDecoder> decoder;
    if (model)
        decoder = std::make_unique<decode::OnlineDecoder>(*model);
    LatencyHistogram decode_latency;
    std::uint64_t bins_decoded = 0;
    auto run_decoder = [&](const std::vector<hw::SortedSpike>& spikes, std::uint64_t complete_before,
                           std::int64_t arrival_ns) {
        if (!decoder)
            return;
        const bool by_cluster = model->unit_source == decode::UnitSource::clusters;
        for (const hw::SortedSpike& spike : spikes)
            decoder->add_spike(spike.event.sample, by_cluster ? spike.unit + 1 : spike.event.channel);
        std::vector<decode::BinEstimate> bins = decoder->advance_to(complete_before);
        if (bins.empty())
            return;
        for (const decode::BinEstimate& bin : bins) {
            VelocityMessage message;
            message.bin = bin.bin;
            message.end_sample = bin.end_sample;
            message.vx = bin.vx;
            message.vy = bin.vy;
            message.latency_ns = arrival_ns >= 0 ? monotonic_ns() - arrival_ns : -1;
            if (message.latency_ns >= 0)
                decode_latency.add(message.latency_ns);
            if (publisher) {
                message.host_time_ns = realtime_ns();
                unsigned char bytes[kVelocityMessageBytes];
                encode_velocity_message(message, bytes);
                publisher->send(zmq::const_buffer(bytes, sizeof bytes), zmq::send_flags::dontwait);
            }
        }
        bins_decoded += bins.size();
        to_sink(DecodedItem{std::move(bins)});
    };

    auto apply_calibration = [&]() {
        if (calibration.applied || !calibration.done.load())
            return;
        calibration.thread.join();
        calibration.applied = true;
        if (calibration.result) {
            backend->enable_sorting(calibration.result->params, false);
            to_sink(CalibrationItem{calibration.result});
        }
    };

    auto process = [&](std::vector<std::int16_t> frames, std::size_t n_frames, std::int64_t arrival_ns) {
        if (duration_frames > 0 && expected + n_frames > duration_frames)
            n_frames = static_cast<std::size_t>(duration_frames - std::min(duration_frames, expected));
        if (n_frames == 0)
            return;
        if (first_arrival == 0)
            first_arrival = arrival_ns;
        arrivals.emplace_back(expected + n_frames, arrival_ns);
        // Blocks far behind the current one cannot hold the last sample of a spike still to come.
        while (arrivals.size() > 1 && arrivals.front().first + 4096 < expected)
            arrivals.pop_front();
        backend->process(frames.data(), n_frames, events);
        events.clear();
        backend->take_sorted(sorted);
        publish(sorted.spikes, false);
        const std::uint64_t processed = expected + n_frames;
        run_decoder(sorted.spikes, processed > need_frames ? processed - need_frames : 0, arrival_ns);
        if (collecting) {
            const std::size_t room = options.sort.max_calibration_spikes -
                                     std::min(options.sort.max_calibration_spikes, window.spikes.size());
            const std::size_t n = std::min(room, sorted.spikes.size());
            window.spikes.insert(window.spikes.end(), sorted.spikes.begin(),
                                 sorted.spikes.begin() + static_cast<std::ptrdiff_t>(n));
            window.snippets.insert(window.snippets.end(), sorted.snippets.begin(),
                                   sorted.snippets.begin() + static_cast<std::ptrdiff_t>(n * values_per_spike));
        }
        if (!sorted.spikes.empty())
            to_sink(SpikesItem{std::move(sorted.spikes)});
        sorted = {};
        frames.resize(n_frames * stride);
        to_sink(RawItem{std::move(frames), n_frames});
        expected += n_frames;
        if (collecting && expected >= calibration_frames) {
            collecting = false;
            backend->enable_sorting(geometry, false); // spikes stay unsorted until the calibration is ready
            calibration.start(geometry, std::move(window), options.sort);
            window = {};
        }
        apply_calibration();
        if (duration_frames > 0 && expected >= duration_frames)
            stop_reading.store(true);
    };

    auto fill_zeros = [&](std::uint64_t n, const char* reason, std::int64_t arrival_ns) {
        gaps.add(expected, n, reason);
        const std::size_t piece = std::max<std::size_t>(1, static_cast<std::size_t>(info.sample_rate / 1000.0));
        while (n > 0 && !(duration_frames > 0 && expected >= duration_frames)) {
            const std::size_t m = static_cast<std::size_t>(std::min<std::uint64_t>(n, piece));
            process(std::vector<std::int16_t>(m * stride, 0), m, arrival_ns);
            n -= m;
        }
    };

    auto update_status = [&]() {
        if (!options.status)
            return;
        const auto now = std::chrono::steady_clock::now();
        const double elapsed = std::chrono::duration<double>(now - wall_start).count();
        const double since = std::chrono::duration<double>(now - last_status_time).count();
        if (since >= 1.0) {
            spikes_per_second = static_cast<double>(spikes_total - last_status_spikes) / since;
            last_status_spikes = spikes_total;
            last_status_time = now;
        }
        const double data_s = static_cast<double>(expected) / info.sample_rate;
        const nlohmann::json link = source->counters();
        char line[240];
        std::snprintf(line, sizeof line,
                      "stream: %.1f s  %.1f MS/s  %.2fx real time  queue %zu/%zu  drops %llu gap frames %llu "
                      "malformed %llu  %.0f spikes/s  p99 %.2f ms",
                      data_s, elapsed > 0 ? static_cast<double>(expected * stride) / elapsed / 1e6 : 0.0,
                      elapsed > 0 ? data_s / elapsed : 0.0, queue.depth(), queue.capacity(),
                      static_cast<unsigned long long>(overrun_blocks.load()),
                      static_cast<unsigned long long>(link_gap_frames + overrun_gap_frames),
                      static_cast<unsigned long long>(link.value("malformed", 0ull)), spikes_per_second,
                      latency.percentile_us(0.99) / 1000.0);
        status.update(line);
    };

    for (;;) {
        if (stop.load() || sink_error)
            stop_reading.store(true);
        std::optional<SourceBlock> block = queue.pop(20ms);
        if (!block) {
            apply_calibration();
            update_status();
            if (queue.closed_and_empty())
                break;
            continue;
        }
        if (sink_error || (duration_frames > 0 && expected >= duration_frames))
            continue;                        // drain: the reader is stopping
        if (block->first_frame > expected) { // the reader dropped blocks on a full queue
            const std::uint64_t n = block->first_frame - expected;
            overrun_gap_frames += n;
            fill_zeros(n, "overrun", block->arrival_ns);
        }
        if (block->first_frame < expected) // cannot happen with the sources above; keep timing exact regardless
            continue;
        if (block->gap) {
            gaps.add(expected, block->n_frames, "link_loss");
            link_gap_frames += block->n_frames;
        }
        process(std::move(block->frames), block->n_frames, block->arrival_ns);
        update_status();
    }
    reader_thread.join();
    status.finish();

    // End of stream: the spikes still waiting for samples after the last one, then the sinks' final files.
    backend->finish(events);
    backend->take_sorted(sorted);
    publish(sorted.spikes, true);
    run_decoder(sorted.spikes, expected, -1);
    if (!sorted.spikes.empty())
        to_sink(SpikesItem{std::move(sorted.spikes)});
    if (calibration.thread.joinable() && !calibration.applied) {
        calibration.thread.join(); // finished after the data ended: its units label no spike, but are recorded
        calibration.applied = true;
        if (calibration.result)
            to_sink(CalibrationItem{calibration.result});
    }
    if (publisher) {
        EndMessage end;
        end.spikes = published;
        end.frames = expected;
        unsigned char bytes[kEndMessageBytes];
        encode_end_message(end, bytes);
        publisher->send(zmq::const_buffer(bytes, sizeof bytes), zmq::send_flags::dontwait);
    }
    sink_queue.close();
    sink_thread.join();
    if (reader_error)
        std::rethrow_exception(reader_error);
    if (sink_error)
        std::rethrow_exception(sink_error);
    gaps.commit();

    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    const double data_s = static_cast<double>(expected) / info.sample_rate;
    nlohmann::json calibration_json = {{"calibration_s", loaded_sorter ? 0.0 : options.sort.calibration_s},
                                       {"done", calibration.result != nullptr}};
    if (loaded_sorter) {
        calibration_json["sorter_loaded_from"] = options.sorter_file.string();
        calibration_json["units"] = loaded_sorter->units.size();
    }
    if (calibration.result) {
        calibration_json["spikes"] = calibration.result->n_spikes;
        calibration_json["units"] = calibration.result->units.size();
        calibration_json["wall_seconds"] = calibration.wall_seconds;
    }
    if (!calibration.error.empty())
        calibration_json["error"] = calibration.error;
    nlohmann::json summary = {
        {"format", "spikeline stream summary"},
        {"source", info.description},
        {"source_kind", info.kind},
        {"n_channels", info.n_channels},
        {"sample_rate", info.sample_rate},
        {"microvolts_per_bit", info.microvolts_per_bit},
        {"probe", probe_origin},
        {"backend", backend->name()},
        {"threads", options.detect.backend.threads},
        {"frames", expected},
        {"seconds", data_s},
        {"wall_seconds", wall},
        {"link_base_sample", source->base_sample()},
        {"spikes", spikes_total},
        {"spikes_published", published},
        {"spikes_released_at_end", flushed_spikes},
        {"lost_events", backend->lost_events()},
        {"latency", latency.to_json()},
        {"latency_definition", "arrival of the block holding sample peak + " + std::to_string(need_frames) +
                                   " (the last one the spike needs) -> publication"},
        {"need_frames", need_frames},
        {"overrun_policy", overrun == OverrunPolicy::drop ? "drop" : "block"},
        {"overrun_blocks", overrun_blocks.load()},
        {"overrun_frames", overrun_gap_frames},
        {"link_gap_frames", link_gap_frames},
        {"gap_rows", gaps.rows()},
        {"queue_capacity", queue.capacity()},
        {"queue_high_water", queue.high_water()},
        {"sink_queue_high_water", sink_queue.high_water()},
        {"source_counters", source->counters()},
        {"calibration", calibration_json},
        {"interrupted", stop.load()},
        {"peak_rss_bytes", peak_rss_bytes()},
        {"publish", options.publish},
        {"raw_saved", options.save_raw},
        {"realtime_priority", options.realtime_priority},
        {"realtime_priority_error", priority_error},
    };
    if (decoder) {
        summary["decoder"] = {{"model", options.decoder_model.string()},
                              {"kind", decode::to_string(model->kind)},
                              {"inputs", decode::to_string(model->unit_source)},
                              {"n_inputs", model->n_inputs()},
                              {"bin_samples", model->bin_samples},
                              {"bins_decoded", bins_decoded},
                              {"late_spikes", decoder->late_spikes()},
                              {"unknown_label_spikes", decoder->unknown_label_spikes()},
                              {"latency", decode_latency.to_json()},
                              {"latency_definition", "arrival of the block that completed the bin (its end + " +
                                                         std::to_string(need_frames) + " frames) -> publication"}};
    }
    write_text_file(options.out_dir / "stream.json", summary.dump(2) + "\n");
    return summary;
}

} // namespace spikeline::stream
