#pragma once
// Online decoding inside the stream (`stream --decoder`): the model is checked against what the stream produces,
// spikes go in as they are published, and a bin is decoded once every spike it can hold has been released.
#include "decode/online.hpp"
#include "sort/calibration.hpp"
#include "stream/latency.hpp"
#include "stream/publisher.hpp"
#include "stream/source.hpp"

#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

namespace spikeline::stream {

/// Reads a decoder model and checks that this stream can feed it: the model's sample rate, and labels the stream
/// produces (threshold-crossing channels of this probe; sorted clusters only with the sorter they came from).
decode::DecoderModel read_stream_decoder(const std::filesystem::path& file, const SourceInfo& info,
                                         const sort::Calibration* sorter);

class StreamDecoding {
public:
    StreamDecoding(const decode::DecoderModel& model, Publisher* publisher);

    /// Adds published spikes, then decodes every bin ending before complete_before (the stream has passed its end by
    /// the frames a spike needs): publishes each as VEL1 (latency from arrival_ns; -1: none) and returns them.
    std::vector<decode::BinEstimate> add(const std::vector<hw::SortedSpike>& spikes, std::uint64_t complete_before,
                                         std::int64_t arrival_ns);

    /// The decoder part of stream.json (need_frames: for the latency's definition).
    nlohmann::json to_json(const std::filesystem::path& model_file, std::uint64_t need_frames) const;

private:
    const decode::DecoderModel& model_;
    Publisher* publisher_;
    decode::OnlineDecoder decoder_;
    LatencyHistogram latency_;
    std::uint64_t bins_decoded_ = 0;
};

} // namespace spikeline::stream
