#include "motion/motion_estimator.hpp"

#include "util/errors.hpp"
#include "util/threads.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace spikeline::motion {
namespace {

constexpr int kAmplitudeBins = 10;
constexpr double kAmplitudeFloor = 1000; ///< Q4 LSB: about 1.2 noise sigma at Intan-like gains; bins are relative

/// Spikes of very different sizes at one depth are different units: histogram them apart (half-octave bins).
int amplitude_bin(double amplitude) {
    if (amplitude <= kAmplitudeFloor)
        return 0;
    return std::clamp(static_cast<int>(1.5 * std::log2(amplitude / kAmplitudeFloor)), 0, kAmplitudeBins - 1);
}

void smooth_rows(std::vector<double>& histogram, int n_bins, double sigma_bins) {
    if (sigma_bins <= 0)
        return;
    const int radius = static_cast<int>(std::ceil(3 * sigma_bins));
    std::vector<double> kernel(static_cast<std::size_t>(2 * radius + 1));
    for (int i = -radius; i <= radius; ++i)
        kernel[static_cast<std::size_t>(i + radius)] = std::exp(-0.5 * i * i / (sigma_bins * sigma_bins));
    std::vector<double> row(static_cast<std::size_t>(n_bins));
    for (int a = 0; a < kAmplitudeBins; ++a) {
        double* h = &histogram[static_cast<std::size_t>(a * n_bins)];
        for (int y = 0; y < n_bins; ++y) {
            double sum = 0;
            for (int i = std::max(-radius, -y); i <= radius && y + i < n_bins; ++i)
                sum += kernel[static_cast<std::size_t>(i + radius)] * h[y + i];
            row[static_cast<std::size_t>(y)] = sum;
        }
        std::copy(row.begin(), row.end(), h);
    }
}

/// Where each amplitude row of a histogram holds something: [begin, end) per row.
std::vector<std::pair<int, int>> row_spans(const std::vector<double>& histogram, int n_bins) {
    std::vector<std::pair<int, int>> spans(kAmplitudeBins, {0, 0});
    for (int a = 0; a < kAmplitudeBins; ++a) {
        const double* h = &histogram[static_cast<std::size_t>(a * n_bins)];
        int begin = 0, end = n_bins;
        while (begin < end && h[begin] < 1e-9)
            ++begin;
        while (end > begin && h[end - 1] < 1e-9)
            --end;
        spans[static_cast<std::size_t>(a)] = {begin, end};
    }
    return spans;
}

/// sum over amplitude bins and depths y of reference(y) * window(y + shift), where the reference holds something.
double correlation(const std::vector<double>& reference, const std::vector<std::pair<int, int>>& spans,
                   const std::vector<double>& window, int n_bins, int shift) {
    double sum = 0;
    for (int a = 0; a < kAmplitudeBins; ++a) {
        const double* r = &reference[static_cast<std::size_t>(a * n_bins)];
        const double* w = &window[static_cast<std::size_t>(a * n_bins)];
        const int begin = std::max({0, -shift, spans[static_cast<std::size_t>(a)].first});
        const int end = std::min({n_bins, n_bins - shift, spans[static_cast<std::size_t>(a)].second});
        for (int y = begin; y < end; ++y)
            sum += r[y] * w[y + shift];
    }
    return sum;
}

/// The shift lo + i of the largest scores[i], refined to a fraction of a bin by a parabola through the peak and its
/// neighbours. Returns false when nothing correlates.
bool peak_shift(const std::vector<double>& scores, int lo, double& shift) {
    const auto best = static_cast<int>(std::max_element(scores.begin(), scores.end()) - scores.begin());
    if (scores[static_cast<std::size_t>(best)] <= 0)
        return false;
    double offset = 0;
    if (best > 0 && best + 1 < static_cast<int>(scores.size())) {
        const double left = scores[static_cast<std::size_t>(best - 1)], mid = scores[static_cast<std::size_t>(best)],
                     right = scores[static_cast<std::size_t>(best + 1)];
        const double curvature = left - 2 * mid + right;
        if (curvature < 0)
            offset = std::clamp(0.5 * (left - right) / curvature, -0.5, 0.5);
    }
    shift = lo + best + offset;
    return true;
}

/// The shift in [lo, hi] (bins) with the largest correlation (see correlation()).
bool best_shift(const std::vector<double>& reference, const std::vector<std::pair<int, int>>& spans,
                const std::vector<double>& window, int n_bins, int lo, int hi, double& shift) {
    std::vector<double> scores;
    for (int s = lo; s <= hi; ++s)
        scores.push_back(correlation(reference, spans, window, n_bins, s));
    return peak_shift(scores, lo, shift);
}

/// Where depth y lies between the blocks `ids` of one shank: linear between their depths, constant beyond.
MotionEstimator::BlockWeights weights_between(const std::vector<MotionBlock>& blocks, const std::vector<int>& ids,
                                              double y_um) {
    auto depth = [&](std::size_t i) { return blocks[static_cast<std::size_t>(ids[i])].depth_um; };
    if (ids.size() == 1 || y_um <= depth(0))
        return {ids.front(), ids.front(), 0};
    for (std::size_t i = 1; i < ids.size(); ++i)
        if (y_um <= depth(i))
            return {ids[i - 1], ids[i], (y_um - depth(i - 1)) / (depth(i) - depth(i - 1))};
    return {ids.back(), ids.back(), 0};
}

double interpolate(const std::vector<MotionBlock>& blocks, const std::vector<int>& ids,
                   const std::vector<double>& displacement, double y_um) {
    const MotionEstimator::BlockWeights w = weights_between(blocks, ids, y_um);
    return (1 - w.weight) * displacement[static_cast<std::size_t>(w.lower)] +
           w.weight * displacement[static_cast<std::size_t>(w.upper)];
}

} // namespace

/// Registers windows to the reference histograms, one shank after the other. Holds the state an estimate needs from
/// the previous ones; only the worker thread touches it.
class MotionEstimator::Registration {
public:
    struct ShankState {
        double y_min = 0;
        int n_bins = 0;
        std::vector<double> reference; ///< smoothed, n_amplitude_bins x n_bins; empty until the first window
        std::vector<int> blocks;
        std::vector<double> window_centres;
        double rigid = 0;               ///< the last rigid estimate, um
        std::vector<double> deviations; ///< per block, its last estimate less the rigid one, bins
    };

    Registration(const MotionSettings& settings, std::vector<ShankState> shanks, std::vector<MotionBlock> blocks)
        : settings_(settings), shanks_(std::move(shanks)), blocks_(std::move(blocks)) {
        current_.displacement.assign(blocks_.size(), 0.0);
    }

    /// windows: each shank's histogram of the window ending at time_s.
    std::pair<MotionEstimate, std::vector<MotionBlock>> estimate(double time_s,
                                                                 std::vector<std::vector<double>> windows);

private:
    /// The estimate at time_s from the window's (its centre's) displacements: moved on by the velocity, the slope of
    /// the last velocity_windows windows' displacements. Registration measures where the spikes of a whole window
    /// were, half a window behind its end: at 10 um/s that lag alone was 7.5 um.
    MotionEstimate extrapolated(double time_s);

    MotionSettings settings_;
    std::vector<ShankState> shanks_;
    std::vector<MotionBlock> blocks_;
    MotionEstimate current_;                         ///< as registered (the window's displacements)
    std::deque<std::vector<double>> recent_windows_; ///< the last velocity_windows registered displacements
};

MotionEstimator::MotionEstimator(const probe::Probe& probe, double sample_rate, const MotionSettings& settings)
    : probe_(probe), sample_rate_(sample_rate), settings_(settings) {
    require(settings.update_s > 0 && settings.apply_delay_s >= 0 && settings.window_s >= settings.update_s &&
                settings.bin_um > 0 && settings.max_shift_um > 0 && settings.block_um >= 0,
            "motion settings: need update > 0, window >= update, a depth bin > 0 and a maximum shift > 0");
    update_frames_ = static_cast<std::uint64_t>(std::llround(settings.update_s * sample_rate));
    apply_delay_frames_ = static_cast<std::uint64_t>(std::llround(settings.apply_delay_s * sample_rate));
    window_slices_ = std::max(1, static_cast<int>(std::lround(settings.window_s / settings.update_s)));
    next_update_ = update_frames_ * static_cast<std::uint64_t>(window_slices_);
    int max_shank = 0;
    for (const probe::Contact& c : probe.contacts)
        max_shank = std::max(max_shank, c.shank);
    shank_index_.assign(static_cast<std::size_t>(max_shank + 1), -1);
    for (int id = 0; id <= max_shank; ++id) {
        double lo = 1e300, hi = -1e300;
        for (const probe::Contact& c : probe.contacts)
            if (c.shank == id && !c.excluded) {
                lo = std::min(lo, c.y_um);
                hi = std::max(hi, c.y_um);
            }
        if (lo > hi)
            continue;
        shank_index_[static_cast<std::size_t>(id)] = static_cast<int>(shanks_.size());
        Shank shank;
        shank.y_min = lo - settings.max_shift_um;
        shank.n_bins = static_cast<int>(std::ceil((hi - lo + 2 * settings.max_shift_um) / settings.bin_um)) + 1;
        shank.slices.assign(static_cast<std::size_t>(window_slices_),
                            std::vector<double>(static_cast<std::size_t>(kAmplitudeBins * shank.n_bins), 0.0));
        const int n_blocks =
            settings.block_um > 0 && hi > lo ? static_cast<int>(std::ceil((hi - lo) / settings.block_um)) + 1 : 1;
        for (int b = 0; b < n_blocks; ++b) {
            shank.blocks.push_back(static_cast<int>(blocks_.size()));
            shank.window_centres.push_back(n_blocks == 1 ? (lo + hi) / 2 : lo + (hi - lo) * b / (n_blocks - 1));
            blocks_.push_back({id, shank.window_centres.back()});
        }
        shanks_.push_back(std::move(shank));
    }
    current_.displacement.assign(blocks_.size(), 0.0);
    std::vector<Registration::ShankState> states;
    for (const Shank& shank : shanks_)
        states.push_back({shank.y_min, shank.n_bins, {}, shank.blocks, shank.window_centres, 0.0, {}});
    registration_ = std::make_unique<Registration>(settings_, std::move(states), blocks_);
    worker_ = std::thread([this] {
        name_this_thread("sl-motion");
        make_thread_batch(); // a registration is due 0.1 s after it starts: no need to preempt the stream
        run_worker();
    });
}

MotionEstimator::~MotionEstimator() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    worker_.join();
}

void MotionEstimator::run_worker() {
    for (;;) {
        std::packaged_task<std::pair<MotionEstimate, std::vector<MotionBlock>>()> job;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
            if (jobs_.empty())
                return;
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        job();
    }
}

std::vector<MotionEstimate> MotionEstimator::add(const std::vector<SpikeEvent>& events,
                                                 const std::vector<SpikePosition>& positions, std::uint64_t up_to) {
    std::vector<MotionEstimate> made;
    if (replaying_) {
        for (; next_effect_ < effects_.size() && effects_[next_effect_].due <= up_to; ++next_effect_) {
            current_ = effects_[next_effect_].estimate;
            blocks_ = effects_[next_effect_].blocks;
            made.push_back(current_);
        }
        return made;
    }
    std::size_t i = 0;
    for (;;) {
        const std::uint64_t boundary = std::min(up_to, next_update_);
        for (; i < events.size() && events[i].sample < boundary; ++i) {
            const SpikePosition& p = positions[i];
            if (p.shank < 0 || p.shank >= static_cast<int>(shank_index_.size()) ||
                shank_index_[static_cast<std::size_t>(p.shank)] < 0)
                continue;
            Shank& shank = shanks_[static_cast<std::size_t>(shank_index_[static_cast<std::size_t>(p.shank)])];
            const int bin = static_cast<int>(std::floor((p.y_um - shank.y_min) / settings_.bin_um));
            if (bin >= 0 && bin < shank.n_bins)
                shank.slices[static_cast<std::size_t>(slice_)]
                            [static_cast<std::size_t>(amplitude_bin(p.amplitude) * shank.n_bins + bin)] += 1;
        }
        if (up_to < next_update_)
            break;
        std::vector<std::vector<double>> windows;
        for (const Shank& shank : shanks_)
            windows.push_back(window_histogram(shank));
        std::packaged_task<std::pair<MotionEstimate, std::vector<MotionBlock>>()> job(
            [this, time_s = static_cast<double>(next_update_) / sample_rate_, windows = std::move(windows)]() mutable {
                return registration_->estimate(time_s, std::move(windows));
            });
        pending_.push_back({next_update_ + apply_delay_frames_, job.get_future()});
        {
            std::lock_guard<std::mutex> lock(mutex_);
            jobs_.push_back(std::move(job));
        }
        wake_.notify_one();
        next_update_ += update_frames_;
        slice_ = (slice_ + 1) % window_slices_;
        for (Shank& shank : shanks_)
            std::fill(shank.slices[static_cast<std::size_t>(slice_)].begin(),
                      shank.slices[static_cast<std::size_t>(slice_)].end(), 0.0);
    }
    while (!pending_.empty() && pending_.front().due <= up_to) {
        std::tie(current_, blocks_) = pending_.front().result.get();
        if (recording_)
            effects_.push_back({pending_.front().due, current_, blocks_});
        pending_.pop_front();
        made.push_back(current_);
    }
    return made;
}

void MotionEstimator::replay(std::vector<MotionEffect> effects) {
    effects_ = std::move(effects);
    next_effect_ = 0;
    replaying_ = true;
}

std::vector<double> MotionEstimator::window_histogram(const Shank& shank) const {
    std::vector<double> sum(shank.slices.front().size(), 0.0);
    for (const auto& slice : shank.slices)
        for (std::size_t v = 0; v < sum.size(); ++v)
            sum[v] += slice[v];
    return sum;
}

std::pair<MotionEstimate, std::vector<MotionBlock>>
MotionEstimator::Registration::estimate(double time_s, std::vector<std::vector<double>> windows) {
    current_.time_s = time_s;
    for (std::size_t index = 0; index < shanks_.size(); ++index) {
        ShankState& shank = shanks_[index];
        std::vector<double>& window = windows[index];
        double count = 0;
        for (double v : window)
            count += v;
        if (count < settings_.min_spikes)
            continue; // too few spikes on this shank: its blocks hold their estimates
        smooth_rows(window, shank.n_bins, settings_.smooth_um / settings_.bin_um);
        if (shank.reference.empty()) {
            shank.reference = window; // the first full window defines displacement 0
            // A block measures where its window holds spikes: at the shank's ends that is inside the shank, not at
            // the window's centre. Its depth becomes the spike-weighted mean under its window.
            if (shank.blocks.size() > 1)
                for (std::size_t i = 0; i < shank.blocks.size(); ++i) {
                    MotionBlock& block = blocks_[static_cast<std::size_t>(shank.blocks[i])];
                    const double sigma = settings_.block_um / 2;
                    double sum = 0, weighted = 0;
                    for (int y = 0; y < shank.n_bins; ++y) {
                        const double depth = shank.y_min + (y + 0.5) * settings_.bin_um;
                        double spikes = 0;
                        for (int a = 0; a < kAmplitudeBins; ++a)
                            spikes += window[static_cast<std::size_t>(a * shank.n_bins + y)];
                        const double centre = shank.window_centres[i];
                        const double w = spikes * std::exp(-0.5 * std::pow((depth - centre) / sigma, 2));
                        sum += w;
                        weighted += w * depth;
                    }
                    if (sum > 0)
                        block.depth_um = weighted / sum;
                }
            continue;
        }
        const int max_shift = static_cast<int>(settings_.max_shift_um / settings_.bin_um);
        const std::vector<std::pair<int, int>> spans = row_spans(shank.reference, shank.n_bins);
        // Around the last estimate first (motion is mostly slow); the whole range when the best is at an edge.
        const int last = static_cast<int>(std::lround(shank.rigid / settings_.bin_um));
        const int near = static_cast<int>(std::ceil(settings_.search_um / settings_.bin_um));
        const int lo = std::max(-max_shift, last - near), hi = std::min(max_shift, last + near);
        double rigid = 0;
        if (!best_shift(shank.reference, spans, window, shank.n_bins, lo, hi, rigid))
            continue;
        if ((rigid <= lo + 0.5 && lo > -max_shift) || (rigid >= hi - 0.5 && hi < max_shift))
            if (!best_shift(shank.reference, spans, window, shank.n_bins, -max_shift, max_shift, rigid))
                continue;
        const double previous_rigid = shank.rigid / settings_.bin_um;
        shank.rigid = rigid * settings_.bin_um;
        if (shank.blocks.size() == 1) {
            current_.displacement[static_cast<std::size_t>(shank.blocks[0])] = shank.rigid;
        } else {
            // Each block searches around its own last estimate, and around that moved as the rigid estimate moved
            // (a step), keeping whichever correlates better: a deformation may grow beyond block_range_um from the
            // rigid estimate as long as it changes by less than that between two estimates, and a rigid estimate
            // that jumps to another peak of a strongly deformed shank's broad correlation does not take the blocks
            // with it. The depth-wise products of reference and window for each shift are shared by all blocks,
            // which only weight them differently.
            const std::size_t n = shank.blocks.size();
            shank.deviations.resize(n, 0.0);
            const int range = static_cast<int>(std::ceil(settings_.block_range_um / settings_.bin_um));
            auto around = [&](std::size_t i, double base) {
                return static_cast<int>(std::lround(base + shank.deviations[i]));
            };
            int first = max_shift, last_shift = -max_shift;
            for (std::size_t i = 0; i < n; ++i)
                for (double base : {previous_rigid, rigid}) {
                    first = std::min(first, std::max(-max_shift, around(i, base) - range));
                    last_shift = std::max(last_shift, std::min(max_shift, around(i, base) + range));
                }
            std::vector<std::vector<double>> products;
            for (int shift = first; shift <= last_shift; ++shift) {
                std::vector<double> product(static_cast<std::size_t>(shank.n_bins), 0.0);
                for (int a = 0; a < kAmplitudeBins; ++a) {
                    const double* r = &shank.reference[static_cast<std::size_t>(a * shank.n_bins)];
                    const double* w = &window[static_cast<std::size_t>(a * shank.n_bins)];
                    const int begin = std::max({0, -shift, spans[static_cast<std::size_t>(a)].first});
                    const int end =
                        std::min({shank.n_bins, shank.n_bins - shift, spans[static_cast<std::size_t>(a)].second});
                    for (int y = begin; y < end; ++y)
                        product[static_cast<std::size_t>(y)] += r[y] * w[y + shift];
                }
                products.push_back(std::move(product));
            }
            const double sigma = settings_.block_um / 2 / settings_.bin_um;
            std::vector<double> deviation(n, 0.0); // from the rigid estimate, bins
            for (std::size_t i = 0; i < n; ++i) {
                const double centre = (shank.window_centres[i] - shank.y_min) / settings_.bin_um;
                const int begin = std::max(0, static_cast<int>(std::floor(centre - 3 * sigma)));
                const int end = std::min(shank.n_bins, static_cast<int>(std::ceil(centre + 3 * sigma)));
                std::vector<double> weights;
                for (int y = begin; y < end; ++y)
                    weights.push_back(std::exp(-0.5 * std::pow((y - centre) / sigma, 2)));
                double shift = rigid, best_score = 0;
                for (double base : {previous_rigid, rigid}) {
                    if (base == rigid && around(i, rigid) == around(i, previous_rigid))
                        continue; // the same window (a still rigid estimate): scored already
                    const int from = std::max(-max_shift, around(i, base) - range);
                    const int to = std::min(max_shift, around(i, base) + range);
                    std::vector<double> scores(static_cast<std::size_t>(to - from + 1), 0.0);
                    for (int y = begin; y < end; ++y)
                        for (int k = from; k <= to; ++k)
                            scores[static_cast<std::size_t>(k - from)] +=
                                weights[static_cast<std::size_t>(y - begin)] *
                                products[static_cast<std::size_t>(k - first)][static_cast<std::size_t>(y)];
                    const double score = *std::max_element(scores.begin(), scores.end());
                    double found = 0;
                    if (score > best_score && peak_shift(scores, from, found)) {
                        best_score = score;
                        shift = found;
                    }
                }
                deviation[i] = shift - rigid;
            }
            // Tissue deforms smoothly along the shank: a block that disagrees with its neighbours locked onto a
            // wrong peak (a 3-block median). An end block has one neighbour: its third value is the line through
            // the next two blocks, extended to it, so that a deformation growing along the shank keeps its ends.
            auto depth = [&](std::size_t i) { return blocks_[static_cast<std::size_t>(shank.blocks[i])].depth_um; };
            auto extended = [&](std::size_t inner, std::size_t outer, std::size_t end) {
                const double span = depth(inner) - depth(outer);
                return span == 0 ? deviation[inner]
                                 : deviation[inner] +
                                       (deviation[inner] - deviation[outer]) * (depth(end) - depth(inner)) / span;
            };
            for (std::size_t i = 0; i < n; ++i) {
                double d = deviation[i];
                if (n >= 3) {
                    double three[3] = {deviation[i], 0, 0};
                    if (i == 0) {
                        three[1] = deviation[1];
                        three[2] = extended(1, 2, 0);
                    } else if (i == n - 1) {
                        three[1] = deviation[n - 2];
                        three[2] = extended(n - 2, n - 3, n - 1);
                    } else {
                        three[1] = deviation[i - 1];
                        three[2] = deviation[i + 1];
                    }
                    std::sort(three, three + 3);
                    d = three[1];
                }
                current_.displacement[static_cast<std::size_t>(shank.blocks[i])] = (rigid + d) * settings_.bin_um;
                shank.deviations[i] = d;
            }
        }
        // Follow slow changes of the population (units appearing, fading): mix the window, moved back by the
        // estimate at each depth, into the reference.
        const double rate = settings_.reference_rate;
        std::vector<double> back(static_cast<std::size_t>(shank.n_bins));
        for (int y = 0; y < shank.n_bins; ++y)
            back[static_cast<std::size_t>(y)] =
                interpolate(blocks_, shank.blocks, current_.displacement, shank.y_min + (y + 0.5) * settings_.bin_um) /
                settings_.bin_um;
        for (int a = 0; a < kAmplitudeBins; ++a)
            for (int y = 0; y < shank.n_bins; ++y) {
                const double from = y + back[static_cast<std::size_t>(y)];
                const int y0 = static_cast<int>(std::floor(from));
                const double frac = from - y0;
                auto at = [&](int yy) {
                    return yy >= 0 && yy < shank.n_bins ? window[static_cast<std::size_t>(a * shank.n_bins + yy)] : 0.0;
                };
                double& r = shank.reference[static_cast<std::size_t>(a * shank.n_bins + y)];
                r = (1 - rate) * r + rate * ((1 - frac) * at(y0) + frac * at(y0 + 1));
            }
    }
    return {extrapolated(time_s), blocks_};
}

MotionEstimate MotionEstimator::Registration::extrapolated(double time_s) {
    MotionEstimate out = current_;
    out.time_s = time_s;
    out.measured = current_.displacement;
    out.velocity.assign(current_.displacement.size(), 0.0);
    const auto n = static_cast<std::size_t>(std::max(0, settings_.velocity_windows));
    recent_windows_.push_back(current_.displacement);
    while (recent_windows_.size() > n)
        recent_windows_.pop_front();
    if (recent_windows_.size() < 3 || n < 3)
        return out; // too few windows for a slope: the window's displacement stands
    // Least-squares slope of windows [first, last) of recent_windows_, update_s apart, for block b.
    auto slope = [&](std::size_t first, std::size_t last, std::size_t b) {
        const double k = static_cast<double>(last - first);
        double sum_tt = 0, sum_ty = 0;
        for (std::size_t w = first; w < last; ++w) {
            const double t = (static_cast<double>(w - first) - (k - 1) / 2) * settings_.update_s;
            sum_tt += t * t;
            sum_ty += t * recent_windows_[w][b];
        }
        return sum_ty / sum_tt;
    };
    const std::size_t m = recent_windows_.size(), half = (m + 1) / 2;
    for (std::size_t b = 0; b < out.displacement.size(); ++b) {
        double v = slope(0, m, b);
        // Only a motion both halves of the span agree on: a step (one half still) or a reversal (halves opposed)
        // would otherwise be carried on past where the tissue is. Then the smallest of the three slopes.
        if (m >= 5) {
            const double early = slope(0, half + 1, b), late = slope(m - half - 1, m, b);
            // But where both halves clearly move, in opposite directions, the tissue has turned: the late half's.
            const double turn = settings_.reversal_um_per_s;
            if (turn > 0 && (early > 0) != (late > 0) && std::abs(early) > turn && std::abs(late) > turn)
                v = late;
            else if ((early > 0) != (late > 0) || (v > 0) != (late > 0))
                v = 0;
            else
                v = (v > 0 ? 1 : -1) * std::min({std::abs(v), std::abs(early), std::abs(late)});
        }
        // Shrunk when small: a still probe's slope is noise (about 0.3 um/s here), which would only jitter units.
        const double scale = settings_.velocity_scale;
        out.velocity[b] = scale > 0 ? v * v * v / (v * v + scale * scale) : v;
        out.displacement[b] += out.velocity[b] * settings_.window_s / 2;
    }
    return out;
}

MotionEstimator::BlockWeights MotionEstimator::block_weights(int shank_id, double y_um) const {
    if (shank_id < 0 || shank_id >= static_cast<int>(shank_index_.size()) ||
        shank_index_[static_cast<std::size_t>(shank_id)] < 0)
        return {};
    return weights_between(
        blocks_, shanks_[static_cast<std::size_t>(shank_index_[static_cast<std::size_t>(shank_id)])].blocks, y_um);
}

double MotionEstimator::displacement_at(int shank_id, double y_um) const {
    if (shank_id < 0 || shank_id >= static_cast<int>(shank_index_.size()) ||
        shank_index_[static_cast<std::size_t>(shank_id)] < 0)
        return 0;
    const Shank& shank = shanks_[static_cast<std::size_t>(shank_index_[static_cast<std::size_t>(shank_id)])];
    const double ahead_s = settings_.apply_delay_s + settings_.update_s / 2;
    return interpolate(blocks_, shank.blocks, current_.displacement, y_um) +
           (current_.velocity.empty() ? 0.0 : ahead_s * interpolate(blocks_, shank.blocks, current_.velocity, y_um));
}

} // namespace spikeline::motion
