#include "io/recording.hpp"

#include "io/mtscomp.hpp"
#include "io/open_ephys.hpp"
#include "io/raw.hpp"
#include "io/spikeglx.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <system_error>
#include <vector>

namespace spikeline::io {

namespace {

/// Explicit options win over the file's metadata, e.g. a calibrated sample rate or a gain the metadata lacks.
void apply_explicit_options(const OpenOptions& options, RecordingInfo& info) {
    if (options.sample_rate) {
        require(*options.sample_rate > 0, "--sample-rate must be positive");
        info.sample_rate = *options.sample_rate;
    }
    if (options.microvolts_per_bit) {
        require(*options.microvolts_per_bit >= 0, "microvolts per bit must be positive (or 0 when unknown)");
        info.microvolts_per_bit = *options.microvolts_per_bit;
        info.gain_source = "--uv-per-bit";
        info.gain_fallback = false;
    }
}

bool has_meta_beside(const std::filesystem::path& bin_path) {
    std::filesystem::path meta_path = bin_path;
    meta_path.replace_extension(".meta");
    std::error_code ec;
    return std::filesystem::is_regular_file(meta_path, ec);
}

/// The single NAME.bin with a NAME.meta in folder.
std::filesystem::path find_spikeglx_bin(const std::filesystem::path& folder) {
    std::vector<std::filesystem::path> candidates;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
        const auto& path = entry.path();
        if (entry.is_regular_file(ec) && (path.extension() == ".bin" || path.extension() == ".cbin") &&
            has_meta_beside(path))
            candidates.push_back(path);
    }
    require(!ec, "cannot list folder " + folder.string() + ": " + ec.message());
    require(!candidates.empty(),
            "folder " + folder.string() +
                " holds no SpikeGLX recording (a NAME.bin or NAME.cbin beside a NAME.meta) and no Open "
                "Ephys structure.oebin: pass the recording file itself, or for Open Ephys the "
                "recordingN folder (e.g. Record Node 101/experiment1/recording1)");
    if (candidates.size() > 1) {
        std::sort(candidates.begin(), candidates.end());
        std::string names;
        for (const auto& path : candidates)
            names += "\n  " + path.string();
        throw InputError("folder " + folder.string() + " holds " + std::to_string(candidates.size()) +
                         " SpikeGLX recordings; pass one of them:" + names);
    }
    return candidates.front();
}

std::unique_ptr<RecordingSource> open_spikeglx_with_options(const std::filesystem::path& bin_path,
                                                            const OpenOptions& options) {
    SpikeGlxReadOptions read;
    read.allow_truncated = options.allow_truncated;
    read.gain_given = options.microvolts_per_bit.has_value();
    RecordingInfo info = read_spikeglx_info(bin_path, read);
    require(!options.n_channels || *options.n_channels == info.n_channels ||
                *options.n_channels == info.file_channels(),
            bin_path.string() + ": --channels " + std::to_string(options.n_channels.value_or(0)) +
                " disagrees with nSavedChans=" + std::to_string(info.file_channels()) +
                " in its .meta: drop --channels for SpikeGLX recordings");
    apply_explicit_options(options, info);
    return open_interleaved_int16(std::move(info));
}

/// NAME.cbin with NAME.ch: the metadata of NAME.meta when there is one (as for NAME.bin), else the .ch's channel
/// count and sample rate with the gain of --uv-per-bit.
std::unique_ptr<RecordingSource> open_mtscomp_with_options(const std::filesystem::path& cbin_path,
                                                           const OpenOptions& options) {
    MtscompHeader header = read_mtscomp_header(cbin_path, options.allow_truncated);
    const std::string name = cbin_path.string();
    // What the data covers when it is a part of the recording: a chopped file, or a cut one read by its whole chunks.
    std::string part;
    if (header.truncated_from_frames > 0)
        part = name + " is truncated: using its " + std::to_string(header.chunk_bounds.size() - 1) +
               " whole chunk(s), " + std::to_string(header.n_frames()) + " of the " +
               std::to_string(header.truncated_from_frames) + " frames its .ch describes";
    else if (header.chopped)
        part = name + " is a chopped mtscomp file (the first " + std::to_string(header.chunk_bounds.size() - 1) +
               " chunk(s), " + std::to_string(header.n_frames()) + " frames, of a longer recording)";
    RecordingInfo info;
    if (has_meta_beside(cbin_path)) {
        // The .meta describes the decompressed .bin: check it against the .ch before reading it as one.
        const MetaMap meta = read_spikeglx_meta(std::filesystem::path(cbin_path).replace_extension(".meta"));
        const std::string saved = meta.contains("nSavedChans") ? meta.at("nSavedChans") : "";
        const std::string size = meta.contains("fileSizeBytes") ? meta.at("fileSizeBytes") : "";
        require(saved.empty() || saved == std::to_string(header.n_channels),
                name + ": its .meta says nSavedChans=" + saved + " but its .ch says " +
                    std::to_string(header.n_channels) + " channels: one of them belongs to another recording");
        // A part of the recording may be shorter than the .meta's fileSizeBytes, which describes the whole.
        const std::uint64_t whole_bytes =
            header.truncated_from_frames * static_cast<std::uint64_t>(header.n_channels) * sizeof(std::int16_t);
        // fileSizeBytes when it is a number; read_spikeglx_info reports it when it is not.
        std::optional<std::uint64_t> stated;
        if (std::uint64_t value = 0;
            std::from_chars(size.data(), size.data() + size.size(), value).ptr == size.data() + size.size() &&
            !size.empty())
            stated = value;
        const bool matches = !stated || *stated == header.data_bytes() ||
                             (header.truncated_from_frames > 0 && *stated == whole_bytes) ||
                             (header.chopped && *stated > header.data_bytes());
        require(matches, name + ": its .meta says fileSizeBytes=" + size + " but its .ch describes " +
                             std::to_string(header.data_bytes()) + " bytes of data (" +
                             std::to_string(header.n_frames()) + " frames): one of them belongs to another recording");
        SpikeGlxReadOptions read;
        read.gain_given = options.microvolts_per_bit.has_value();
        read.data_bytes = header.data_bytes();
        read.allow_truncated = !part.empty(); // the .meta describes more than this part
        info = read_spikeglx_info(cbin_path, read);
        info.format = "spikeglx (mtscomp .cbin)";
    } else {
        info.n_channels = header.n_channels;
        info.sample_rate = header.sample_rate;
        info.n_frames = header.n_frames();
        info.format = "mtscomp .cbin";
        info.data_path = cbin_path;
        info.gain_source = "unknown (no .meta beside the .cbin)";
        info.gain_fallback = true;
    }
    require(!options.n_channels || *options.n_channels == info.n_channels ||
                *options.n_channels == info.file_channels(),
            name + ": --channels " + std::to_string(options.n_channels.value_or(0)) + " disagrees with the " +
                std::to_string(header.n_channels) + " channels of its .ch: drop --channels for .cbin recordings");
    apply_explicit_options(options, info);
    if (!part.empty())
        info.warning = part;
    return open_mtscomp(std::move(info), std::move(header));
}

} // namespace

std::unique_ptr<RecordingSource> open_recording(const std::filesystem::path& input, const OpenOptions& options) {
    std::error_code ec;
    require(std::filesystem::exists(input, ec), input.string() + " does not exist: check the path");

    if (is_open_ephys(input)) {
        RecordingInfo info = read_open_ephys_info(input, options.open_ephys_stream, options.allow_non_neural);
        require(!options.n_channels || *options.n_channels == info.n_channels ||
                    *options.n_channels == info.file_channels(),
                "--channels " + std::to_string(options.n_channels.value_or(0)) + " differs from structure.oebin's " +
                    std::to_string(info.n_channels) + ": drop --channels for Open Ephys recordings");
        apply_explicit_options(options, info);
        return open_interleaved_int16(std::move(info));
    }
    if (std::filesystem::is_directory(input, ec)) {
        const std::filesystem::path data_path = find_spikeglx_bin(input);
        return data_path.extension() == ".cbin" ? open_mtscomp_with_options(data_path, options)
                                                : open_spikeglx_with_options(data_path, options);
    }
    if (input.extension() == ".cbin")
        return open_mtscomp_with_options(input, options);

    if (input.extension() == ".meta") {
        std::filesystem::path bin_path = input;
        bin_path.replace_extension(".bin");
        if (std::filesystem::path cbin_path = std::filesystem::path(input).replace_extension(".cbin");
            !std::filesystem::exists(bin_path, ec) && std::filesystem::is_regular_file(cbin_path, ec))
            return open_mtscomp_with_options(cbin_path, options);
        require(std::filesystem::is_regular_file(bin_path, ec), input.string() + ": its data file " +
                                                                    bin_path.filename().string() +
                                                                    " is missing: keep the .bin beside the .meta");
        return open_spikeglx_with_options(bin_path, options);
    }

    if (input.extension() == ".bin" && has_meta_beside(input))
        return open_spikeglx_with_options(input, options);

    require(options.n_channels.has_value() && options.sample_rate.has_value(),
            input.string() + " has no SpikeGLX .meta beside it, so it is read as raw interleaved int16: pass "
                             "--channels and --sample-rate for raw int16 files");
    return open_raw(input, *options.n_channels, *options.sample_rate, options.microvolts_per_bit.value_or(0.0));
}

} // namespace spikeline::io
