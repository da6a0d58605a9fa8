#include "sort/clustering.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

namespace spikeline::sort {
namespace {

constexpr int kRows = HwSortConfig::snippet_channels;

Eigen::VectorXd mean_of(const FeatureMatrix& x, const std::vector<int>& rows) {
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(x.cols());
    for (int i : rows)
        mean += x.row(i).transpose();
    return mean / static_cast<double>(rows.size());
}

/// Adds the scatter of the given rows of x about `centre` (the sum of (x_i - centre)(x_i - centre)^T) to the lower
/// triangle of `into`: one blocked rank-k update, several times faster than a rank-1 update per row.
void add_scatter(const FeatureMatrix& x, const std::vector<int>& rows, const Eigen::VectorXd& centre,
                 Eigen::MatrixXd& into) {
    Eigen::MatrixXd deviations(x.cols(), static_cast<Eigen::Index>(rows.size()));
    for (std::size_t k = 0; k < rows.size(); ++k)
        deviations.col(static_cast<Eigen::Index>(k)) = x.row(rows[k]).transpose() - centre;
    into.selfadjointView<Eigen::Lower>().rankUpdate(deviations);
}

/// 2-means of the given rows of x from two starting centres; false when one side empties.
bool two_means(const FeatureMatrix& x, const std::vector<int>& rows, Eigen::VectorXd ca, Eigen::VectorXd cb,
               std::vector<int>& a, std::vector<int>& b) {
    for (int iteration = 0; iteration < 30; ++iteration) {
        a.clear();
        b.clear();
        for (int i : rows)
            ((x.row(i).transpose() - ca).squaredNorm() <= (x.row(i).transpose() - cb).squaredNorm() ? a : b)
                .push_back(i);
        if (a.empty() || b.empty())
            return false;
        const Eigen::VectorXd na = mean_of(x, a), nb = mean_of(x, b);
        const bool converged = na == ca && nb == cb;
        ca = na;
        cb = nb;
        if (converged)
            break;
    }
    return true;
}
constexpr int kPrincipalStarts = 3;

// dip_ratio's test on values already projected onto an axis (a's and b's).
double projected_dip_ratio(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.empty() || b.empty())
        return std::numeric_limits<double>::infinity();
    double pa = 0, pb = 0;
    for (double v : a)
        pa += v;
    for (double v : b)
        pb += v;
    pa /= static_cast<double>(a.size());
    pb /= static_cast<double>(b.size());
    const double length = std::abs(pb - pa);
    if (length == 0)
        return std::numeric_limits<double>::infinity();
    const double mid = (pa + pb) / 2, half_window = length / 8;
    double count_a = 0, count_b = 0, count_mid = 0;
    for (const auto* set : {&a, &b})
        for (double v : *set) {
            count_a += std::abs(v - pa) <= half_window;
            count_b += std::abs(v - pb) <= half_window;
            count_mid += std::abs(v - mid) <= half_window;
        }
    // Allow for counting noise in the valley: two standard deviations of a Poisson count.
    const double peaks = std::min(count_a, count_b);
    return peaks > 0 ? (count_mid + 2 * std::sqrt(count_mid)) / peaks : std::numeric_limits<double>::infinity();
}

/// Splits a set of feature vectors while a split is real: 2-means from several starts, keeping the split with the
/// deepest density dip along the axis joining its two means (ISO-SPLIT's idea with a window count test instead of
/// isotonic regression).
class Splitter {
public:
    Splitter(const FeatureMatrix& features, const SortSettings& settings) : x_(features), settings_(settings) {}

    std::vector<std::vector<int>> clusters(std::vector<int> members) {
        std::vector<std::vector<int>> out;
        split(std::move(members), 0, out);
        return out;
    }

private:
    void split(std::vector<int> members, int depth, std::vector<std::vector<int>>& out) {
        const std::size_t min_size = static_cast<std::size_t>(settings_.min_cluster_spikes);
        std::vector<int> best_a, best_b;
        double best_ratio = settings_.split_dip;
        // 2-means from a start, then along the discriminant of the two halves; kept when its valley is the deepest.
        auto try_start = [&](const Eigen::VectorXd& start_a, const Eigen::VectorXd& start_b) {
            std::vector<int> a, b;
            if (!two_means(members, start_a, start_b, a, b) || a.size() < min_size || b.size() < min_size)
                return;
            double ratio = dip_ratio(x_, a, b);
            // Noise is correlated across contacts and components: along the discriminant of the two halves the
            // valley between two units is often much deeper than along the line joining their means.
            std::vector<int> fa = a, fb = b;
            if (fisher_refine(members, fa, fb) && fa.size() >= min_size && fb.size() >= min_size) {
                const double fisher_ratio = fisher_dip_ratio(fa, fb);
                if (fisher_ratio < ratio) {
                    ratio = fisher_ratio;
                    a = std::move(fa);
                    b = std::move(fb);
                }
            }
            if (ratio < best_ratio) {
                best_ratio = ratio;
                best_a = std::move(a);
                best_b = std::move(b);
            }
        };
        if (members.size() >= 2 * min_size && depth < 8) {
            // A cloud of three or more units may show no valley along the split 2-means finds first (e.g. one
            // along the spread of amplitudes): try starts along each principal axis too, keep the deepest valley.
            for (const auto& [start_a, start_b] : starts(members))
                try_start(start_a, start_b);
            // A small unit inside a large one shows along none of these (the large cloud's axes dominate), but it is
            // among the members farthest from the mean, whose mean leans towards it. One more start tried means one
            // more chance of a valley by chance: it must be deeper.
            if (best_a.empty()) {
                best_ratio = settings_.split_dip * kFarStartDip;
                const auto [far_mean, near_mean] = far_start(members);
                try_start(far_mean, near_mean);
            }
        }
        if (!best_a.empty()) {
            split(std::move(best_a), depth + 1, out);
            split(std::move(best_b), depth + 1, out);
            return;
        }
        out.push_back(std::move(members));
    }

    Eigen::VectorXd mean_of(const std::vector<int>& members) const { return spikeline::sort::mean_of(x_, members); }

    // Start pairs for 2-means: the point farthest from the mean and the point farthest from it; then, for each of
    // the first principal axes, the means of the members on either side of the mean along it.
    std::vector<std::pair<Eigen::VectorXd, Eigen::VectorXd>> starts(const std::vector<int>& members) const {
        const Eigen::VectorXd mean = mean_of(members);
        auto farthest = [&](const Eigen::VectorXd& from) {
            int best = members.front();
            double best_d = -1;
            for (int i : members) {
                const double d = (x_.row(i).transpose() - from).squaredNorm();
                if (d > best_d) {
                    best_d = d;
                    best = i;
                }
            }
            return best;
        };
        std::vector<std::pair<Eigen::VectorXd, Eigen::VectorXd>> out;
        const Eigen::VectorXd first = x_.row(farthest(mean)).transpose();
        out.emplace_back(first, x_.row(farthest(first)).transpose());
        Eigen::MatrixXd covariance = Eigen::MatrixXd::Zero(x_.cols(), x_.cols());
        add_scatter(x_, members, mean, covariance);
        covariance = covariance.selfadjointView<Eigen::Lower>();
        const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(covariance);
        for (int axis = 0; axis < std::min<int>(kPrincipalStarts, static_cast<int>(x_.cols())); ++axis) {
            const Eigen::VectorXd u = solver.eigenvectors().col(x_.cols() - 1 - axis); // eigenvalues ascend
            std::vector<int> low, high;
            for (int i : members)
                ((x_.row(i).transpose() - mean).dot(u) < 0 ? low : high).push_back(i);
            if (!low.empty() && !high.empty())
                out.emplace_back(mean_of(low), mean_of(high));
        }
        return out;
    }

    // The mean of the kFarShare % of members farthest from the members' mean, and the mean of the others.
    std::pair<Eigen::VectorXd, Eigen::VectorXd> far_start(const std::vector<int>& members) const {
        const Eigen::VectorXd mean = mean_of(members);
        std::vector<std::pair<double, int>> by_distance;
        for (int i : members)
            by_distance.emplace_back((x_.row(i).transpose() - mean).squaredNorm(), i);
        const std::size_t n_far = std::max<std::size_t>(1, members.size() * kFarShare / 100);
        std::nth_element(by_distance.begin(), by_distance.begin() + static_cast<std::ptrdiff_t>(n_far - 1),
                         by_distance.end(), [](const auto& p, const auto& q) { return p.first > q.first; });
        std::vector<int> far, near;
        for (std::size_t k = 0; k < by_distance.size(); ++k)
            (k < n_far ? far : near).push_back(by_distance[k].second);
        return {mean_of(far), mean_of(near)};
    }

    bool two_means(const std::vector<int>& members, const Eigen::VectorXd& ca, const Eigen::VectorXd& cb,
                   std::vector<int>& a, std::vector<int>& b) const {
        return spikeline::sort::two_means(x_, members, ca, cb, a, b);
    }

    // Fisher's discriminant of halves a and b, its within-class covariance shrunk towards a multiple of the identity
    // (a few dozen spikes in 24 dimensions would otherwise overfit and show valleys that are not there).
    Eigen::VectorXd discriminant(const std::vector<int>& a, const std::vector<int>& b) const {
        const Eigen::VectorXd ma = mean_of(a), mb = mean_of(b);
        Eigen::MatrixXd within = Eigen::MatrixXd::Zero(x_.cols(), x_.cols());
        add_scatter(x_, a, ma, within);
        add_scatter(x_, b, mb, within);
        within = within.selfadjointView<Eigen::Lower>();
        within /= static_cast<double>(a.size() + b.size());
        const double scale = within.trace() / static_cast<double>(x_.cols());
        within.diagonal().array() += kFisherShrink * scale + 1e-12;
        return within.ldlt().solve(mb - ma);
    }

    // Reassigns the members by the discriminant until the halves stop changing: each side of the midpoint between
    // the two halves' projected means.
    bool fisher_refine(const std::vector<int>& members, std::vector<int>& a, std::vector<int>& b) const {
        for (int iteration = 0; iteration < kFisherIterations; ++iteration) {
            const Eigen::VectorXd w = discriminant(a, b);
            double pa = 0, pb = 0;
            for (int i : a)
                pa += x_.row(i).dot(w);
            for (int i : b)
                pb += x_.row(i).dot(w);
            const double middle = (pa / static_cast<double>(a.size()) + pb / static_cast<double>(b.size())) / 2;
            std::vector<int> na, nb;
            for (int i : members)
                (x_.row(i).dot(w) < middle ? na : nb).push_back(i);
            if (na.empty() || nb.empty())
                return false;
            const bool same = na == a;
            a = std::move(na);
            b = std::move(nb);
            if (same)
                break;
        }
        return true;
    }

    // The valley along the discriminant, judged on spikes it was not fitted to: fitted on every other spike of each
    // half, tested on the rest (and the other way round; the shallower valley counts).
    double fisher_dip_ratio(const std::vector<int>& a, const std::vector<int>& b) const {
        double worst = 0;
        for (int fold = 0; fold < 2; ++fold) {
            std::vector<int> fit_a, fit_b, test_a, test_b;
            for (std::size_t k = 0; k < a.size(); ++k)
                (static_cast<int>(k % 2) == fold ? fit_a : test_a).push_back(a[k]);
            for (std::size_t k = 0; k < b.size(); ++k)
                (static_cast<int>(k % 2) == fold ? fit_b : test_b).push_back(b[k]);
            const Eigen::VectorXd w = discriminant(fit_a, fit_b);
            std::vector<double> va, vb;
            for (int i : test_a)
                va.push_back(x_.row(i).dot(w));
            for (int i : test_b)
                vb.push_back(x_.row(i).dot(w));
            worst = std::max(worst, projected_dip_ratio(va, vb));
        }
        return worst;
    }

    static constexpr double kFisherShrink = 1.0;
    static constexpr std::size_t kFarShare = 15; ///< percent of the members in the far-members start
    static constexpr double kFarStartDip = 0.5;  ///< its valley must be this much deeper than split_dip asks
    static constexpr int kFisherIterations = 8;

    const FeatureMatrix& x_;
    const SortSettings& settings_;
};

} // namespace

double dip_ratio(const FeatureMatrix& x, const std::vector<int>& a, const std::vector<int>& b) {
    const Eigen::VectorXd axis = mean_of(x, b) - mean_of(x, a);
    std::vector<double> va, vb;
    for (int i : a)
        va.push_back(x.row(i).dot(axis));
    for (int i : b)
        vb.push_back(x.row(i).dot(axis));
    return projected_dip_ratio(va, vb);
}

bool has_dip(const FeatureMatrix& x, const std::vector<int>& a, const std::vector<int>& b, double split_dip) {
    return dip_ratio(x, a, b) < split_dip;
}

bool one_cloud(const HwSortParams& params, const FeatureMatrix& features, int channel_a,
               const std::vector<int>& members_a, int channel_b, const std::vector<int>& members_b, double split_dip) {
    std::vector<std::pair<int, int>> shared_rows; // (row in a's snippet, row in b's snippet)
    for (int ka = 0; ka < kRows; ++ka)
        for (int kb = 0; kb < kRows; ++kb)
            if (params.snippet_channels[channel_a][ka] >= 0 &&
                params.snippet_channels[channel_a][ka] == params.snippet_channels[channel_b][kb])
                shared_rows.push_back({ka, kb});
    if (shared_rows.empty())
        return false;
    const auto n_a = static_cast<Eigen::Index>(members_a.size());
    FeatureMatrix x(n_a + static_cast<Eigen::Index>(members_b.size()),
                    static_cast<Eigen::Index>(HwSortConfig::n_features * shared_rows.size()));
    std::vector<int> a, b;
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
        const bool from_a = i < n_a;
        const int spike =
            from_a ? members_a[static_cast<std::size_t>(i)] : members_b[static_cast<std::size_t>(i - n_a)];
        (from_a ? a : b).push_back(static_cast<int>(i));
        for (std::size_t r = 0; r < shared_rows.size(); ++r) {
            const int row = from_a ? shared_rows[r].first : shared_rows[r].second;
            for (int p = 0; p < HwSortConfig::n_features; ++p)
                x(i, static_cast<Eigen::Index>(p * shared_rows.size() + r)) = features(spike, p * kRows + row);
        }
    }
    return !has_dip(x, a, b, split_dip);
}

std::vector<std::vector<int>> split_clusters(const FeatureMatrix& features, std::vector<int> members,
                                             const SortSettings& settings) {
    return Splitter(features, settings).clusters(std::move(members));
}

std::vector<int> group_entries(std::size_t n, std::vector<EntryLink> links,
                               const std::set<std::pair<int, int>>& kept_apart) {
    std::sort(links.begin(), links.end(), [](const EntryLink& x, const EntryLink& y) {
        return std::tie(x.distance, x.a, x.b) < std::tie(y.distance, y.a, y.b);
    });
    UnionFind groups(n);
    std::vector<std::vector<int>> members(n); // per root
    for (std::size_t e = 0; e < n; ++e)
        members[e] = {static_cast<int>(e)};
    for (const EntryLink& link : links) {
        const int ra = groups.find(link.a), rb = groups.find(link.b);
        if (ra == rb)
            continue;
        bool apart = false;
        for (int x : members[static_cast<std::size_t>(ra)])
            for (int y : members[static_cast<std::size_t>(rb)])
                apart = apart || kept_apart.count({std::min(x, y), std::max(x, y)}) > 0;
        if (apart)
            continue;
        groups.join(ra, rb);
        const int root = groups.find(ra), other = root == ra ? rb : ra;
        auto& into = members[static_cast<std::size_t>(root)];
        auto& from = members[static_cast<std::size_t>(other)];
        into.insert(into.end(), from.begin(), from.end());
        from.clear();
    }
    std::vector<int> group(n);
    for (std::size_t e = 0; e < n; ++e)
        group[e] = groups.find(static_cast<int>(e));
    return group;
}

double quantile(std::vector<double> values, double q) {
    if (values.empty())
        return 0;
    const auto k = static_cast<std::size_t>(std::floor(q * static_cast<double>(values.size() - 1)));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
    return values[k];
}

} // namespace spikeline::sort
