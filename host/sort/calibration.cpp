#include "sort/calibration.hpp"

#include "sort/clustering.hpp"
#include "sort/kriging.hpp"
#include "sort/moving_units.hpp"
#include "util/errors.hpp"
#include "util/threads.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include <Eigen/Dense>

namespace spikeline::sort {
namespace {

constexpr int kRows = HwSortConfig::snippet_channels;
constexpr int kValues = HwSortConfig::n_values;
/// Lags after a spike within which a burst's next spikes come (complex spikes and bursts: 2-10 ms apart, a burst of
/// up to four spikes reaching about 25 ms).
constexpr double kBurstLagMs[2] = {1.0, 25.0};
constexpr double kMovedApartUm = 5.0; // entries recorded this far apart may be one neuron at two probe positions

/// Top n_features eigenvectors of the uncentred second-moment matrix of all snippet rows: the first captures the
/// mean spike shape (and so the amplitude), the next ones its variations. Signs: the largest element is positive.
Eigen::MatrixXd temporal_basis(const SortOutput& data, int width) {
    Eigen::MatrixXd moment = Eigen::MatrixXd::Zero(width, width);
    const std::size_t n_rows = data.snippets.size() / static_cast<std::size_t>(width);
    // Rank-k updates of blocks of rows (matrix products) rather than one rank-1 update per row: 4x faster.
    constexpr std::size_t kBlockRows = 1024;
    Eigen::MatrixXd block(width, static_cast<Eigen::Index>(kBlockRows));
    for (std::size_t first = 0; first < n_rows; first += kBlockRows) {
        const auto rows = static_cast<Eigen::Index>(std::min(kBlockRows, n_rows - first));
        block.leftCols(rows) =
            Eigen::Map<const Eigen::MatrixXi>(&data.snippets[first * static_cast<std::size_t>(width)], width, rows)
                .cast<double>();
        moment.selfadjointView<Eigen::Lower>().rankUpdate(block.leftCols(rows));
    }
    moment = moment.selfadjointView<Eigen::Lower>();
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(moment);
    Eigen::MatrixXd basis(HwSortConfig::n_features, width);
    for (int p = 0; p < HwSortConfig::n_features; ++p) {
        Eigen::VectorXd v = solver.eigenvectors().col(width - 1 - p); // eigenvalues ascend
        Eigen::Index largest = 0;
        v.cwiseAbs().maxCoeff(&largest);
        if (v(largest) < 0)
            v = -v;
        basis.row(p) = v.transpose();
    }
    return basis;
}

} // namespace

/// median(|x|) / 0.6745 over the first three samples of every snippet row of each channel: far enough before the
/// peak to be mostly noise. (Not the last ones: on a channel one fast unit dominates, its after-hyperpolarisation
/// 1 ms after the trough was most of them.)
std::vector<double> snippet_noise(const HwSortParams& params, const SortOutput& data, int width) {
    // Integers, counted first and then filled (millions of values: no reallocation), median as quantile() takes it.
    const auto n_channels = static_cast<std::size_t>(params.n_channels);
    const int edge[] = {0, 1, 2};
    std::vector<std::size_t> counts(n_channels, 0);
    for (const hw::SortedSpike& spike : data.spikes)
        for (int k = 0; k < kRows; ++k)
            if (const int ch = params.snippet_channels[spike.event.channel][k]; ch >= 0)
                counts[static_cast<std::size_t>(ch)] += std::size(edge);
    std::vector<std::vector<std::uint32_t>> values(n_channels);
    for (std::size_t ch = 0; ch < n_channels; ++ch)
        values[ch].reserve(counts[ch]);
    for (std::size_t i = 0; i < data.spikes.size(); ++i)
        for (int k = 0; k < kRows; ++k) {
            const int ch = params.snippet_channels[data.spikes[i].event.channel][k];
            if (ch < 0)
                continue;
            const std::int32_t* row =
                &data.snippets[(i * kRows + static_cast<std::size_t>(k)) * static_cast<std::size_t>(width)];
            for (int s : edge)
                values[static_cast<std::size_t>(ch)].push_back(
                    static_cast<std::uint32_t>(std::abs(std::int64_t{row[s]})));
        }
    std::vector<double> sigma(n_channels, 0.0);
    for (std::size_t ch = 0; ch < n_channels; ++ch) {
        std::vector<std::uint32_t>& v = values[ch];
        if (v.empty())
            continue;
        const std::size_t k = (v.size() - 1) / 2; // quantile(v, 0.5)'s element
        std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
        sigma[ch] = static_cast<double>(v[k]) / 0.6745;
    }
    return sigma;
}

namespace {

/// A unit's mean snippet as seen from another peak channel: the rows of `channel`'s snippet channels taken from the
/// unit's entries (where none covers a channel: the footprint's waveform there, else 0), shifted so that the row of
/// `channel` has its trough at pre.
std::vector<double> template_seen_from(const HwSortParams& params, const std::vector<Entry>& entries, const Unit& unit,
                                       int channel, int width, const Footprint* footprint = nullptr) {
    // Where no entry of the unit covers a row, what the footprint predicts there.
    std::vector<double> rows = footprint ? footprint_rows(params, *footprint, channel, width)
                                         : std::vector<double>(static_cast<std::size_t>(kRows * width), 0.0);
    for (int k = 0; k < kRows; ++k) {
        const int ch = params.snippet_channels[channel][k];
        double best_amplitude = -1;
        for (int e : unit.entries) {
            const Entry& entry = entries[static_cast<std::size_t>(e)];
            for (int j = 0; j < kRows; ++j)
                if (params.snippet_channels[entry.channel][j] == ch && ch >= 0) {
                    const double amplitude =
                        std::abs(entry.mean_snippet[static_cast<std::size_t>(j * width + params.pre)]);
                    if (amplitude > best_amplitude) {
                        best_amplitude = amplitude;
                        std::copy_n(&entry.mean_snippet[static_cast<std::size_t>(j * width)], width,
                                    &rows[static_cast<std::size_t>(k * width)]);
                    }
                }
        }
    }
    return aligned_on_first_row(rows, width, params.pre);
}

} // namespace

void learn_basis(const SortOutput& data, int width, HwSortParams& params) {
    const Eigen::MatrixXd basis = temporal_basis(data, width);
    for (int p = 0; p < HwSortConfig::n_features; ++p)
        for (int s = 0; s < HwSortConfig::max_snippet_samples; ++s)
            params.basis[p][s] =
                s < width ? static_cast<std::int16_t>(std::clamp(
                                std::lround(basis(p, s) * (1 << HwSortConfig::basis_frac_bits)), -32768L, 32767L))
                          : std::int16_t{0};
}

std::vector<double> centroid_of(const HwSortParams& params, const std::vector<double>& mean_snippet, int width) {
    std::int32_t rounded[kRows][HwSortConfig::max_snippet_samples] = {};
    for (int r = 0; r < kRows; ++r)
        for (int t = 0; t < width; ++t)
            rounded[r][t] =
                static_cast<std::int32_t>(std::lround(mean_snippet[static_cast<std::size_t>(r * width + t)]));
    std::int32_t f[HwSortConfig::n_values];
    hw::compute_features(params, rounded, f);
    return {f, f + HwSortConfig::n_values};
}

std::vector<double> aligned_on_first_row(const std::vector<double>& rows, int width, int pre) {
    int best = pre;
    for (int s = std::max(0, pre - 3); s <= std::min(width - 1, pre + 3); ++s)
        if (std::abs(rows[static_cast<std::size_t>(s)]) > std::abs(rows[static_cast<std::size_t>(best)]))
            best = s;
    const int shift = best - pre;
    std::vector<double> shifted(rows.size(), 0.0);
    for (int k = 0; k < kRows; ++k)
        for (int s = 0; s < width; ++s) {
            const int from = s + shift;
            if (from >= 0 && from < width)
                shifted[static_cast<std::size_t>(k * width + s)] = rows[static_cast<std::size_t>(k * width + from)];
        }
    return shifted;
}

hw::ClassifierEntry quantise(const Entry& entry) {
    hw::ClassifierEntry q{};
    q.unit = entry.unit;
    q.template_id = entry.template_id;
    for (int v = 0; v < kValues; ++v)
        q.centroid[v] = static_cast<std::int32_t>(std::lround(entry.centroid[static_cast<std::size_t>(v)]));
    q.gate = static_cast<std::int64_t>(std::min(entry.gate, 4.0e18));
    return q;
}

namespace {

/// The contact of a channel's shank nearest to that channel's position moved along the shank by dy (um). Cached per
/// channel and micrometre of dy.
class ContactFinder {
public:
    explicit ContactFinder(const probe::Probe* probe) : probe_(probe) {}

    int moved(int channel, double dy) {
        const long rounded = std::lround(dy);
        const auto key = std::make_pair(channel, rounded);
        if (const auto hit = cache_.find(key); hit != cache_.end())
            return hit->second;
        const probe::Contact& from = probe_->contacts[static_cast<std::size_t>(channel)];
        int best = channel;
        double best_distance = std::numeric_limits<double>::infinity();
        for (std::size_t c = 0; c < probe_->contacts.size(); ++c) {
            const probe::Contact& to = probe_->contacts[c];
            if (to.shank != from.shank || to.excluded)
                continue;
            const double dx = to.x_um - from.x_um, dy_to = to.y_um - (from.y_um + static_cast<double>(rounded));
            const double distance = dx * dx + dy_to * dy_to;
            if (distance < best_distance) {
                best_distance = distance;
                best = static_cast<int>(c);
            }
        }
        cache_.emplace(key, best);
        return best;
    }

private:
    const probe::Probe* probe_;
    std::map<std::pair<int, long>, int> cache_;
};

} // namespace

namespace {

/// The smallest of distance(|a|^2, |b|^2, a.b) over +-2 samples of shift, on the rows of the channels two snippets
/// share; `none` when they share no channel.
template <class DISTANCE>
double smallest_distance(const HwSortParams& params, int channel_a, const std::vector<double>& a, int channel_b,
                         const std::vector<double>& b, double none, DISTANCE&& distance) {
    const int width = params.pre + 1 + params.post;
    double best = none;
    for (int shift = -2; shift <= 2; ++shift) {
        double aa = 0, bb = 0, ab = 0;
        bool shared = false;
        for (int ka = 0; ka < kRows; ++ka) {
            const int ch = params.snippet_channels[channel_a][ka];
            if (ch < 0)
                continue;
            for (int kb = 0; kb < kRows; ++kb) {
                if (params.snippet_channels[channel_b][kb] != ch)
                    continue;
                shared = true;
                for (int s = 2; s < width - 2; ++s) {
                    const double va = a[static_cast<std::size_t>(ka * width + s)];
                    const double vb = b[static_cast<std::size_t>(kb * width + s + shift)];
                    aa += va * va;
                    bb += vb * vb;
                    ab += va * vb;
                }
            }
        }
        if (shared && aa > 0 && bb > 0)
            best = std::min(best, distance(aa, bb, ab));
    }
    return best;
}

} // namespace

double template_distance(const HwSortParams& params, int channel_a, const std::vector<double>& a, int channel_b,
                         const std::vector<double>& b) {
    return smallest_distance(params, channel_a, a, channel_b, b, 2.0,
                             [](double aa, double bb, double ab) { return (aa + bb - 2 * ab) / ((aa + bb) / 2); });
}

double distance_beyond_noise(const HwSortParams& params, const std::vector<double>& channel_noise, const Entry& a,
                             const std::vector<double>& b_snippet, const Entry& b) {
    const double share = (a.n_members > 0 ? 1.0 / static_cast<double>(a.n_members) : 0.0) +
                         (b.n_members > 0 ? 1.0 / static_cast<double>(b.n_members) : 0.0);
    double noise = 0; // sigma^2 summed over the samples compared (those of the shared channels)
    const int compared = params.pre + 1 + params.post - 4;
    for (int ka = 0; ka < kRows; ++ka) {
        const int ch = params.snippet_channels[a.channel][ka];
        for (int kb = 0; ch >= 0 && kb < kRows; ++kb)
            if (params.snippet_channels[b.channel][kb] == ch)
                noise += channel_noise[static_cast<std::size_t>(ch)] * channel_noise[static_cast<std::size_t>(ch)] *
                         compared;
    }
    return smallest_distance(params, a.channel, a.mean_snippet, b.channel, b_snippet, 2.0,
                             [&](double aa, double bb, double ab) {
                                 return std::max(0.0, aa + bb - 2 * ab - share * noise) / ((aa + bb) / 2);
                             });
}

double shape_distance(const HwSortParams& params, int channel_a, const std::vector<double>& a, int channel_b,
                      const std::vector<double>& b) {
    return smallest_distance(params, channel_a, a, channel_b, b, 1.0,
                             [](double aa, double bb, double ab) { return 1 - ab * std::abs(ab) / (aa * bb); });
}

double share_following(const std::vector<std::uint64_t>& leaders, const std::vector<std::uint64_t>& followers,
                       std::uint64_t min_lag, std::uint64_t max_lag) {
    if (followers.empty())
        return 0;
    std::size_t following = 0;
    for (const std::uint64_t t : followers) {
        if (t < min_lag)
            continue;
        // The latest leader at or before t - min_lag.
        const auto after = std::upper_bound(leaders.begin(), leaders.end(), t - min_lag);
        following += after != leaders.begin() && t - *std::prev(after) <= max_lag;
    }
    return static_cast<double>(following) / static_cast<double>(followers.size());
}

namespace {

/// The spike trains of a calibration's entries, to tell a bursting neuron's later spikes from another neuron's.
class BurstTrains {
public:
    BurstTrains(const SortOutput& data, const std::vector<std::vector<int>>& members, double sample_rate)
        : times_(members.size()), min_lag_(samples(kBurstLagMs[0], sample_rate)),
          max_lag_(samples(kBurstLagMs[1], sample_rate)) {
        for (std::size_t e = 0; e < members.size(); ++e) {
            for (int i : members[e])
                times_[e].push_back(data.spikes[static_cast<std::size_t>(i)].event.sample);
            std::sort(times_[e].begin(), times_[e].end());
        }
        std::uint64_t first = ~std::uint64_t{0}, last = 0;
        for (const hw::SortedSpike& spike : data.spikes) {
            first = std::min(first, spike.event.sample);
            last = std::max(last, spike.event.sample);
        }
        span_ = static_cast<double>(last - std::min(first, last)) + 1;
    }

    /// Whether, beyond chance, at least `share` of the follower's spikes come 1-25 ms after one of the leader's, and at
    /// most half as many of the leader's after one of the follower's. A leader firing at rate r is followed within
    /// the lags by chance with c = 1 - exp(-r (max - min)); the share beyond chance is (share - c) / (1 - c).
    bool follows(std::size_t leader, std::size_t follower, double share) const {
        const auto& lead = times_[leader];
        const auto& follow = times_[follower];
        const double chance =
            1 - std::exp(-static_cast<double>(lead.size()) * static_cast<double>(max_lag_ - min_lag_) / span_);
        const double forward = share_following(lead, follow, min_lag_, max_lag_);
        return chance < 1 && (forward - chance) / (1 - chance) >= share &&
               share_following(follow, lead, min_lag_, max_lag_) <= forward / 2;
    }

private:
    static std::uint64_t samples(double ms, double sample_rate) {
        return static_cast<std::uint64_t>(std::llround(ms * sample_rate / 1000));
    }

    std::vector<std::vector<std::uint64_t>> times_; ///< per entry, sorted
    std::uint64_t min_lag_, max_lag_;
    double span_ = 1; ///< samples from the window's first spike to its last
};

bool share_a_channel(const HwSortParams& params, int channel_a, int channel_b) {
    for (int ka = 0; ka < kRows; ++ka)
        for (int kb = 0; kb < kRows; ++kb)
            if (params.snippet_channels[channel_a][ka] >= 0 &&
                params.snippet_channels[channel_a][ka] == params.snippet_channels[channel_b][kb])
                return true;
    return false;
}

} // namespace

void check_calibration_data(const HwSortParams& base, const SortOutput& data, const CalibrationMotion* motion) {
    const std::size_t n = data.spikes.size();
    require(data.snippets.size() == n * kRows * static_cast<std::size_t>(base.pre + 1 + base.post),
            "calibration data holds no snippets (the sorting stage ran without keep_snippets)");
    require(!motion || (motion->probe && motion->displacement_um.size() == n),
            "calibration motion: one displacement per spike and the probe are needed");
}

namespace {

/// A calibration with no entries yet: geometry, noise and the spike count; throws InputError without spikes.
Calibration empty_calibration(const HwSortParams& base, const SortOutput& data, const CalibrationMotion* motion) {
    require(!data.spikes.empty(), "no spikes in the calibration window: lengthen it (--calibration-s), check that the "
                                  "recording holds neural data, or lower the detection threshold (--threshold)");
    check_calibration_data(base, data, motion);
    Calibration result;
    result.width = base.pre + 1 + base.post;
    result.n_spikes = data.spikes.size();
    result.channel_noise = snippet_noise(base, data, result.width);
    result.params = std::make_shared<HwSortParams>(base);
    std::fill(std::begin(result.params->n_entries), std::end(result.params->n_entries), std::uint8_t{0});
    return result;
}

} // namespace

Calibration calibrate_basis(const HwSortParams& base, const SortOutput& data) {
    Calibration result = empty_calibration(base, data, nullptr);
    learn_basis(data, result.width, *result.params);
    return result;
}

Calibration calibrate(const HwSortParams& base, const SortOutput& data, const SortSettings& settings,
                      int first_template_id, const Calibration* previous, const CalibrationMotion* motion,
                      bool keep_basis) {
    const int width = base.pre + 1 + base.post;
    const std::size_t n = data.spikes.size();
    Calibration result = empty_calibration(base, data, motion);
    HwSortParams& params = *result.params;

    // Basis, quantised; then the features exactly as L1 computes them.
    require(!keep_basis || previous, "keeping the basis needs a previous calibration");
    if (keep_basis) {
        std::copy(&previous->params->basis[0][0],
                  &previous->params->basis[0][0] + sizeof params.basis / sizeof(std::int16_t), &params.basis[0][0]);
    } else {
        learn_basis(data, width, params);
    }
    // Under motion, a spike is clustered as it would have been seen at displacement 0 (the tissue's frame): on the
    // contact nearest its peak contact moved back by the displacement, its snippet kriged onto that contact's rows
    // from the rows it was recorded on. A neuron that drifted across contacts while the window was recorded is then
    // one cloud on one contact. Near 0 the snippet stays as recorded: kriging a single noisy snippet costs more than
    // a few micrometres (stable recording: 0.926 registering every spike, 0.933 from 5 um on).
    const std::size_t values = static_cast<std::size_t>(kRows * width);
    std::vector<int> group_channel(n);
    std::vector<std::uint8_t> moved(n, 0);
    for (std::size_t i = 0; i < n; ++i)
        group_channel[i] = data.spikes[i].event.channel;
    if (motion != nullptr && settings.register_from_um >= 0) {
        ContactFinder contacts(motion->probe);
        for (std::size_t i = 0; i < n; ++i)
            if (std::abs(motion->displacement_um[i]) >= settings.register_from_um) {
                moved[i] = 1;
                group_channel[i] = contacts.moved(group_channel[i], -motion->displacement_um[i]);
            }
    }
    // Kriging is linear in the snippet: one map (target row x source row) per peak contact, contact moved to and
    // displacement (to 0.5 um), shared by every spike with them. Spike i's snippet as clustered is computed again
    // where needed rather than held (it is as large as the sample).
    std::map<std::tuple<int, int, long>, int> map_index;
    std::vector<std::tuple<int, int, long>> map_keys;
    std::vector<int> map_of(n, -1);
    for (std::size_t i = 0; i < n; ++i)
        if (moved[i]) {
            const auto key = std::make_tuple(data.spikes[i].event.channel, group_channel[i],
                                             std::lround(motion->displacement_um[i] * 2));
            const auto [it, inserted] = map_index.try_emplace(key, static_cast<int>(map_keys.size()));
            if (inserted)
                map_keys.push_back(key);
            map_of[i] = it->second;
        }
    std::vector<Eigen::MatrixXd> maps(map_keys.size());
    parallel_for(settings.threads, map_keys.size(), [&](std::size_t m) {
        const auto [from, to, half_um] = map_keys[m];
        maps[m] = move_snippet_map(params, *motion->probe, from, static_cast<double>(half_um) / 2, to, 0.0);
    });
    // Adds spike i's snippet as clustered (moved where registered) to sum (kRows x width values).
    auto add_clustered = [&](std::size_t i, double* sum) {
        const std::int32_t* recorded = &data.snippets[i * values];
        if (!moved[i]) {
            for (std::size_t v = 0; v < values; ++v)
                sum[v] += recorded[v];
            return;
        }
        const Eigen::MatrixXd& map = maps[static_cast<std::size_t>(map_of[i])];
        for (int k = 0; k < kRows; ++k)
            for (int s = 0; s < width; ++s) {
                double seen = 0;
                for (int j = 0; j < kRows; ++j)
                    if (map(k, j) != 0)
                        seen += map(k, j) * recorded[j * width + s];
                sum[k * width + s] += seen;
            }
    };
    FeatureMatrix features(static_cast<Eigen::Index>(n), kValues);
    parallel_for(settings.threads, n, [&](std::size_t i) {
        std::int32_t snippet[kRows][HwSortConfig::max_snippet_samples] = {};
        if (moved[i]) {
            double seen[kRows * HwSortConfig::max_snippet_samples] = {};
            add_clustered(i, seen);
            for (int k = 0; k < kRows; ++k)
                for (int s = 0; s < width; ++s)
                    snippet[k][s] = static_cast<std::int32_t>(std::lround(seen[k * width + s]));
        } else {
            for (int k = 0; k < kRows; ++k)
                std::copy_n(&data.snippets[i * values + static_cast<std::size_t>(k * width)], width, snippet[k]);
        }
        std::int32_t f[kValues];
        hw::compute_features(params, snippet, f);
        for (int v = 0; v < kValues; ++v)
            features(static_cast<Eigen::Index>(i), v) = f[v];
    });

    // Clusters per peak channel.
    // Learning new units only: the previous units stay as they are (ids and entries), clusters come from the spikes
    // they left unsorted, in the room left on each channel.
    const bool add_units = keep_basis && previous && !settings.relearn_all;
    std::vector<int> room(static_cast<std::size_t>(params.n_channels), HwSortConfig::max_entries);
    if (add_units)
        for (int c = 0; c < params.n_channels; ++c)
            room[static_cast<std::size_t>(c)] -= previous->params->n_entries[c];
    std::map<int, std::vector<int>> by_channel;
    // Learning also looks again at each unit's spikes on each channel: with more spikes than its calibration had, a
    // unit that is two neurons (a merge the first clustering could not yet tell apart) splits, and the part that
    // differs from the rest becomes a new unit.
    std::map<std::pair<int, int>, std::vector<int>> by_channel_and_unit;
    for (std::size_t i = 0; i < n; ++i)
        if (!add_units || data.spikes[i].unit < 0)
            by_channel[group_channel[i]].push_back(static_cast<int>(i));
        else if (settings.split_off_distance > 0)
            by_channel_and_unit[{group_channel[i], data.spikes[i].unit}].push_back(static_cast<int>(i));
    // Channels are clustered independently (in parallel), then taken in channel order.
    struct ToCluster {
        int channel;
        const std::vector<int>* members;
        int parent; ///< learning: the unit whose spikes these are (-1: spikes left unsorted)
    };
    std::vector<ToCluster> to_cluster;
    for (const auto& [channel, members] : by_channel)
        if (members.size() >= static_cast<std::size_t>(settings.min_cluster_spikes))
            to_cluster.push_back({channel, &members, -1});
    for (const auto& [key, members] : by_channel_and_unit)
        if (members.size() >= 2 * static_cast<std::size_t>(settings.min_cluster_spikes))
            to_cluster.push_back({key.first, &members, key.second});
    std::vector<std::vector<std::vector<int>>> clusters_of(to_cluster.size());
    parallel_for(settings.threads, to_cluster.size(),
                 [&](std::size_t k) { clusters_of[k] = split_clusters(features, *to_cluster[k].members, settings); });
    auto mean_snippet_of = [&](const std::vector<int>& cluster) { // as clustered
        std::vector<double> mean(values, 0.0);
        for (int i : cluster)
            add_clustered(static_cast<std::size_t>(i), mean.data());
        for (double& v : mean)
            v /= static_cast<double>(cluster.size());
        return mean;
    };
    std::vector<std::vector<int>> members_of; // per clustered entry
    std::vector<int> split_from;              // per clustered entry: the unit it split from (-1: none)
    for (std::size_t k = 0; k < to_cluster.size(); ++k) {
        const int channel = to_cluster[k].channel;
        auto& clusters = clusters_of[k];
        std::sort(clusters.begin(), clusters.end(), [](const auto& x, const auto& y) { return x.size() > y.size(); });
        // A unit's largest part stays the unit; a part becomes a new unit only when its mean snippet differs from the
        // largest's (splits of one neuron, by amplitude or alignment, have near-equal means).
        std::vector<double> unit_part;
        if (to_cluster[k].parent >= 0 && !clusters.empty()) {
            unit_part = mean_snippet_of(clusters.front());
            clusters.erase(clusters.begin());
        }
        for (const auto& cluster : clusters) {
            if (cluster.size() < static_cast<std::size_t>(settings.min_cluster_spikes) ||
                static_cast<int>(params.n_entries[channel]) == room[static_cast<std::size_t>(channel)])
                continue;
            std::vector<double> mean_snippet = mean_snippet_of(cluster);
            if (!unit_part.empty() &&
                template_distance(params, channel, unit_part, channel, mean_snippet) < settings.split_off_distance)
                continue;
            Entry entry;
            entry.channel = channel;
            entry.n_members = cluster.size();
            Eigen::VectorXd centroid = Eigen::VectorXd::Zero(kValues);
            for (int i : cluster)
                centroid += features.row(i).transpose();
            centroid /= static_cast<double>(cluster.size());
            std::vector<double> distances;
            for (int i : cluster)
                distances.push_back((features.row(i).transpose() - centroid).squaredNorm());
            entry.gate = settings.gate_scale * quantile(distances, 0.95);
            entry.centroid.assign(centroid.data(), centroid.data() + kValues);
            entry.mean_snippet = std::move(mean_snippet);
            if (motion) // where its spikes were seen, as clustered (0 for those moved there)
                for (int i : cluster)
                    entry.motion_um += moved[static_cast<std::size_t>(i)]
                                           ? 0.0
                                           : motion->displacement_um[static_cast<std::size_t>(i)] /
                                                 static_cast<double>(cluster.size());
            result.entries.push_back(std::move(entry));
            members_of.push_back(cluster);
            split_from.push_back(to_cluster[k].parent);
            ++params.n_entries[channel];
        }
    }
    require(!result.entries.empty() || add_units,
            "the calibration window's " + std::to_string(n) + " spikes formed no cluster of at least " +
                std::to_string(settings.min_cluster_spikes) +
                " spikes on one channel: lengthen the window (--calibration-s) or lower --min-cluster-spikes");

    // A bursting neuron's later spikes are smaller: they cluster apart on its channel, with its shape, and follow its
    // other spikes by a few milliseconds.
    std::optional<BurstTrains> bursts;
    if (settings.burst_follow_share > 0 && settings.sample_rate > 0)
        bursts.emplace(data, members_of, settings.sample_rate);
    auto burst_parts = [&](std::size_t a, std::size_t b, const std::vector<double>& b_snippet) {
        const Entry& ea = result.entries[a];
        const Entry& eb = result.entries[b];
        const auto trough = static_cast<std::size_t>(base.pre);
        const bool a_leads = std::abs(ea.mean_snippet[trough]) >= std::abs(eb.mean_snippet[trough]);
        // The timing first: it rules out most pairs, at a fraction of the shape's cost.
        return bursts->follows(a_leads ? a : b, a_leads ? b : a, settings.burst_follow_share) &&
               shape_distance(params, ea.channel, ea.mean_snippet, eb.channel, b_snippet) <=
                   settings.burst_shape_distance;
    };
    // One neuron seen at two displacements of the probe: the displacements each entry's spikes were recorded at.
    struct Recorded {
        std::vector<double> displacements_um;        ///< sorted
        double mean_um = 0, low_um = 0, high_um = 0; ///< mean, 10th and 90th percentiles
    };
    std::vector<Recorded> recorded(motion && settings.moved_merge_distance > 0 ? result.entries.size() : 0);
    for (std::size_t e = 0; e < recorded.size(); ++e) {
        Recorded& r = recorded[e];
        for (int i : members_of[e])
            r.displacements_um.push_back(motion->displacement_um[static_cast<std::size_t>(i)]);
        std::sort(r.displacements_um.begin(), r.displacements_um.end());
        for (double d : r.displacements_um)
            r.mean_um += d / static_cast<double>(r.displacements_um.size());
        r.low_um = r.displacements_um[(r.displacements_um.size() - 1) / 10];
        r.high_um = r.displacements_um[(r.displacements_um.size() - 1) * 9 / 10];
    }
    auto share_inside = [](const Recorded& a, const Recorded& b) { // a's spikes within b's central displacements
        const auto first = std::lower_bound(a.displacements_um.begin(), a.displacements_um.end(), b.low_um);
        const auto last = std::upper_bound(a.displacements_um.begin(), a.displacements_um.end(), b.high_um);
        return static_cast<double>(last - first) / static_cast<double>(a.displacements_um.size());
    };
    auto moved_apart = [&](std::size_t a, std::size_t b) {
        if (recorded.empty())
            return false;
        const Recorded& ra = recorded[a];
        const Recorded& rb = recorded[b];
        return std::abs(ra.mean_um - rb.mean_um) >= kMovedApartUm && share_inside(ra, rb) <= 0.1 &&
               share_inside(rb, ra) <= 0.1;
    };
    // The same neuron peaking on neighbouring channels (or drifting across them): entries on neighbouring channels
    // merge when their mean snippets are near-equal, or when they are alike and their spikes, seen on the channels
    // both snippets cover, form one cloud (no density dip between them). Closest pairs first, and never into a unit
    // that would hold two entries of one channel that do not merge themselves: the splitter found a valley between
    // those, and a chain of small entries on the channels around must not undo it (two neurons on one contact joined
    // through a 20-spike entry next to them).
    std::vector<EntryLink> links;
    std::set<std::pair<int, int>> kept_apart; // same-channel entries (a < b) that do not merge
    for (std::size_t a = 0; a < result.entries.size(); ++a)
        for (std::size_t b = a + 1; b < result.entries.size(); ++b) {
            const Entry& ea = result.entries[a];
            const Entry& eb = result.entries[b];
            // Same channel too: one neuron whose spikes align one sample apart (two near-equal troughs, or a peak
            // between samples) splits into two clusters whose mean snippets match once shifted.
            bool near = ea.channel == eb.channel;
            for (int k = 1; k < kRows; ++k)
                near |= params.snippet_channels[ea.channel][k] == eb.channel;
            if (!near)
                continue;
            // Under drift the same neuron is learnt at several displacements: compare at a's.
            const std::vector<double> b_snippet =
                motion ? move_snippet(params, *motion->probe, eb.channel, eb.mean_snippet, eb.motion_um, ea.motion_um)
                       : eb.mean_snippet;
            const double distance = template_distance(params, ea.channel, ea.mean_snippet, eb.channel, b_snippet);
            // Two clusters of one channel are compared less the noise of their means: the splitter cuts a neuron's
            // outskirts into small clusters whose means differ by noise alone. Not across channels, where a small
            // entry so discounted linked two neurons' entries into one unit (600 units: 0.927 against 0.924).
            const bool merge =
                (ea.channel == eb.channel ? distance_beyond_noise(params, result.channel_noise, ea, b_snippet, eb)
                                          : distance) < settings.merge_distance ||
                (distance < settings.merge_candidate_distance &&
                 one_cloud(params, features, ea.channel, members_of[a], eb.channel, members_of[b],
                           settings.split_dip)) ||
                (bursts && burst_parts(a, b, b_snippet)) ||
                (distance < settings.moved_merge_distance && moved_apart(a, b));
            if (merge)
                links.push_back({distance, static_cast<int>(a), static_cast<int>(b)});
            else if (ea.channel == eb.channel)
                kept_apart.insert({static_cast<int>(a), static_cast<int>(b)});
        }
    const std::vector<int> group = group_entries(result.entries.size(), std::move(links), kept_apart);
    std::map<int, int> unit_of_root;
    for (std::size_t e = 0; e < result.entries.size(); ++e) {
        const int root = group[e];
        auto [it, inserted] = unit_of_root.try_emplace(root, static_cast<int>(result.units.size()));
        if (inserted)
            result.units.push_back(Unit{});
        Unit& unit = result.units[static_cast<std::size_t>(it->second)];
        unit.entries.push_back(static_cast<int>(e));
        const Entry& entry = result.entries[e];
        const double amplitude = std::abs(entry.mean_snippet[static_cast<std::size_t>(base.pre)]);
        if (amplitude > unit.amplitude) {
            unit.amplitude = amplitude;
            unit.peak_channel = entry.channel;
        }
    }

    // Unit ids: those matching a previous unit keep its id (closest first, one to one), the others get new ids.
    std::vector<int> ids(result.units.size(), -1);
    int next_id = 0;
    if (previous) {
        // First by the labels the previous classifier gave this window's spikes while labelling them (a unit
        // whose spikes it mostly called X is X, however far drift has moved its template), then by template
        // distance (units whose spikes it left unsorted).
        struct Match {
            int by_template; ///< 0: by labels (distance = 1 - share of the unit's spikes), 1: by template distance
            double distance;
            std::size_t unit, old;
        };
        std::vector<Match> matches;
        std::map<int, std::size_t> old_index;
        for (std::size_t o = 0; o < previous->units.size(); ++o)
            old_index[previous->units[o].id] = o;
        std::vector<bool> split_off(result.units.size(), false); // holds a part split off an old unit: a new id
        for (std::size_t u = 0; u < result.units.size(); ++u)
            for (int e : result.units[u].entries)
                split_off[u] = split_off[u] || split_from[static_cast<std::size_t>(e)] >= 0;
        for (std::size_t u = 0; u < result.units.size(); ++u) {
            if (split_off[u])
                continue;
            std::map<int, std::size_t> votes;
            std::size_t total = 0;
            for (int e : result.units[u].entries)
                for (int i : members_of[static_cast<std::size_t>(e)]) {
                    ++total;
                    const int label = data.spikes[static_cast<std::size_t>(i)].unit;
                    if (label >= 0)
                        ++votes[label];
                }
            for (const auto& [label, count] : votes)
                if (2 * count > total && old_index.count(label))
                    matches.push_back(
                        {0, 1.0 - static_cast<double>(count) / static_cast<double>(total), u, old_index[label]});
        }
        // When only adding units, their spikes were left unsorted, so a template resembling a unit's is a neighbour
        // of it more often than the unit itself, and joining the two would spoil both. A new unit is an old one only
        // when its spikes border that unit's (most of their nearest labelled spikes on the same channel are the old
        // unit's) and form one cloud with them: the old unit's outskirts, beyond its gates, which would otherwise
        // take the neuron over from the old id at this point of the recording.
        std::map<int, std::vector<int>> labelled_on;   // channel -> the sample's labelled spikes peaking there
        std::map<std::pair<int, int>, int> n_labelled; // (channel, unit id) -> how many
        if (add_units)
            for (std::size_t i = 0; i < n; ++i)
                if (data.spikes[i].unit >= 0) {
                    labelled_on[data.spikes[i].event.channel].push_back(static_cast<int>(i));
                    ++n_labelled[{data.spikes[i].event.channel, data.spikes[i].unit}];
                }
        // Where the old unit has enough labelled spikes on one of the new unit's channels to compare with.
        auto channels_shared = [&](std::size_t u, const Unit& old) {
            for (int mine : result.units[u].entries) {
                const auto count = n_labelled.find({result.entries[static_cast<std::size_t>(mine)].channel, old.id});
                if (count != n_labelled.end() && count->second >= settings.min_cluster_spikes)
                    return true;
            }
            return false;
        };
        auto outskirts_of = [&](std::size_t u, const Unit& old) {
            for (int mine : result.units[u].entries) {
                const Entry& m = result.entries[static_cast<std::size_t>(mine)];
                const auto on_channel = labelled_on.find(m.channel);
                if (on_channel == labelled_on.end())
                    continue;
                std::vector<int> old_spikes;
                for (int i : on_channel->second)
                    if (data.spikes[static_cast<std::size_t>(i)].unit == old.id)
                        old_spikes.push_back(i);
                if (old_spikes.size() < static_cast<std::size_t>(settings.min_cluster_spikes))
                    continue;
                const std::vector<int>& members = members_of[static_cast<std::size_t>(mine)];
                std::size_t bordering = 0;
                for (int i : members) {
                    double nearest = std::numeric_limits<double>::infinity();
                    int label = -1;
                    for (int j : on_channel->second) {
                        const double d = (features.row(i) - features.row(j)).squaredNorm();
                        if (d < nearest) {
                            nearest = d;
                            label = data.spikes[static_cast<std::size_t>(j)].unit;
                        }
                    }
                    bordering += label == old.id;
                }
                if (2 * bordering > members.size() &&
                    one_cloud(params, features, m.channel, members, m.channel, old_spikes, settings.split_dip))
                    return true;
            }
            return false;
        };
        for (std::size_t u = 0; u < result.units.size(); ++u)
            for (std::size_t o = 0; o < previous->units.size() && !split_off[u]; ++o) {
                const Unit& old = previous->units[o];
                if (add_units && !channels_shared(u, old))
                    continue; // (the outskirts test below would fail; saves the template distances)
                double best = 2;
                for (int e : old.entries) {
                    const Entry& b = previous->entries[static_cast<std::size_t>(e)];
                    for (int mine : result.units[u].entries) {
                        const Entry& m = result.entries[static_cast<std::size_t>(mine)];
                        if (!share_a_channel(params, m.channel, b.channel))
                            continue; // distance 2 (and no snippet to move: moving one is a kriging solve)
                        best = std::min(
                            best, template_distance(params, m.channel, m.mean_snippet, b.channel,
                                                    motion ? move_snippet(params, *motion->probe, b.channel,
                                                                          b.mean_snippet, b.motion_um, m.motion_um)
                                                           : b.mean_snippet));
                    }
                }
                if (best < settings.id_match_distance && (!add_units || outskirts_of(u, old)))
                    matches.push_back({1, best, u, o});
            }
        std::sort(matches.begin(), matches.end(), [](const Match& x, const Match& y) {
            return std::tie(x.by_template, x.distance, x.unit, x.old) <
                   std::tie(y.by_template, y.distance, y.unit, y.old);
        });
        std::vector<bool> old_taken(previous->units.size(), false);
        for (const Match& m : matches)
            if (ids[m.unit] < 0 && !old_taken[m.old]) {
                ids[m.unit] = previous->units[m.old].id;
                old_taken[m.old] = true;
            }
        for (const Unit& old : previous->units)
            next_id = std::max(next_id, old.id + 1);
    }
    for (std::size_t u = 0; u < result.units.size(); ++u) {
        if (ids[u] < 0)
            ids[u] = next_id++;
        result.units[u].id = ids[u];
        for (int e : result.units[u].entries)
            result.entries[static_cast<std::size_t>(e)].unit = ids[u];
    }

    // Units of earlier calibrations this window did not find (too few spikes in it, or a cluster that matched no
    // id) stay registered with their last templates, as features in the new basis, so that their spikes keep their
    // labels. (Keeping only units with no successor among the new ones measured worse, docs/ACCURACY.md.)
    // When only adding units, every previous unit stays, and a new cluster matching one (its spikes fell outside the
    // unit's gates) adds entries to it. Not when every spike so far was re-clustered (relearn_all, as the first of
    // two passes does): the new units are then the whole picture, and an old unit they did not match is one they
    // represent differently (split, merged, moved), whose copy only competed with them for spikes.
    if (previous && !settings.relearn_all) {
        std::map<int, std::size_t> found; // id -> index into result.units
        for (std::size_t u = 0; u < result.units.size(); ++u)
            found[result.units[u].id] = u;
        for (const Unit& old : previous->units) {
            const auto match = found.find(old.id);
            if (match != found.end() && !add_units)
                continue;
            Unit carried = old;
            carried.entries.clear();
            for (int e : old.entries) {
                Entry entry = previous->entries[static_cast<std::size_t>(e)];
                if (params.n_entries[entry.channel] == HwSortConfig::max_entries)
                    continue;
                entry.centroid = centroid_of(params, entry.mean_snippet, width);
                carried.entries.push_back(static_cast<int>(result.entries.size()));
                result.entries.push_back(std::move(entry));
                ++params.n_entries[result.entries.back().channel];
            }
            if (carried.entries.empty())
                continue;
            if (match == found.end()) {
                result.units.push_back(std::move(carried));
                continue;
            }
            Unit& unit = result.units[match->second];
            unit.entries.insert(unit.entries.end(), carried.entries.begin(), carried.entries.end());
            if (old.amplitude > unit.amplitude) {
                unit.amplitude = old.amplitude;
                unit.peak_channel = old.peak_channel;
            }
        }
    }

    // A unit's spikes may peak on any contact near its largest one; register it where no cluster represented it,
    // with the features of its mean snippet seen from that contact. With the probe's geometry (under motion tracking)
    // also beyond the peak's nearest seven, wherever its footprint, kriged from its clusters, nearly reaches its peak
    // amplitude: on a staggered layout a unit between two columns peaks there spike by spike. A channel holds
    // max_entries: the registrations where a unit is largest relative to its peak go first.
    struct Registration {
        std::size_t unit;
        int channel;
        double share; ///< the unit's amplitude there over its peak amplitude
        std::vector<double> mean_snippet;
    };
    std::vector<Registration> registrations;
    for (std::size_t u = 0; u < result.units.size(); ++u) {
        const Unit& unit = result.units[u];
        std::optional<Footprint> footprint;
        std::vector<int> contacts;
        Kriging kriging(MovingUnitsSettings{}.kernel_um, width);
        if (motion)
            for (int e : unit.entries)
                if (const Entry& entry = result.entries[static_cast<std::size_t>(e)]; entry.n_members > 0)
                    kriging.add_snippet(params, *motion->probe, entry.channel, entry.mean_snippet, entry.motion_um);
        if (!kriging.empty()) {
            kriging.fit();
            const Entry& main = result.entries[static_cast<std::size_t>(unit.entries.front())];
            footprint = kriged_footprint(kriging, *motion->probe,
                                         motion->probe->contacts[static_cast<std::size_t>(unit.peak_channel)].shank,
                                         main.motion_um, params.pre, width);
            contacts = registration_contacts(params, *footprint, kRegisterShare, unit.peak_channel);
        } else {
            for (int k = 1; k < kRows; ++k)
                if (const int channel = params.snippet_channels[unit.peak_channel][k]; channel >= 0)
                    contacts.push_back(channel);
        }
        for (const int channel : contacts) {
            bool represented = false;
            for (int e : unit.entries)
                represented |= result.entries[static_cast<std::size_t>(e)].channel == channel;
            if (represented)
                continue;
            std::vector<double> mean_snippet =
                template_seen_from(params, result.entries, unit, channel, width, footprint ? &*footprint : nullptr);
            const double share =
                unit.amplitude > 0 ? std::abs(mean_snippet[static_cast<std::size_t>(params.pre)]) / unit.amplitude : 0;
            registrations.push_back({u, channel, share, std::move(mean_snippet)});
        }
    }
    std::stable_sort(registrations.begin(), registrations.end(),
                     [](const Registration& a, const Registration& b) { return a.share > b.share; });
    for (Registration& registration : registrations) {
        if (params.n_entries[registration.channel] == HwSortConfig::max_entries)
            continue;
        Unit& unit = result.units[registration.unit];
        Entry entry;
        entry.channel = registration.channel;
        entry.unit = unit.id;
        entry.gate = result.entries[static_cast<std::size_t>(unit.entries.front())].gate;
        entry.mean_snippet = std::move(registration.mean_snippet);
        entry.centroid = centroid_of(params, entry.mean_snippet, width);
        unit.entries.push_back(static_cast<int>(result.entries.size()));
        result.entries.push_back(std::move(entry));
        ++params.n_entries[registration.channel];
    }

    // The classifier, quantised.
    std::vector<int> filled(static_cast<std::size_t>(params.n_channels), 0);
    for (std::size_t e = 0; e < result.entries.size(); ++e) {
        Entry& entry = result.entries[e];
        entry.template_id = first_template_id + static_cast<int>(e);
        params.entries[entry.channel][filled[static_cast<std::size_t>(entry.channel)]++] = quantise(entry);
    }
    return result;
}

} // namespace spikeline::sort
