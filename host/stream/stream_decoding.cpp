#include "stream/stream_decoding.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <cmath>

namespace spikeline::stream {

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

StreamDecoding::StreamDecoding(const decode::DecoderModel& model, Publisher* publisher)
    : model_(model), publisher_(publisher), decoder_(model) {}

std::vector<decode::BinEstimate> StreamDecoding::add(const std::vector<hw::SortedSpike>& spikes,
                                                     std::uint64_t complete_before, std::int64_t arrival_ns) {
    const bool by_cluster = model_.unit_source == decode::UnitSource::clusters;
    for (const hw::SortedSpike& spike : spikes)
        decoder_.add_spike(spike.event.sample, by_cluster ? spike.unit + 1 : spike.event.channel);
    std::vector<decode::BinEstimate> bins = decoder_.advance_to(complete_before);
    for (const decode::BinEstimate& bin : bins) {
        VelocityMessage message;
        message.bin = bin.bin;
        message.end_sample = bin.end_sample;
        message.vx = bin.vx;
        message.vy = bin.vy;
        message.latency_ns = arrival_ns >= 0 ? monotonic_ns() - arrival_ns : -1;
        if (message.latency_ns >= 0)
            latency_.add(message.latency_ns);
        if (publisher_) {
            message.host_time_ns = realtime_ns();
            publisher_->send(message);
        }
    }
    bins_decoded_ += bins.size();
    return bins;
}

nlohmann::json StreamDecoding::to_json(const std::filesystem::path& model_file, std::uint64_t need_frames) const {
    return {{"model", model_file.string()},
            {"kind", decode::to_string(model_.kind)},
            {"inputs", decode::to_string(model_.unit_source)},
            {"n_inputs", model_.n_inputs()},
            {"bin_samples", model_.bin_samples},
            {"bins_decoded", bins_decoded_},
            {"late_spikes", decoder_.late_spikes()},
            {"unknown_label_spikes", decoder_.unknown_label_spikes()},
            {"latency", latency_.to_json()},
            {"latency_definition", "arrival of the block that completed the bin (its end + " +
                                       std::to_string(need_frames) + " frames) -> publication"}};
}

} // namespace spikeline::stream
