#include "stream/sink.hpp"

#include "io/npy.hpp"
#include "io/spikeglx.hpp"
#include "sort/phy_writer.hpp"
#include "util/errors.hpp"
#include "util/threads.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>

namespace spikeline::stream {

using namespace std::chrono_literals;

StreamSink::StreamSink(SinkSettings settings, const probe::Probe& probe, std::shared_ptr<const HwSortParams> geometry)
    : settings_(std::move(settings)), probe_(probe), geometry_(std::move(geometry)) {
    thread_ = std::thread([this]() {
        name_this_thread("sl-sink");
        make_thread_batch(); // files are flushed every 100 ms: never worth preempting the pipeline
        run();
    });
}

StreamSink::~StreamSink() {
    if (thread_.joinable()) {
        queue_.close();
        thread_.join();
    }
}

void StreamSink::count_templates(const SinkItem& item) {
    if (const auto* c = std::get_if<CalibrationItem>(&item)) {
        const sort::Calibration& calibration = *c->calibration;
        // The first calibration may start later (a loaded sorter's ids); spikes before it are held back, so it
        // comes before any unsorted template.
        if (!calibrated_ && !calibration.entries.empty())
            next_template_id_ = std::max(next_template_id_, calibration.entries.front().template_id);
        calibrated_ = true;
        next_template_id_ += static_cast<int>(calibration.entries.size());
    } else if (const auto* spikes = std::get_if<SpikesItem>(&item)) {
        for (const hw::SortedSpike& spike : spikes->spikes) {
            if (spike.template_id >= 0)
                continue;
            const auto channel = static_cast<std::size_t>(spike.event.channel);
            if (channel >= unsorted_channels_.size())
                unsorted_channels_.resize(channel + 1, false);
            if (!unsorted_channels_[channel]) {
                unsorted_channels_[channel] = true;
                ++next_template_id_;
            }
        }
    }
}

void StreamSink::push(SinkItem item) {
    count_templates(item);
    // A push that fails after a sink error is expected (the pipeline has not noticed yet); the first error stays.
    if (!queue_.push(std::move(item)) && !failed_.load())
        fail(std::make_exception_ptr(std::runtime_error("the sink queue closed early")));
}

void StreamSink::finish() {
    queue_.close();
    thread_.join();
}

void StreamSink::rethrow_error() const {
    if (error_)
        std::rethrow_exception(error_);
}

void StreamSink::fail(std::exception_ptr error) {
    if (!error_) {
        error_ = error;
        try {
            std::rethrow_exception(error);
        } catch (const WriteError& e) {
            disk_full_ = e.disk_full();
        } catch (...) {
        }
    }
    failed_.store(true);
    queue_.close(); // the pipeline stops pushing and ends the stream
}

void StreamSink::run() {
    const SinkSettings& s = settings_;
    const io::RecordingInfo& info = s.saved;
    std::optional<io::SpikeGlxWriter> raw;
    std::optional<sort::PhyWriter> phy;
    std::optional<io::NpyAppendWriter<double>> decoded;
    std::optional<TableWriteLog> unit_updates;
    int n_calibrations = 0;
    bool holding = s.hold_until_calibration;
    std::vector<hw::SortedSpike> held;
    try {
        if (s.save_raw)
            raw.emplace(info.data_path, info.n_channels, info.sample_rate, info.microvolts_per_bit, &probe_);
        phy.emplace(s.out_dir, probe_, info, geometry_, s.expected_duration_s);
        if (s.decoded)
            decoded.emplace(s.out_dir / "decoded_velocity.npy", std::vector<std::size_t>{3});
        if (s.unit_updates)
            unit_updates.emplace(s.out_dir / "unit_updates.npy");
        // What the sink wrote reaches the system at least every kFlushInterval, so that a crash of the process
        // (SIGKILL) loses no more than that: `spikeline recover` finds the rest.
        constexpr auto kFlushInterval = 100ms;
        auto last_flush = std::chrono::steady_clock::now();
        const auto flush_all = [&]() {
            if (raw)
                raw->flush();
            phy->flush();
            if (decoded)
                decoded->flush();
            if (unit_updates)
                unit_updates->flush();
            last_flush = std::chrono::steady_clock::now();
        };
        for (;;) {
            if (std::chrono::steady_clock::now() - last_flush >= kFlushInterval)
                flush_all();
            std::optional<SinkItem> item = queue_.pop(kFlushInterval);
            if (!item) {
                if (queue_.closed_and_empty())
                    break;
                continue;
            }
            if (auto* r = std::get_if<RawItem>(&*item)) {
                if (raw)
                    raw->write(r->frames.data(), r->n_frames);
                frames_received_ += r->n_frames;
            } else if (auto* spikes = std::get_if<SpikesItem>(&*item)) {
                if (holding)
                    held.insert(held.end(), spikes->spikes.begin(), spikes->spikes.end());
                else
                    phy->append(spikes->spikes);
            } else if (auto* c = std::get_if<CalibrationItem>(&*item)) {
                phy->add_calibration(*c->calibration);
                sort::write_sorter_file(*c->calibration, s.sorter_context, s.out_dir / "sorter.json");
                ++n_calibrations;
                phy->append(held);
                held = {};
                holding = false;
            } else if (auto* d = std::get_if<DecodedItem>(&*item)) {
                for (const decode::BinEstimate& bin : d->bins) {
                    const double row[3] = {static_cast<double>(bin.end_sample) / info.sample_rate, bin.vx, bin.vy};
                    decoded->append(row, 3);
                }
            } else if (auto* u = std::get_if<UnitUpdatesItem>(&*item)) {
                unit_updates->append(u->writes);
            }
        }
    } catch (...) {
        fail(std::current_exception());
    }

    // Every file is finalised, also after an error: what reached the disk is kept (whole frames and rows), and each
    // file is tried on its own, so that one that cannot be written does not cost the others.
    const auto attempt = [&](const std::string& what, const auto& step) {
        try {
            step();
        } catch (const std::exception& e) {
            not_finished_.push_back(what + ": " + e.what());
            fail(std::current_exception());
        }
    };
    if (phy && !held.empty())
        attempt("spikes held back for the calibration", [&]() { phy->append(held); });
    if (decoded)
        attempt("decoded_velocity.npy", [&]() { decoded->finish(); });
    if (unit_updates)
        attempt("unit_updates.npy", [&]() { unit_updates->finish(); });
    if (raw)
        attempt("recording.bin", [&]() { raw_frames_kept_ = raw->finish(); });
    if (phy) {
        nlohmann::json phy_info = {{"format", "spikeline stream output (Phy template-gui folder)"},
                                   {"recording", info.data_path.string()},
                                   {"source", s.source_description},
                                   {"probe", probe_.name},
                                   {"n_channels", info.n_channels},
                                   {"sample_rate", info.sample_rate},
                                   {"n_frames", frames_received_},
                                   {"n_spikes", phy->n_spikes()},
                                   {"n_unsorted", phy->n_unsorted()},
                                   {"n_calibrations", n_calibrations}};
        phy_info.update(s.phy_info);
        attempt("the Phy folder",
                [&]() { phy->finish(phy_info, static_cast<double>(frames_received_) / info.sample_rate); });
        spikes_kept_ = phy->n_spikes_kept();
        spikes_received_ = phy->n_spikes();
    }
}

std::string StreamSink::error_text() const {
    if (!error_)
        return {};
    try {
        std::rethrow_exception(error_);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "unknown error";
    }
}

} // namespace spikeline::stream
