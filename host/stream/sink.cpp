#include "stream/sink.hpp"

#include "io/npy.hpp"
#include "io/spikeglx.hpp"
#include "sort/phy_writer.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>

namespace spikeline::stream {

using namespace std::chrono_literals;

StreamSink::StreamSink(SinkSettings settings, const probe::Probe& probe, std::shared_ptr<const HwSortParams> geometry)
    : settings_(std::move(settings)), probe_(probe), geometry_(std::move(geometry)) {
    thread_ = std::thread([this]() { run(); });
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
    if (!queue_.push(std::move(item)) && !failed_.load()) {
        error_ = std::make_exception_ptr(std::runtime_error("the sink queue closed early"));
        failed_.store(true);
    }
}

void StreamSink::finish() {
    queue_.close();
    thread_.join();
}

void StreamSink::rethrow_error() const {
    if (error_)
        std::rethrow_exception(error_);
}

void StreamSink::run() {
    const SinkSettings& s = settings_;
    const io::RecordingInfo& info = s.saved;
    try {
        std::optional<io::SpikeGlxWriter> raw;
        if (s.save_raw)
            raw.emplace(info.data_path, info.n_channels, info.sample_rate, info.microvolts_per_bit);
        sort::PhyWriter phy(s.out_dir, probe_, info, geometry_, s.expected_duration_s);
        std::optional<io::NpyAppendWriter<double>> decoded;
        if (s.decoded)
            decoded.emplace(s.out_dir / "decoded_velocity.npy", std::vector<std::size_t>{3});
        std::optional<TableWriteLog> unit_updates;
        if (s.unit_updates)
            unit_updates.emplace(s.out_dir / "unit_updates.npy");
        std::uint64_t frames = 0;
        int n_calibrations = 0;
        bool holding = s.hold_until_calibration;
        std::vector<hw::SortedSpike> held;
        for (;;) {
            std::optional<SinkItem> item = queue_.pop(100ms);
            if (!item) {
                if (queue_.closed_and_empty())
                    break;
                continue;
            }
            if (auto* r = std::get_if<RawItem>(&*item)) {
                if (raw)
                    raw->write(r->frames.data(), r->n_frames);
                frames += r->n_frames;
            } else if (auto* spikes = std::get_if<SpikesItem>(&*item)) {
                if (holding)
                    held.insert(held.end(), spikes->spikes.begin(), spikes->spikes.end());
                else
                    phy.append(spikes->spikes);
            } else if (auto* c = std::get_if<CalibrationItem>(&*item)) {
                phy.add_calibration(*c->calibration);
                sort::write_sorter_file(*c->calibration, s.sorter_context, s.out_dir / "sorter.json");
                ++n_calibrations;
                phy.append(held);
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
        phy.append(held);
        if (decoded)
            decoded->finish();
        if (unit_updates)
            unit_updates->finish();
        if (raw)
            raw->finish();
        nlohmann::json phy_info = {{"format", "spikeline stream output (Phy template-gui folder)"},
                                   {"recording", info.data_path.string()},
                                   {"source", s.source_description},
                                   {"probe", probe_.name},
                                   {"n_channels", info.n_channels},
                                   {"sample_rate", info.sample_rate},
                                   {"n_frames", frames},
                                   {"n_spikes", phy.n_spikes()},
                                   {"n_unsorted", phy.n_unsorted()},
                                   {"n_calibrations", n_calibrations}};
        phy_info.update(s.phy_info);
        phy.finish(phy_info, static_cast<double>(frames) / info.sample_rate);
    } catch (...) {
        error_ = std::current_exception();
        failed_.store(true);
        queue_.close();
    }
}

} // namespace spikeline::stream
