#pragma once
// The clustering primitives of calibration: a split test by density dip, the split of one channel's spikes into
// clusters, the one-cloud test of two clusters seen on shared channels, and small helpers.
#include "backend/backend.hpp"
#include "sort/sort_settings.hpp"

#include <numeric>
#include <set>
#include <utility>
#include <vector>

#include <Eigen/Dense>

namespace spikeline::sort {

/// Features of spikes, one row per spike, row-major: the clustering reads whole rows.
using FeatureMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// How deep the valley between two groups of points (rows of x) is: counts points in windows of a quarter of the
/// distance between the two means, at each mean and at the midpoint, along the axis joining the means, and returns
/// the midpoint's count (plus two Poisson standard deviations) over the smaller mean's count. A unimodal cloud has
/// its densest window in the middle (ratio above 1), two clusters a valley there.
double dip_ratio(const FeatureMatrix& x, const std::vector<int>& a, const std::vector<int>& b);
/// dip_ratio below split_dip: the valley is deep enough to be two clusters.
bool has_dip(const FeatureMatrix& x, const std::vector<int>& a, const std::vector<int>& b, double split_dip);

/// Whether the spikes of two clusters peaking on different channels form one cloud in the features of the channels
/// both their snippets cover.
bool one_cloud(const HwSortParams& params, const FeatureMatrix& features, int channel_a,
               const std::vector<int>& members_a, int channel_b, const std::vector<int>& members_b, double split_dip);

/// Splits a set of feature vectors (rows of features) while a split is real: 2-means from several starts, keeping the
/// split with the deepest density dip along the axis joining its two means (ISO-SPLIT's idea with a window count test
/// instead of isotonic regression).
std::vector<std::vector<int>> split_clusters(const FeatureMatrix& features, std::vector<int> members,
                                             const SortSettings& settings);

/// Two entries that may share a unit, at this template distance.
struct EntryLink {
    double distance;
    int a, b;
};

/// Groups n entries through links, closest first (ties by entry index), skipping a link that would put two entries
/// listed in kept_apart (pairs a < b) into one group: single linkage that cannot chain through small entries across
/// a split. Returns each entry's group as the smallest entry index in it.
std::vector<int> group_entries(std::size_t n, std::vector<EntryLink> links,
                               const std::set<std::pair<int, int>>& kept_apart);

/// The q-quantile (0..1) of values, lower element.
double quantile(std::vector<double> values, double q);

struct UnionFind {
    explicit UnionFind(std::size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
    int find(int i) {
        return parent[static_cast<std::size_t>(i)] == i
                   ? i
                   : parent[static_cast<std::size_t>(i)] = find(parent[static_cast<std::size_t>(i)]);
    }
    void join(int a, int b) {
        a = find(a);
        b = find(b);
        if (a != b)
            parent[static_cast<std::size_t>(std::max(a, b))] = std::min(a, b);
    }
    std::vector<int> parent;
};

} // namespace spikeline::sort
