#pragma once
// A trained decoder with everything needed to apply it to new spikes, and its JSON file (docs/FORMATS.md).
#include "decode/binning.hpp"
#include "decode/decoders.hpp"
#include "decode/spike_input.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace spikeline::decode {

enum class DecoderKind { kalman, wiener };

const char* to_string(DecoderKind kind);
/// "kalman" or "wiener"; throws InputError otherwise.
DecoderKind parse_decoder_kind(const std::string& text);

inline constexpr int kModelVersion = 1;

struct DecoderModel {
    DecoderKind kind = DecoderKind::kalman;
    BinSettings bins;
    double sample_rate = 30000.0;
    std::uint64_t bin_samples = 600;
    UnitSource unit_source = UnitSource::units;
    std::vector<std::int32_t> unit_ids; ///< ascending: row i of every input matrix is unit_ids[i]
    double train_fraction = 0.8;
    BinRange training_bins; ///< bins the decoder was fitted on; bins after them are held out
    std::optional<KalmanModel> kalman;
    std::optional<WienerModel> wiener;

    std::size_t n_inputs() const { return unit_ids.size(); }
};

/// Writes the model as JSON, atomically.
void write_model(const DecoderModel& model, const std::filesystem::path& path);

/// Reads and validates a model file; any problem (not JSON, another format or version, unknown kind, a matrix of
/// the wrong shape or with non-finite values) throws InputError naming the file and what to do.
DecoderModel read_model(const std::filesystem::path& path);

/// Throws InputError unless the spikes have the model's unit source and unit ids.
void check_inputs_match(const DecoderModel& model, const SpikeTrains& spikes);

} // namespace spikeline::decode
