#include "sort/phy_writer.hpp"

#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace spikeline::sort {
namespace {

constexpr int kRows = HwSortConfig::snippet_channels;
constexpr int kPresenceBins = 100;
constexpr double kFirstPresenceBinS = 0.01; ///< when the length is not known in advance
constexpr double kRefractoryMs = 1.5;
/// Metrics that Phy shows as cluster columns, each in its own cluster_<name>.tsv (Phy rewrites cluster_info.tsv).
constexpr const char* kMetricFiles[] = {"snr", "isi_violation_ratio", "presence_ratio", "firing_rate_hz",
                                        "amplitude_uv"};

/// Python string literal for params.py.
std::string python_string(const std::string& text) {
    std::string out = "r'";
    for (char c : text) {
        require(c != '\'' && c != '\n', "the recording path contains a quote or newline, which params.py cannot hold");
        out += c;
    }
    return out + "'";
}

std::string number_text(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", value);
    return text;
}

} // namespace

PhyWriter::PhyWriter(std::filesystem::path out_dir, const probe::Probe& probe, const io::RecordingInfo& info,
                     std::shared_ptr<const HwSortParams> geometry, double expected_duration_s)
    : out_dir_(std::move(out_dir)), probe_(probe), info_(info), geometry_(std::move(geometry)),
      width_(geometry_->pre + 1 + geometry_->post), presence_bins_fixed_(expected_duration_s > 0),
      presence_bin_s_(presence_bins_fixed_ ? expected_duration_s / kPresenceBins : kFirstPresenceBinS),
      scale_((info.microvolts_per_bit > 0 ? info.microvolts_per_bit : 1.0) / (1 << HwConfig::sample_frac_bits)),
      times_(out_dir_ / "spike_times.npy"), clusters_file_(out_dir_ / "spike_clusters.npy"),
      templates_file_(out_dir_ / "spike_templates.npy"), amplitudes_(out_dir_ / "amplitudes.npy"),
      pc_features_(out_dir_ / "pc_features.npy",
                   {static_cast<std::size_t>(HwSortConfig::n_features), static_cast<std::size_t>(kRows)}),
      artifacts_(out_dir_ / "artifacts.npy", {3}) {}

void PhyWriter::append_artifacts(const std::vector<hw::ArtifactEvent>& artifacts) {
    for (const hw::ArtifactEvent& a : artifacts) {
        const std::int64_t row[3] = {static_cast<std::int64_t>(a.sample), a.group, a.crossings};
        artifacts_.append(row, 3);
    }
    n_artifacts_ += artifacts.size();
}

void PhyWriter::add_calibration(const Calibration& calibration) {
    if (!calibrated_ && unsorted_templates_.empty() && !calibration.entries.empty())
        while (static_cast<int>(templates_.size()) < calibration.entries.front().template_id)
            templates_.push_back({0, {}});
    calibrated_ = true;
    // phylib's depth estimate weighs channels by the positive part of the first PC feature: the component's sign is
    // chosen so that a spike shaped like it (a trough at the peak sample) projects positive, as Kilosort's is.
    pc0_sign_ = calibration.params->basis[0][geometry_->pre] > 0 ? -1.0 : 1.0;
    for (const Entry& entry : calibration.entries) {
        require(entry.template_id == static_cast<int>(templates_.size()),
                "calibration template ids must continue the writer's (next_template_id())");
        templates_.push_back({entry.channel, entry.mean_snippet});
    }
    for (const Unit& unit : calibration.units) {
        units_[unit.id] = unit;
        // A unit a recalibration kept without seeing it may have no snippet on its peak channel in that window: its
        // earlier SNR stands.
        const double noise = calibration.channel_noise[static_cast<std::size_t>(unit.peak_channel)];
        if (noise > 0)
            unit_snr_[unit.id] = unit.amplitude / noise;
        else
            unit_snr_.try_emplace(unit.id, std::nan(""));
    }
}

int PhyWriter::unsorted_template(int channel) {
    auto [it, inserted] = unsorted_templates_.try_emplace(channel, static_cast<int>(templates_.size()));
    if (inserted)
        templates_.push_back({channel, {}});
    return it->second;
}

void PhyWriter::append(const std::vector<hw::SortedSpike>& spikes) {
    const double sample_rate = info_.sample_rate;
    const auto refractory = static_cast<std::uint64_t>(std::llround(kRefractoryMs * sample_rate / 1000.0));
    for (const hw::SortedSpike& spike : spikes) {
        const int cluster = spike.unit < 0 ? 0 : spike.unit + 1;
        const int template_id = spike.template_id < 0 ? unsorted_template(spike.event.channel) : spike.template_id;
        times_.append(spike.event.sample);
        clusters_file_.append(cluster);
        templates_file_.append(template_id);
        if (static_cast<std::size_t>(template_id) >= template_used_.size())
            template_used_.resize(static_cast<std::size_t>(template_id) + 1, false);
        template_used_[static_cast<std::size_t>(template_id)] = true;
        // Templates are scaled to 1 at their peak, so the amplitude is the spike's peak in uV (Kilosort's scale
        // factor).
        amplitudes_.append(std::abs(spike.event.amplitude * scale_));
        float features[HwSortConfig::n_values];
        for (int v = 0; v < HwSortConfig::n_values; ++v)
            features[v] = static_cast<float>(spike.features[v] * scale_ * (v < kRows ? pc0_sign_ : 1.0));
        pc_features_.append(features, HwSortConfig::n_values);

        Accumulator& a = clusters_[cluster];
        if (a.present.empty())
            a.present.assign(static_cast<std::size_t>(presence_capacity()), false);
        if (a.n > 0 && spike.event.sample - a.last < refractory)
            ++a.violations;
        a.last = spike.event.sample;
        ++a.n;
        const double t = static_cast<double>(spike.event.sample) / sample_rate;
        while (!presence_bins_fixed_ && t >= presence_bin_s_ * static_cast<double>(a.present.size()))
            coarsen_presence_bins();
        const auto bin = static_cast<std::ptrdiff_t>(t / presence_bin_s_);
        a.present[static_cast<std::size_t>(std::clamp<std::ptrdiff_t>(bin, 0, std::ssize(a.present) - 1))] = true;
        ++n_spikes_;
        n_unsorted_ += spike.unit < 0;
    }
}

void PhyWriter::flush() {
    times_.flush();
    clusters_file_.flush();
    templates_file_.flush();
    amplitudes_.flush();
    artifacts_.flush();
    pc_features_.flush();
}

int PhyWriter::presence_capacity() const {
    return presence_bins_fixed_ ? kPresenceBins : 2 * kPresenceBins;
}

void PhyWriter::coarsen_presence_bins() {
    for (auto& [id, a] : clusters_) {
        const std::size_t half = a.present.size() / 2;
        for (std::size_t i = 0; i < half; ++i)
            a.present[i] = a.present[2 * i] || a.present[2 * i + 1];
        std::fill(a.present.begin() + static_cast<std::ptrdiff_t>(half), a.present.end(), false);
    }
    presence_bin_s_ *= 2;
}

double PhyWriter::peak_of(const std::vector<double>& mean_snippet) const {
    const double at_peak = mean_snippet[static_cast<std::size_t>(geometry_->pre)]; // row 0: the peak channel
    if (std::abs(at_peak) > 1e-9)
        return std::abs(at_peak);
    // A template whose peak sample is flat (not seen in practice): its largest value instead.
    double largest = 0;
    for (double v : mean_snippet)
        largest = std::max(largest, std::abs(v));
    return largest;
}

std::vector<int> PhyWriter::renumber_templates(std::size_t kept) {
    std::vector<int> phy_ids(templates_.size(), -1);
    int next = 0;
    for (std::size_t id = 0; id < templates_.size(); ++id)
        if (id < template_used_.size() && template_used_[id])
            phy_ids[id] = next++;
    if (next == static_cast<int>(templates_.size()))
        return phy_ids;
    // Rewritten in chunks through a new temporary, renamed over the sorter's ids: bounded memory, atomic.
    const std::filesystem::path path = out_dir_ / "spike_templates.npy";
    const io::NpyAppendFile file = io::inspect_npy_append_file(path);
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(file.data_offset));
    io::NpyAppendWriter<std::int32_t> renumbered(path);
    std::vector<std::int32_t> chunk(1 << 16);
    for (std::size_t done = 0; done < kept;) {
        const std::size_t n = std::min(chunk.size(), kept - done);
        in.read(reinterpret_cast<char*>(chunk.data()), static_cast<std::streamsize>(n * sizeof(std::int32_t)));
        require(in.good(), "cannot read back " + path.string() + " to renumber its templates");
        for (std::size_t i = 0; i < n; ++i)
            chunk[i] = phy_ids[static_cast<std::size_t>(chunk[i])];
        renumbered.append(chunk.data(), n);
        done += n;
    }
    renumbered.finish();
    return phy_ids;
}

std::vector<ClusterQuality> PhyWriter::finish(const nlohmann::json& info, double recorded_s) {
    // The per-spike arrays keep one length: after a failed write (disk full), the spikes every one of them holds.
    const std::size_t kept =
        std::min({times_.rows_on_disk(), clusters_file_.rows_on_disk(), templates_file_.rows_on_disk(),
                  amplitudes_.rows_on_disk(), pc_features_.rows_on_disk()});
    times_.finish(kept);
    clusters_file_.finish(kept);
    templates_file_.finish(kept);
    amplitudes_.finish(kept);
    pc_features_.finish(kept);
    artifacts_.finish();
    n_spikes_kept_ = kept;

    const int n_channels = probe_.n_channels();
    const std::vector<int> phy_ids = renumber_templates(kept);
    // templates.npy is sparse, as Kilosort writes it: each template on its kRows snippet channels only, listed in
    // template_ind.npy. Dense over 1024 channels it took 0.6-1.1 GB for a one-minute sort. phylib treats
    // templates.npy as sparse only when `template_ind.npy` exists (it ignores Kilosort's `templates_ind.npy`,
    // which other readers look for): both are written, identical. Rows past a tiny shank's contacts are -1, which
    // phylib drops. Only templates with spikes are written (phylib expects spike_templates to use every one), in
    // unit scale: 1 at the peak sample of the peak channel, so that template x amplitude is the spike in uV.
    {
        io::NpyAppendWriter<float> templates(out_dir_ / "templates.npy",
                                             {static_cast<std::size_t>(width_), static_cast<std::size_t>(kRows)});
        std::vector<float> sparse(static_cast<std::size_t>(width_ * kRows));
        std::vector<std::int32_t> template_channels, sorter_ids;
        std::vector<std::uint32_t> feature_channels;
        for (std::size_t id = 0; id < templates_.size(); ++id) {
            if (phy_ids[id] < 0)
                continue;
            const Template& t = templates_[id];
            std::fill(sparse.begin(), sparse.end(), 0.0f);
            const double peak = t.mean_snippet.empty() ? 0.0 : peak_of(t.mean_snippet);
            for (int k = 0; k < kRows; ++k) {
                const int ch = geometry_->snippet_channels[t.channel][k];
                template_channels.push_back(ch >= 0 ? ch : -1);
                feature_channels.push_back(static_cast<std::uint32_t>(ch >= 0 ? ch : t.channel));
                if (ch >= 0 && peak != 0)
                    for (int s = 0; s < width_; ++s)
                        sparse[static_cast<std::size_t>(s * kRows + k)] =
                            static_cast<float>(t.mean_snippet[static_cast<std::size_t>(k * width_ + s)] / peak);
            }
            // Unsorted spikes have no mean waveform: their template is a unit trough at the peak sample of the peak
            // channel (row 0), which also gives phylib the channel to show them on.
            if (peak == 0)
                sparse[static_cast<std::size_t>(geometry_->pre * kRows)] = -1.0f;
            templates.append(sparse.data(), sparse.size());
            sorter_ids.push_back(t.mean_snippet.empty() ? -1 : static_cast<std::int32_t>(id));
        }
        templates.finish();
        const std::size_t n_written = sorter_ids.size();
        for (const char* name : {"template_ind.npy", "templates_ind.npy"})
            io::write_npy(out_dir_ / name, template_channels.data(), {n_written, static_cast<std::size_t>(kRows)});
        io::write_npy(out_dir_ / "pc_feature_ind.npy", feature_channels.data(),
                      {n_written, static_cast<std::size_t>(kRows)});
        io::write_npy(out_dir_ / "templates_sorter_id.npy", sorter_ids);
    }
    // Templates are not whitened: Kilosort's whitening files as identity, so that phylib does not write them itself.
    {
        const auto n = static_cast<std::size_t>(n_channels);
        std::vector<float> identity(n * n, 0.0f);
        for (std::size_t c = 0; c < n; ++c)
            identity[c * n + c] = 1.0f;
        for (const char* name : {"whitening_mat.npy", "whitening_mat_inv.npy"})
            io::write_npy(out_dir_ / name, identity.data(), {n, n});
    }
    std::vector<std::int32_t> channel_map(static_cast<std::size_t>(n_channels));
    std::vector<double> positions;
    for (int ch = 0; ch < n_channels; ++ch) {
        channel_map[static_cast<std::size_t>(ch)] =
            info_.channel_id(ch); // the data file's channel (a selection's global id)
        positions.push_back(probe_.contacts[static_cast<std::size_t>(ch)].x_um);
        positions.push_back(probe_.contacts[static_cast<std::size_t>(ch)].y_um);
    }
    io::write_npy(out_dir_ / "channel_map.npy", channel_map);
    io::write_npy(out_dir_ / "channel_positions.npy", positions.data(), {static_cast<std::size_t>(n_channels), 2});
    std::vector<std::int32_t> shanks; // phylib's channel_shanks.npy (the NWB export's electrode groups)
    for (const probe::Contact& contact : probe_.contacts)
        shanks.push_back(contact.shank);
    io::write_npy(out_dir_ / "channel_shanks.npy", shanks);

    // Quality per cluster: cluster 0 (unsorted) and every unit of any calibration. The presence ratio counts the bins
    // the recorded length covers (fewer than the capacity when a stream stopped early, or before its bins filled).
    const std::ptrdiff_t n_bins = std::clamp<std::ptrdiff_t>(
        static_cast<std::ptrdiff_t>(std::ceil(recorded_s / presence_bin_s_ - 1e-9)), 1, presence_capacity());
    std::vector<ClusterQuality> quality;
    std::vector<int> ids{0};
    for (const auto& [id, unit] : units_)
        ids.push_back(id + 1);
    for (int cluster : ids) {
        ClusterQuality q;
        q.cluster_id = cluster;
        if (auto it = clusters_.find(cluster); it != clusters_.end()) {
            const Accumulator& a = it->second;
            q.n_spikes = a.n;
            q.isi_violation_ratio = a.n > 1 ? static_cast<double>(a.violations) / static_cast<double>(a.n - 1) : 0;
            q.presence_ratio = static_cast<double>(std::count(a.present.begin(), a.present.begin() + n_bins, true)) /
                               static_cast<double>(n_bins);
        }
        q.firing_rate_hz = recorded_s > 0 ? static_cast<double>(q.n_spikes) / recorded_s : 0;
        if (cluster == 0) {
            q.group = "noise";
        } else {
            const Unit& unit = units_.at(cluster - 1);
            q.peak_channel = unit.peak_channel;
            q.amplitude_uv = unit.amplitude * scale_;
            q.snr = unit_snr_.at(cluster - 1);
            // Under 20 spikes an interval test says nothing: such a cluster is not called a single unit.
            q.group = q.n_spikes >= 20 && q.isi_violation_ratio < 0.01 && q.snr >= 5 ? "good" : "mua";
        }
        quality.push_back(q);
    }
    std::ostringstream group, table;
    group << "cluster_id\tgroup\n";
    table << "cluster_id\tgroup\tn_spikes\tfiring_rate_hz\tsnr\tisi_violation_ratio\tpresence_ratio\tch\tamplitude\n";
    for (const ClusterQuality& q : quality) {
        group << q.cluster_id << '\t' << q.group << '\n';
        char line[256];
        std::snprintf(line, sizeof line, "%d\t%s\t%llu\t%.4f\t%.3f\t%.5f\t%.3f\t%d\t%.2f\n", q.cluster_id,
                      q.group.c_str(), static_cast<unsigned long long>(q.n_spikes), q.firing_rate_hz, q.snr,
                      q.isi_violation_ratio, q.presence_ratio, q.peak_channel, q.amplitude_uv);
        table << line;
    }
    write_text_file(out_dir_ / "cluster_group.tsv", group.str());
    for (const char* metric : kMetricFiles) {
        std::ostringstream column;
        column << "cluster_id\t" << metric << '\n';
        for (const ClusterQuality& q : quality) {
            const std::string name = metric;
            const double value = name == "snr"                   ? q.snr
                                 : name == "isi_violation_ratio" ? q.isi_violation_ratio
                                 : name == "presence_ratio"      ? q.presence_ratio
                                 : name == "firing_rate_hz"      ? q.firing_rate_hz
                                                                 : q.amplitude_uv;
            char line[64];
            std::snprintf(line, sizeof line, "%d\t%.6g\n", q.cluster_id, value);
            column << line;
        }
        write_text_file(out_dir_ / ("cluster_" + std::string(metric) + ".tsv"), column.str());
    }
    write_text_file(out_dir_ / "cluster_info.tsv", table.str());

    std::ostringstream params;
    params << "dat_path = " << python_string(std::filesystem::absolute(info_.data_path).string()) << "\n"
           << "n_channels_dat = " << info_.file_channels() << "\n"
           << "dtype = 'int16'\n"
           << "offset = 0\n"
           << "sample_rate = " << number_text(info_.sample_rate) << "\n"
           << "hp_filtered = False\n";
    write_text_file(out_dir_ / "params.py", params.str());
    write_text_file(out_dir_ / "spikeline_sort.json", info.dump(2) + "\n");
    return quality;
}

} // namespace spikeline::sort
