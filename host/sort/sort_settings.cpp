#include "sort/sort_settings.hpp"

#include "util/errors.hpp"

#include <cmath>

namespace spikeline::sort {

std::shared_ptr<HwSortParams> make_sort_params(const SortSettings& settings, const probe::Probe& probe,
                                               double sample_rate, const HwParams& detect) {
    require(probe.n_channels() <= HwSortConfig::max_channels,
            "the sorter is built for at most " + std::to_string(HwSortConfig::max_channels) + " channels");
    require(std::isfinite(settings.pre_ms) && settings.pre_ms >= 0 && std::isfinite(settings.post_ms) &&
                settings.post_ms > 0,
            "--snippet-pre-ms must be >= 0 and --snippet-post-ms > 0");
    auto params = std::make_shared<HwSortParams>();
    params->n_channels = probe.n_channels();
    params->pre = static_cast<int>(std::lround(settings.pre_ms * sample_rate / 1000.0));
    params->post = static_cast<int>(std::lround(settings.post_ms * sample_rate / 1000.0));
    require(params->post >= 1, "--snippet-post-ms is shorter than one sample");
    require(params->pre + 1 + params->post <= HwSortConfig::max_snippet_samples,
            "the snippet (" + std::to_string(params->pre + 1 + params->post) + " samples) exceeds the " +
                std::to_string(HwSortConfig::max_snippet_samples) + " samples the sorter holds: shorten it");
    const int detect_latency = detect.dedup_window + detect.align_window - 1;
    require(params->pre + std::max(params->post, detect_latency) + params->post < HwSortConfig::ring_frames,
            "the snippet window and the detection latency together exceed the sorter's ring of " +
                std::to_string(HwSortConfig::ring_frames) + " frames: shorten the snippet or the de-duplication");
    require(settings.calibration_s > 0, "--calibration-s must be positive");
    require(settings.recalibrate_every_s >= 0, "--recalibrate-every must be >= 0 (0: off)");
    require(settings.min_cluster_spikes >= 3, "--min-cluster-spikes must be at least 3");

    // Nearest contacts of the same shank; 200 um is far beyond any snippet on dense probes.
    const auto neighbours = probe::neighbours_within(probe, 200.0);
    for (int ch = 0; ch < params->n_channels; ++ch) {
        params->snippet_channels[ch][0] = static_cast<std::int16_t>(ch);
        for (int k = 1; k < HwSortConfig::snippet_channels; ++k) {
            const auto& list = neighbours[static_cast<std::size_t>(ch)];
            params->snippet_channels[ch][k] =
                static_cast<std::size_t>(k - 1) < list.size() ? static_cast<std::int16_t>(list[k - 1]) : -1;
        }
    }
    return params;
}

nlohmann::json to_json(const SortSettings& s) {
    return {{"snippet_pre_ms", s.pre_ms},
            {"snippet_post_ms", s.post_ms},
            {"calibration_s", s.calibration_s},
            {"recalibrate_every_s", s.recalibrate_every_s},
            {"min_cluster_spikes", s.min_cluster_spikes},
            {"split_dip", s.split_dip},
            {"merge_distance", s.merge_distance},
            {"merge_candidate_distance", s.merge_candidate_distance},
            {"gate_scale", s.gate_scale},
            {"id_match_distance", s.id_match_distance},
            {"motion", s.motion},
            {"keep_learning", s.keep_learning},
            {"relearn_all", s.relearn_all},
            {"split_off_distance", s.split_off_distance},
            {"register_from_um", s.register_from_um},
            {"burst_follow_share", s.burst_follow_share},
            {"burst_shape_distance", s.burst_shape_distance},
            {"moved_merge_distance", s.moved_merge_distance},
            {"snippet_channels", HwSortConfig::snippet_channels},
            {"n_features", HwSortConfig::n_features}};
}

} // namespace spikeline::sort
