#include "io/channel_selection.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <map>

namespace spikeline::io {

namespace {

/// Appends ",number" (or "number" to an empty list); plain += keeps g++ 12's -Wrestrict false positive away.
void append_item(std::string& list, int number) {
    if (!list.empty())
        list += ',';
    list += std::to_string(number);
}

class ChannelSelectionSource final : public RecordingSource {
public:
    ChannelSelectionSource(std::unique_ptr<RecordingSource> source, std::vector<int> channels)
        : source_(std::move(source)), channels_(std::move(channels)) {
        const RecordingInfo& full = source_->info();
        info_ = full;
        info_.n_channels = static_cast<int>(channels_.size());
        info_.n_file_channels = full.file_channels();
        info_.channel_ids.clear();
        for (const int channel : channels_)
            info_.channel_ids.push_back(full.channel_id(channel));
        if (full.probe)
            info_.probe = probe_subset(*full.probe, channels_);
    }

    const RecordingInfo& info() const override { return info_; }

    std::size_t read(std::int16_t* dst, std::size_t max_frames) override {
        const auto full_channels = static_cast<std::size_t>(source_->info().n_channels);
        staging_.resize(max_frames * full_channels);
        const std::size_t frames = source_->read(staging_.data(), max_frames);
        const std::size_t selected = channels_.size();
        for (std::size_t f = 0; f < frames; ++f)
            for (std::size_t k = 0; k < selected; ++k)
                dst[f * selected + k] = staging_[f * full_channels + static_cast<std::size_t>(channels_[k])];
        return frames;
    }

private:
    std::unique_ptr<RecordingSource> source_;
    std::vector<int> channels_;
    RecordingInfo info_;
    std::vector<std::int16_t> staging_; ///< at most the caller's chunk of full frames
};

} // namespace

std::unique_ptr<RecordingSource> select_channels(std::unique_ptr<RecordingSource> source, std::vector<int> channels) {
    const int n_channels = source->info().n_channels;
    require(!channels.empty(), "the channel selection is empty: name at least one channel or shank");
    for (std::size_t i = 0; i < channels.size(); ++i) {
        require(channels[i] >= 0 && channels[i] < n_channels,
                "the channel selection names channel " + std::to_string(channels[i]) + " but the recording has " +
                    "channels 0.." + std::to_string(n_channels - 1));
        if (i > 0) // (the message is built before the check: channels[i - 1] must exist)
            require(channels[i] > channels[i - 1],
                    "the channel selection must list distinct channels in ascending order (channel " +
                        std::to_string(channels[i]) + " follows " + std::to_string(channels[i - 1]) + ")");
    }
    return std::make_unique<ChannelSelectionSource>(std::move(source), std::move(channels));
}

std::vector<int> channels_on_shanks(const probe::Probe& probe, const std::vector<int>& shanks) {
    std::map<int, int> size_of_shank;
    for (const auto& contact : probe.contacts)
        ++size_of_shank[contact.shank];
    for (const int shank : shanks) {
        if (size_of_shank.contains(shank))
            continue;
        std::string present;
        for (const auto& [id, size] : size_of_shank)
            append_item(present, id);
        throw InputError("--shanks names shank " + std::to_string(shank) + " but the probe (" + probe.name +
                         ") has shank(s) " + present);
    }
    std::vector<int> channels;
    for (int c = 0; c < probe.n_channels(); ++c)
        if (std::find(shanks.begin(), shanks.end(), probe.contacts[static_cast<std::size_t>(c)].shank) != shanks.end())
            channels.push_back(c);
    return channels;
}

probe::Probe probe_subset(const probe::Probe& probe, const std::vector<int>& channels) {
    probe::Probe subset;
    subset.name = probe.name;
    for (const int channel : channels)
        subset.contacts.push_back(probe.contacts.at(static_cast<std::size_t>(channel)));
    return subset;
}

std::string suggest_selection(const probe::Probe& probe, int max_channels) {
    std::map<int, int> size_of_shank;
    for (const auto& contact : probe.contacts)
        ++size_of_shank[contact.shank];
    const bool whole_shanks_fit = std::all_of(size_of_shank.begin(), size_of_shank.end(),
                                              [&](const auto& entry) { return entry.second <= max_channels; });
    std::vector<std::string> runs;
    if (whole_shanks_fit && size_of_shank.size() > 1) {
        std::string shanks;
        int channels = 0;
        auto flush = [&] {
            runs.push_back("--shanks " + shanks + " (" + std::to_string(channels) + " channels)");
            shanks.clear();
            channels = 0;
        };
        for (const auto& [shank, size] : size_of_shank) {
            if (channels + size > max_channels)
                flush();
            append_item(shanks, shank);
            channels += size;
        }
        flush();
    } else {
        for (int first = 0; first < probe.n_channels(); first += max_channels) {
            const int last = std::min(first + max_channels, probe.n_channels()) - 1;
            runs.push_back("--channels-subset " + std::to_string(first) + ":" + std::to_string(last) + " (" +
                           std::to_string(last - first + 1) + " channels)");
        }
    }
    std::string text;
    for (std::size_t i = 0; i < runs.size(); ++i)
        text.append(i == 0 ? "" : i + 1 == runs.size() ? ", then " : ", ").append(runs[i]);
    return text;
}

} // namespace spikeline::io
