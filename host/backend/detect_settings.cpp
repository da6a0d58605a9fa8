#include "backend/detect_settings.hpp"

#include "dsp/filter_design.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

namespace spikeline {
namespace {

std::int32_t quantise_coefficient(double value) {
    const double scaled = std::round(value * (1 << HwConfig::coef_frac_bits));
    const double limit = std::ldexp(1.0, HwConfig::coef_bits - 1);
    require(scaled > -limit && scaled < limit,
            "filter coefficient " + std::to_string(value) +
                " does not fit the hardware's Q2.14 format (16 bits): choose band edges "
                "further from 0 and from the Nyquist frequency");
    return static_cast<std::int32_t>(scaled);
}

std::int32_t samples(double ms, double sample_rate) {
    return static_cast<std::int32_t>(std::lround(ms * sample_rate / 1000.0));
}

// Per group: declared when the window holds more candidates than both artifact_fraction of the group and 1.5 x the
// contacts within artifact_reach_um of its most surrounded contact. One spike can cross all of those, and two
// coincident ones more: on a simulated 128-contact shank (2 columns, 20 um rows: 30 contacts within 150 um) ordinary
// activity reached 33 crossings within 0.3 ms once in 20 s (seed 7), which a limit of 30 or 32 took for an artefact.
void set_artifact_params(const DetectSettings& settings, const probe::Probe& probe, double sample_rate,
                         const std::vector<int>& members, HwParams& params) {
    if (!settings.artifact_rejection)
        return;
    require(settings.artifact_fraction > 0 && settings.artifact_fraction <= 1,
            "--artifact-fraction must be above 0 and at most 1 (got " + std::to_string(settings.artifact_fraction) +
                ")");
    require(settings.artifact_blank_ms >= 0 && settings.artifact_reach_um >= 0,
            "artefact blanking and reach must not be negative");
    const std::int32_t window = std::max(1, samples(settings.artifact_window_ms, sample_rate));
    const std::int32_t window_limit = std::min(HwConfig::max_artifact_window, params.dedup_window + 1);
    require(window <= window_limit, "the artefact window of " + std::to_string(window) + " samples exceeds " +
                                        std::to_string(window_limit) + " (the de-duplication window + 1, at most " +
                                        std::to_string(HwConfig::max_artifact_window) +
                                        "): shorten --artifact-window-ms or lengthen --dedup-ms");
    params.artifact_window = window;
    params.artifact_blank = samples(settings.artifact_blank_ms, sample_rate);
    require(params.artifact_blank < 65536, "artefact blanking too long");
    const double reach2 = settings.artifact_reach_um * settings.artifact_reach_um;
    std::vector<int> within_reach(members.size(), 0);
    for (int a = 0; a < params.n_channels; ++a) {
        const int group = params.group_of[a];
        if (group < 0)
            continue;
        const auto& ca = probe.contacts[static_cast<std::size_t>(a)];
        int count = 0;
        for (int b = 0; b < params.n_channels; ++b) {
            const auto& cb = probe.contacts[static_cast<std::size_t>(b)];
            const double dx = ca.x_um - cb.x_um, dy = ca.y_um - cb.y_um;
            count += params.group_of[b] == group && dx * dx + dy * dy <= reach2;
        }
        auto& most = within_reach[static_cast<std::size_t>(group)];
        most = std::max(most, count);
    }
    for (std::size_t g = 0; g < members.size(); ++g) {
        const auto by_fraction = static_cast<int>(std::floor(settings.artifact_fraction * members[g]));
        params.artifact_limit[g] = std::max(by_fraction, within_reach[g] * 3 / 2);
    }
}

/// The spatial rule's gains and each channel's partners: the contacts of its reference group within spatial_reach x
/// the distance of its nearest one and within dedup_near_um (a spike's own reach: on a sparse array, 400 um apart, a
/// channel has none and the rule stays off for it), nearest first (ties by index), at most max_partners.
void set_spatial_params(const DetectSettings& settings, const probe::Probe& probe, const std::vector<int>& excluded,
                        HwParams& params) {
    require(settings.spatial_sigma >= 0 && settings.spatial_sigma < 30,
            "--spatial-threshold must be between 0 (off) and 30 sigma");
    require(settings.spatial_gate > 0 && settings.spatial_gate < 1, "--spatial-gate must be between 0 and 1");
    require(settings.spatial_reach >= 1 && settings.spatial_reach <= 3, "the spatial reach must be between 1 and 3");
    for (int ch = 0; ch < HwConfig::max_channels; ++ch)
        std::fill(std::begin(params.partners[ch]), std::end(params.partners[ch]), std::int16_t{-1});
    if (settings.spatial_sigma == 0)
        return;
    constexpr double scale = 1 << HwConfig::gain_frac_bits;
    params.spatial_gate_gain =
        static_cast<std::int32_t>(std::lround(settings.spatial_gate * settings.threshold_sigma / 0.6745 * scale));
    // n x + (sum of n partners) has n^2 + n times one channel's noise variance when the contacts' noises are alike.
    for (int n = 1; n <= HwConfig::max_partners; ++n)
        params.spatial_gain[n - 1] =
            static_cast<std::int32_t>(std::lround(settings.spatial_sigma * std::sqrt(n * n + n) / 0.6745 * scale));
    std::vector<std::pair<double, int>> candidates;
    for (int ch = 0; ch < params.n_channels; ++ch) {
        if (std::binary_search(excluded.begin(), excluded.end(), ch))
            continue;
        candidates.clear();
        for (int other = 0; other < params.n_channels; ++other)
            if (other != ch && params.group_of[other] == params.group_of[ch] &&
                probe.contacts[static_cast<std::size_t>(other)].shank ==
                    probe.contacts[static_cast<std::size_t>(ch)].shank &&
                !std::binary_search(excluded.begin(), excluded.end(), other))
                candidates.emplace_back(probe.distance_um(ch, other), other);
        std::sort(candidates.begin(), candidates.end());
        for (std::size_t k = 0; k < candidates.size() && k < HwConfig::max_partners; ++k) {
            if (candidates[k].first > settings.spatial_reach * candidates[0].first + 1e-6 ||
                candidates[k].first > settings.dedup_near_um + 1e-6)
                break;
            params.partners[ch][k] = static_cast<std::int16_t>(candidates[k].second);
        }
    }
}

} // namespace

hw::Polarity parse_polarity(const std::string& text) {
    if (text == "negative")
        return hw::Polarity::negative;
    if (text == "positive")
        return hw::Polarity::positive;
    if (text == "both")
        return hw::Polarity::both;
    throw InputError("unknown polarity '" + text + "': use negative, positive or both");
}

std::string to_string(hw::Polarity polarity) {
    switch (polarity) {
    case hw::Polarity::negative:
        return "negative";
    case hw::Polarity::positive:
        return "positive";
    case hw::Polarity::both:
        return "both";
    }
    return "negative";
}

std::unique_ptr<HwParams> make_detect_params(const DetectSettings& settings, const probe::Probe& probe,
                                             double sample_rate) {
    const int n_channels = probe.n_channels();
    require(n_channels > 0 && n_channels <= HwConfig::max_channels, "the probe has " + std::to_string(n_channels) +
                                                                        " channels; the detector supports 1 to " +
                                                                        std::to_string(HwConfig::max_channels) +
                                                                        " (detect and sort take a part of a larger "
                                                                        "probe with --shanks or --channels-subset)");
    require(settings.threshold_sigma > 0 && settings.threshold_sigma / 0.6745 < 15.99,
            "threshold must be between 0 and 10.7 sigma (got " + std::to_string(settings.threshold_sigma) + ")");
    auto params = std::make_unique<HwParams>();
    params->n_channels = n_channels;

    const auto sections = dsp::design_bandpass(sample_rate, settings.band_low_hz, settings.band_high_hz);
    for (int k = 0; k < HwConfig::n_sections; ++k) {
        const dsp::Biquad& s = sections[static_cast<std::size_t>(k)];
        // The hardware section is gain * (1, middle, 1): the Butterworth numerators have exactly that shape.
        const double middle = HwConfig::numerator_middle(k);
        if (std::abs(s.b1 - middle * s.b0) > 1e-12 || std::abs(s.b2 - s.b0) > 1e-12)
            throw std::logic_error("band-pass design does not have the numerator shape the hardware expects");
        params->sections[k] = {quantise_coefficient(s.b0), quantise_coefficient(s.a1), quantise_coefficient(s.a2)};
    }

    // Reference groups: one per shank, numbered in order of first appearance; excluded channels are in none.
    const std::vector<int> excluded = excluded_channels(settings, probe);
    std::map<int, int> group_of_shank;
    std::vector<int> members;
    for (int ch = 0; ch < n_channels; ++ch) {
        if (!settings.common_reference || std::binary_search(excluded.begin(), excluded.end(), ch)) {
            params->group_of[ch] = -1;
            continue;
        }
        const int shank = probe.contacts[static_cast<std::size_t>(ch)].shank;
        auto [it, inserted] = group_of_shank.emplace(shank, static_cast<int>(group_of_shank.size()));
        if (inserted)
            members.push_back(0);
        ++members[static_cast<std::size_t>(it->second)];
        params->group_of[ch] = static_cast<std::int16_t>(it->second);
    }
    require(static_cast<int>(members.size()) <= HwConfig::max_groups,
            "the probe has " + std::to_string(members.size()) + " shanks; the common reference supports at most " +
                std::to_string(HwConfig::max_groups));
    for (std::size_t g = 0; g < members.size(); ++g)
        params->group_inverse_size[g] = static_cast<std::int32_t>(std::lround(65536.0 / members[g]));

    require(settings.reference_clip >= 0 && settings.reference_clip <= 100,
            "--reference-clip must be between 0 (the plain mean) and 100 times the noise's median |x|");
    params->reference_clip_gain =
        static_cast<std::int32_t>(std::lround(settings.reference_clip * (1 << HwConfig::gain_frac_bits)));
    params->threshold_gain =
        static_cast<std::int32_t>(std::lround(settings.threshold_sigma / 0.6745 * (1 << HwConfig::gain_frac_bits)));
    params->polarity = settings.polarity;
    params->align_window = std::max(1, samples(settings.align_ms, sample_rate));
    params->dead_time = samples(settings.dead_time_ms, sample_rate);
    require(settings.align_ms >= 0 && settings.dead_time_ms >= 0 && settings.dedup_ms >= 0 && settings.shadow_ms >= 0 &&
                settings.warmup_ms >= 0 && settings.dedup_radius_um >= 0 && settings.dedup_near_um >= 0,
            "time windows and radii must not be negative");
    require(settings.shadow_ratio >= 0 && settings.shadow_ratio <= 1, "--shadow-ratio must be between 0 and 1");
    params->dedup_window = samples(settings.dedup_ms, sample_rate);
    params->shadow_window = samples(settings.shadow_ms, sample_rate);
    params->shadow_ratio = static_cast<std::int32_t>(std::lround(settings.shadow_ratio * 256));
    params->warmup_frames = static_cast<std::uint32_t>(samples(settings.warmup_ms, sample_rate));
    // During the warm-up the noise estimates move 1/2 LSB per sample, so 100 ms reach a median |x| of 1500 LSB: a
    // broken channel (sigma up to ~2200 LSB, 430 uV at 0.195 uV/bit) settles before detection starts. With L1's
    // default of 1/4 LSB and 50 ms, a channel above ~550 LSB sigma kept a far too low threshold for seconds and fired
    // continuously (precision 0.30 on a 64-channel recording with one such channel, 0.92 now). A larger step would
    // reach further but leaves a coarser estimate for the slow step to refine (1 LSB: precision -0.6 %).
    params->noise_step_fast = 128;
    require(params->align_window <= HwConfig::max_align_window,
            "alignment window of " + std::to_string(params->align_window) + " samples exceeds the maximum of " +
                std::to_string(HwConfig::max_align_window));
    require(params->dedup_window <= HwConfig::max_dedup_window,
            "de-duplication window of " + std::to_string(params->dedup_window) + " samples exceeds the maximum of " +
                std::to_string(HwConfig::max_dedup_window));
    require(params->shadow_window <= HwConfig::max_shadow_window,
            "shadow window of " + std::to_string(params->shadow_window) + " samples exceeds the maximum of " +
                std::to_string(HwConfig::max_shadow_window));
    require(params->dead_time < 65536, "dead time too long");

    set_artifact_params(settings, probe, sample_rate, members, *params);

    set_spatial_params(settings, probe, excluded, *params);

    const auto neighbours = probe::neighbours_within(probe, settings.dedup_radius_um);
    const auto near = probe::neighbours_within(probe, settings.dedup_near_um);
    for (int ch = 0; ch < n_channels; ++ch) {
        const auto& list = neighbours[static_cast<std::size_t>(ch)];
        const auto& near_list = near[static_cast<std::size_t>(ch)];
        for (int k = 0; k < HwConfig::max_neighbours; ++k) {
            std::int16_t entry = -1;
            if (k < static_cast<int>(list.size())) {
                const int other = list[static_cast<std::size_t>(k)];
                const bool is_near = std::find(near_list.begin(), near_list.end(), other) != near_list.end();
                entry = static_cast<std::int16_t>(is_near ? other : other | hw::kFarNeighbour);
            }
            params->neighbours[ch][k] = entry;
        }
    }
    return params;
}

DetectSettings sorting_detect_settings() {
    DetectSettings settings;
    settings.threshold_sigma = 4.75;
    settings.spatial_sigma = 0;
    return settings;
}

std::vector<int> excluded_channels(const DetectSettings& settings, const probe::Probe& probe) {
    std::vector<int> channels = settings.excluded_channels;
    for (int channel : channels)
        require(channel >= 0 && channel < probe.n_channels(),
                "--exclude-channels names channel " + std::to_string(channel) + " but the probe has channels 0.." +
                    std::to_string(probe.n_channels() - 1));
    for (int ch = 0; ch < probe.n_channels(); ++ch)
        if (probe.contacts[static_cast<std::size_t>(ch)].excluded)
            channels.push_back(ch);
    std::sort(channels.begin(), channels.end());
    channels.erase(std::unique(channels.begin(), channels.end()), channels.end());
    return channels;
}

nlohmann::json to_json(const DetectSettings& s) {
    nlohmann::json j = {{"band_low_hz", s.band_low_hz},
                        {"band_high_hz", s.band_high_hz},
                        {"threshold_sigma", s.threshold_sigma},
                        {"polarity", to_string(s.polarity)},
                        {"align_ms", s.align_ms},
                        {"dead_time_ms", s.dead_time_ms},
                        {"dedup_ms", s.dedup_ms},
                        {"dedup_radius_um", s.dedup_radius_um},
                        {"dedup_near_um", s.dedup_near_um},
                        {"shadow_ms", s.shadow_ms},
                        {"shadow_ratio", s.shadow_ratio},
                        {"warmup_ms", s.warmup_ms},
                        {"common_reference", s.common_reference},
                        {"artifact_rejection", s.artifact_rejection}};
    if (s.common_reference && s.reference_clip != 0) // absent: the plain mean, as in files written before the clip
        j["reference_clip"] = s.reference_clip;
    if (s.artifact_rejection) {
        j["artifact_fraction"] = s.artifact_fraction;
        j["artifact_window_ms"] = s.artifact_window_ms;
        j["artifact_blank_ms"] = s.artifact_blank_ms;
        j["artifact_reach_um"] = s.artifact_reach_um;
    }
    // Only when set, so that sorter files written without them still match.
    if (s.spatial_sigma != 0) {
        j["spatial_sigma"] = s.spatial_sigma;
        j["spatial_gate"] = s.spatial_gate;
        j["spatial_reach"] = s.spatial_reach;
    }
    if (!s.excluded_channels.empty())
        j["excluded_channels"] = s.excluded_channels;
    return j;
}

} // namespace spikeline
