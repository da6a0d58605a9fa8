#include "io/spikeglx.hpp"

#include "io/raw.hpp"
#include "util/atomic_file.hpp"
#include "util/channel_list.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace spikeline::io {

namespace {

std::string trim(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos)
        return {};
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

template <class Number> std::optional<Number> parse_number(const std::string& text) {
    Number value{};
    const char* begin = text.data();
    const char* end = text.data() + text.size();
    if (begin != end && *begin == '+')
        ++begin;
    const auto [stop, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc() || stop != end)
        return std::nullopt;
    return value;
}

std::optional<std::string> find_key(const MetaMap& meta, const std::string& key) {
    const auto it = meta.find(key);
    if (it == meta.end())
        return std::nullopt;
    return it->second;
}

/// A required numeric key, with an error naming the .meta file, the key and what it should hold.
template <class Number>
Number required_number(const MetaMap& meta, const std::filesystem::path& meta_path, const std::string& key,
                       const std::string& meaning) {
    const auto text = find_key(meta, key);
    require(text.has_value(), meta_path.string() + ": missing key " + key + " (" + meaning +
                                  "): the .meta file is incomplete or not a SpikeGLX .meta");
    const auto value = parse_number<Number>(*text);
    require(value.has_value(), meta_path.string() + ": " + key + "=" + *text + " is not a number (" + meaning + ")");
    return *value;
}

std::optional<double> optional_number(const MetaMap& meta, const std::string& key) {
    const auto text = find_key(meta, key);
    return text ? parse_number<double>(*text) : std::nullopt;
}

/// The comma-separated non-negative integers of a value such as snsApLfSy=384,0,1; empty when malformed.
std::vector<int> comma_separated_counts(const std::string& text) {
    std::vector<int> counts;
    std::istringstream in(text);
    for (std::string token; std::getline(in, token, ',');) {
        const auto value = parse_number<int>(trim(token));
        if (!value || *value < 0)
            return {};
        counts.push_back(*value);
    }
    return counts;
}

/// The numbers of the first channel entry of ~imroTbl, "(type,nchan)(chan bank refid apgain lfgain hpfilt)...".
std::vector<double> first_imro_entry(const MetaMap& meta) {
    const auto table = find_key(meta, "~imroTbl");
    if (!table)
        return {};
    const auto header_end = table->find(')');
    if (header_end == std::string::npos)
        return {};
    const auto open = table->find('(', header_end);
    const auto close = open == std::string::npos ? std::string::npos : table->find(')', open);
    if (close == std::string::npos)
        return {};
    std::istringstream entry(table->substr(open + 1, close - open - 1));
    std::vector<double> numbers;
    for (std::string token; entry >> token;) {
        const auto value = parse_number<double>(token);
        if (!value)
            return {};
        numbers.push_back(*value);
    }
    return numbers;
}

/// An input of the gain: nothing when absent, else a finite positive number (an inf, nan or zero range would give
/// infinite or meaningless microvolts).
std::optional<double> gain_input(const MetaMap& meta, const std::filesystem::path& meta_path, const std::string& key) {
    const auto text = find_key(meta, key);
    if (!text)
        return std::nullopt;
    const auto value = parse_number<double>(*text);
    require(value && std::isfinite(*value) && *value > 0,
            meta_path.string() + ": " + key + "=" + *text +
                " is not a finite positive number, so the microvolts per bit cannot be computed: correct the .meta, "
                "or give the gain with --uv-per-bit");
    return value;
}

/// Gain of the first channel for the stream in this file: Neuropixels 2.0 probes (imDatPrb_type 21, 24, 2003,
/// 2004, 2013, 2014) have a fixed gain of 80; Neuropixels 1.0 ~imroTbl entries carry the AP gain (4th number) and
/// LF gain (5th); other probes state it as imChan0apGain / imChan0lfGain. Unknown otherwise.
std::optional<double> imec_channel_gain(const MetaMap& meta, const std::filesystem::path& meta_path, bool lfp_stream) {
    const auto probe_type = optional_number(meta, "imDatPrb_type");
    if (probe_type) {
        for (const double np2_type : {21.0, 24.0, 2003.0, 2004.0, 2013.0, 2014.0})
            if (*probe_type == np2_type)
                return 80.0;
    }
    constexpr std::size_t kNp1EntryNumbers = 6;
    const std::vector<double> entry = first_imro_entry(meta);
    if (entry.size() == kNp1EntryNumbers) {
        const double gain = entry[lfp_stream ? 4 : 3];
        require(std::isfinite(gain),
                meta_path.string() + ": the " + (lfp_stream ? "LF" : "AP") +
                    " gain in ~imroTbl is not a finite number: correct the .meta, or give the gain with "
                    "--uv-per-bit");
        if (gain > 0)
            return gain;
    }
    return gain_input(meta, meta_path, lfp_stream ? "imChan0lfGain" : "imChan0apGain");
}

/// Microvolts per ADC bit from the voltage range, the ADC full scale and the amplifier gain; 0 when unknown
/// (amplitudes are then reported in LSB rather than in wrongly scaled microvolts).
double microvolts_per_bit_from(const MetaMap& meta, const std::filesystem::path& meta_path, bool lfp_stream) {
    // SpikeGlxWriter states an unknown gain as imAiRangeMax=0 (e.g. a stream from a link that carries none).
    if (const auto stated = find_key(meta, "imAiRangeMax"); stated && parse_number<double>(*stated) == 0.0)
        return 0.0;
    const auto im_range = gain_input(meta, meta_path, "imAiRangeMax");
    const auto im_max_int = gain_input(meta, meta_path, "imMaxInt");
    if (im_range && im_max_int) {
        const auto gain = imec_channel_gain(meta, meta_path, lfp_stream);
        return gain ? *im_range / *im_max_int / *gain * 1e6 : 0.0;
    }
    const auto ni_range = gain_input(meta, meta_path, "niAiRangeMax");
    const auto ni_max_int = gain_input(meta, meta_path, "niMaxInt");
    if (ni_range && ni_max_int) {
        const auto gain = gain_input(meta, meta_path, "niMNGain");
        return *ni_range / *ni_max_int / gain.value_or(1.0) * 1e6;
    }
    return 0.0;
}

/// The shortest text that reads back as exactly value.
std::string format_double(double value) {
    std::array<char, 32> buffer{};
    const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    return std::string(buffer.data(), result.ptr);
}

} // namespace

MetaMap read_spikeglx_meta(const std::filesystem::path& meta_path) {
    std::ifstream in(meta_path);
    require(in.is_open(), "cannot read " + meta_path.string() + ": check that it exists and is readable");
    MetaMap meta;
    std::string line;
    for (int line_number = 1; std::getline(in, line); ++line_number) {
        const std::string content = trim(line);
        if (content.empty())
            continue;
        const auto equals = content.find('=');
        require(equals != std::string::npos && equals > 0, meta_path.string() + ":" + std::to_string(line_number) +
                                                               ": expected key=value, found '" + content +
                                                               "': is this a SpikeGLX .meta file?");
        meta[trim(content.substr(0, equals))] = trim(content.substr(equals + 1));
    }
    require(!in.bad(), "read error in " + meta_path.string());
    return meta;
}

std::vector<int> spikeglx_saved_channels(const MetaMap& meta, const std::filesystem::path& meta_path) {
    const auto value = find_key(meta, "snsSaveChanSubset");
    if (!value || *value == "all")
        return {};
    return parse_channel_list(*value, meta_path.string() + ": snsSaveChanSubset");
}

RecordingInfo read_spikeglx_info(const std::filesystem::path& bin_path, const SpikeGlxReadOptions& options) {
    const bool allow_truncated = options.allow_truncated;
    std::filesystem::path meta_path = bin_path;
    meta_path.replace_extension(".meta");
    std::error_code ec;
    require(std::filesystem::is_regular_file(meta_path, ec),
            bin_path.string() + ": no " + meta_path.filename().string() +
                " beside it: SpikeGLX recordings need their .meta file");
    const MetaMap meta = read_spikeglx_meta(meta_path);

    const int n_channels = required_number<int>(meta, meta_path, "nSavedChans", "the number of saved channels");
    require(n_channels > 0, meta_path.string() + ": nSavedChans must be positive");
    const bool nidq = !meta.contains("imSampRate") && meta.contains("niSampRate");
    const double sample_rate =
        required_number<double>(meta, meta_path, nidq ? "niSampRate" : "imSampRate", "the sampling rate in Hz");
    require(std::isfinite(sample_rate) && sample_rate > 0, meta_path.string() + ": the sampling rate must be positive");
    const auto declared_size =
        required_number<std::uint64_t>(meta, meta_path, "fileSizeBytes", "the size of the .bin file");

    require(std::filesystem::is_regular_file(bin_path, ec), bin_path.string() + ": no such file: check the path");
    const std::uintmax_t actual_size = options.data_bytes.value_or(std::filesystem::file_size(bin_path, ec));
    require(!ec, bin_path.string() + ": cannot read its size: " + ec.message());
    // A longer file than the .meta says is not a cut recording: the .meta belongs to another file.
    require(actual_size == declared_size || (allow_truncated && actual_size < declared_size),
            bin_path.string() + " is " + std::to_string(actual_size) + " bytes but " + meta_path.filename().string() +
                " says fileSizeBytes=" + std::to_string(declared_size) +
                (actual_size < declared_size
                     ? ": the recording is truncated (e.g. by a crash; pass --allow-truncated to process its whole "
                       "frames) or the .meta belongs to another file"
                     : ": the .meta belongs to another file"));
    const std::uint64_t frame_bytes = static_cast<std::uint64_t>(n_channels) * sizeof(std::int16_t);
    require(allow_truncated || actual_size % frame_bytes == 0,
            bin_path.string() + " is " + std::to_string(actual_size) + " bytes, not a whole number of frames of " +
                std::to_string(n_channels) + " int16 channels (" + std::to_string(actual_size % frame_bytes) +
                " bytes left over): nSavedChans in the .meta is wrong or the file is damaged (a file cut by a crash: "
                "pass --allow-truncated to process its whole frames)");
    const std::uint64_t whole_frames = actual_size / frame_bytes;
    require(whole_frames > 0 || !allow_truncated, bin_path.string() + " is " + std::to_string(actual_size) +
                                                      " bytes: not one whole frame of " + std::to_string(n_channels) +
                                                      " int16 channels, nothing to process");
    std::string warning;
    if (actual_size != declared_size || actual_size % frame_bytes != 0)
        warning = bin_path.string() + " is truncated: using its " + std::to_string(whole_frames) + " whole frames (" +
                  std::to_string(whole_frames * frame_bytes) + " bytes) of the " +
                  std::to_string(declared_size / frame_bytes) + " frames (" + std::to_string(declared_size) +
                  " bytes) its .meta declares";

    // SpikeGLX names the LFP band of an imec probe NAME.imecN.lf.bin; its gain is the LF gain.
    const bool lfp_stream = bin_path.stem().extension() == ".lf";
    RecordingInfo info;
    info.n_channels = n_channels;
    // snsApLfSy counts the saved channels of each type, in that order: the sync channel(s) come last and carry no
    // neural signal, so they are skipped (the file keeps them: Phy's params.py names nSavedChans).
    if (const auto counts = find_key(meta, "snsApLfSy")) {
        const std::vector<int> ap_lf_sy = comma_separated_counts(*counts);
        require(
            ap_lf_sy.size() == 3 && ap_lf_sy[2] < n_channels && ap_lf_sy[0] + ap_lf_sy[1] + ap_lf_sy[2] == n_channels,
            meta_path.string() + ": snsApLfSy=" + *counts +
                " should be three channel counts (AP,LF,SY) adding up to nSavedChans=" + std::to_string(n_channels) +
                ": is the .meta damaged?");
        const int sync = ap_lf_sy[2];
        if (sync > 0) {
            info.n_channels = n_channels - sync;
            info.n_file_channels = n_channels;
        }
    }
    info.sample_rate = sample_rate;
    info.n_frames = whole_frames;
    info.microvolts_per_bit = options.gain_given ? 0.0 : microvolts_per_bit_from(meta, meta_path, lfp_stream);
    info.format = "spikeglx";
    info.data_path = bin_path;
    info.warning = warning;
    return info;
}

std::unique_ptr<RecordingSource> open_spikeglx(const std::filesystem::path& bin_path) {
    return open_interleaved_int16(read_spikeglx_info(bin_path));
}

struct SpikeGlxWriter::State {
    std::filesystem::path bin_path;
    std::filesystem::path temporary;
    std::ofstream out;
    int n_channels = 0;
    double sample_rate = 0;
    double microvolts_per_bit = 0;
    std::uint64_t frames_written = 0;
    bool finished = false;
};

SpikeGlxWriter::SpikeGlxWriter(std::filesystem::path bin_path, int n_channels, double sample_rate,
                               double microvolts_per_bit)
    : state_(std::make_unique<State>()) {
    require(n_channels > 0, "SpikeGLX output " + bin_path.string() + ": the channel count must be positive");
    require(std::isfinite(sample_rate) && sample_rate > 0,
            "SpikeGLX output " + bin_path.string() + ": the sample rate must be positive");
    require(std::isfinite(microvolts_per_bit) && microvolts_per_bit >= 0,
            "SpikeGLX output " + bin_path.string() + ": microvolts per bit must be positive (or 0 when unknown)");
    state_->temporary = bin_path.string() + ".tmp" + std::to_string(::getpid());
    state_->bin_path = std::move(bin_path);
    state_->n_channels = n_channels;
    state_->sample_rate = sample_rate;
    state_->microvolts_per_bit = microvolts_per_bit;
    state_->out.open(state_->temporary, std::ios::binary | std::ios::trunc);
    require(state_->out.is_open(),
            "cannot create " + state_->temporary.string() + ": check that the folder exists and is writable");
}

SpikeGlxWriter::~SpikeGlxWriter() {
    if (state_ && !state_->finished) {
        state_->out.close();
        std::error_code ignored;
        std::filesystem::remove(state_->temporary, ignored);
    }
}

void SpikeGlxWriter::write(const std::int16_t* frames, std::size_t n_frames) {
    require(!state_->finished, "SpikeGLX output " + state_->bin_path.string() + ": write after finish");
    const std::size_t bytes = n_frames * static_cast<std::size_t>(state_->n_channels) * sizeof(std::int16_t);
    state_->out.write(reinterpret_cast<const char*>(frames), static_cast<std::streamsize>(bytes));
    require(state_->out.good(), "write to " + state_->temporary.string() + " failed (disk full?)");
    state_->frames_written += n_frames;
}

void SpikeGlxWriter::finish() {
    State& state = *state_;
    require(!state.finished, "SpikeGLX output " + state.bin_path.string() + ": finish called twice");
    state.out.flush();
    require(state.out.good(), "write to " + state.temporary.string() + " failed (disk full?)");
    state.out.close();

    const std::uint64_t file_size =
        state.frames_written * static_cast<std::uint64_t>(state.n_channels) * sizeof(std::int16_t);
    // The gain is encoded with imMaxInt=32768 and imChan0apGain=1, so imAiRangeMax alone carries the scale:
    // imAiRangeMax / imMaxInt / gain * 1e6 == microvolts_per_bit, which is what read_spikeglx_info computes.
    constexpr double kMaxInt = 32768.0;
    const double range_volts = state.microvolts_per_bit * kMaxInt / 1e6;
    std::ostringstream meta;
    meta << "typeThis=imec\n"
         << "nSavedChans=" << state.n_channels << "\n"
         << "snsApLfSy=" << state.n_channels << ",0,0\n"
         << "snsSaveChanSubset=all\n"
         << "imSampRate=" << format_double(state.sample_rate) << "\n"
         << "fileSizeBytes=" << file_size << "\n"
         << "fileTimeSecs=" << format_double(static_cast<double>(state.frames_written) / state.sample_rate) << "\n"
         << "imAiRangeMax=" << format_double(range_volts) << "\n"
         << "imAiRangeMin=" << format_double(-range_volts) << "\n"
         << "imMaxInt=" << static_cast<int>(kMaxInt) << "\n"
         << "imChan0apGain=1\n";

    // The .bin goes into place first: the .meta appearing last marks the pair as complete.
    std::error_code ec;
    std::filesystem::rename(state.temporary, state.bin_path, ec);
    require(!ec, "cannot rename " + state.temporary.string() + " to " + state.bin_path.string() + ": " + ec.message());
    state.finished = true;
    std::filesystem::path meta_path = state.bin_path;
    meta_path.replace_extension(".meta");
    write_text_file(meta_path, meta.str());
}

} // namespace spikeline::io
