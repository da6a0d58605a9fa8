#include "detect_core_sim.hpp"

#include <algorithm>

namespace spikeline::rtl {

std::unique_ptr<DetectCoreSim> make_core_64(const SimOptions& options);
std::unique_ptr<DetectCoreSim> make_core_1024(const SimOptions& options);

namespace {

bool fits_signed(std::int64_t value, int bits) {
    return value >= -(std::int64_t{1} << (bits - 1)) && value < (std::int64_t{1} << (bits - 1));
}

bool within(std::int64_t value, std::int64_t low, std::int64_t high) {
    return value >= low && value <= high;
}

} // namespace

std::vector<int> available_core_sizes() {
    return {64, 1024};
}

std::string params_problem(const CoreParams& p, int max_channels) {
    if (p.n_channels < 1 || p.n_channels > max_channels)
        return std::to_string(p.n_channels) + " channels do not fit the verilated core's " +
               std::to_string(max_channels);
    for (int k = 0; k < hw::DetectConfig::n_sections; ++k)
        if (!fits_signed(p.sections[k].gain, 16) || !fits_signed(p.sections[k].a1, 16) ||
            !fits_signed(p.sections[k].a2, 16))
            return "band-pass coefficients exceed the core's signed 16-bit registers";
    constexpr std::int64_t noise_max = (1 << 23) - 1;
    if (!within(p.noise_step_fast, 0, noise_max) || !within(p.noise_step_slow, 0, noise_max) ||
        !within(p.noise_initial, 0, noise_max))
        return "noise tracker steps and initial value must lie in [0, 2^23 - 1] for the core";
    if (!within(p.threshold_gain, 0, 65535))
        return "threshold gain exceeds the core's 16-bit register";
    if (!within(static_cast<int>(p.polarity), 0, 2))
        return "unknown polarity";
    if (!within(p.align_window, 1, hw::DetectConfig::max_align_window) || !within(p.dead_time, 0, 65535) ||
        !within(p.dedup_window, 0, hw::DetectConfig::max_dedup_window) ||
        !within(p.shadow_window, 0, hw::DetectConfig::max_shadow_window) || !within(p.shadow_ratio, 0, 256))
        return "alignment, dead time, de-duplication or shadow settings exceed the core's registers";
    if (!within(p.artifact_window, 0, hw::DetectConfig::max_artifact_window) || !within(p.artifact_blank, 0, 65535))
        return "artefact window or blanking exceed the core's registers";
    for (int g = 0; g < hw::DetectConfig::max_groups; ++g)
        if (!within(p.artifact_limit[g], 0, 65535))
            return "the artefact limit of group " + std::to_string(g) + " exceeds the core's 16-bit register";
    for (int ch = 0; ch < p.n_channels; ++ch) {
        const int group = p.group_of[ch];
        if (group >= hw::DetectConfig::max_groups || group < -128)
            return "channel " + std::to_string(ch) + " has reference group " + std::to_string(group) +
                   " outside the core's " + std::to_string(hw::DetectConfig::max_groups) + " groups";
        if (group >= 0 && !within(p.group_inverse_size[group], 0, 65536))
            return "reference group " + std::to_string(group) + " has an inverse size beyond 2^16";
    }
    if (!within(p.reference_clip_gain, 0, 65535))
        return "the common reference's clip gain exceeds the core's 16-bit register";
    if (!within(p.spatial_gate_gain, 0, 65535))
        return "the spatial rule's gate gain exceeds the core's 16-bit register";
    for (int k = 0; k < hw::DetectConfig::max_partners; ++k)
        if (!within(p.spatial_gain[k], 0, 65535))
            return "the spatial rule's gain exceeds the core's 16-bit register";
    // The core references a partner's sample with its channel's group mean: partners share the group.
    for (int ch = 0; ch < p.n_channels && p.spatial_gate_gain != 0; ++ch)
        for (int k = 0; k < hw::DetectConfig::max_partners && p.partners[ch][k] >= 0; ++k)
            if (p.partners[ch][k] >= p.n_channels || p.group_of[p.partners[ch][k]] != p.group_of[ch])
                return "channel " + std::to_string(ch) + "'s spatial partner " + std::to_string(p.partners[ch][k]) +
                       " is not a channel of its reference group";
    return {};
}

std::string sort_params_problem(const StageParams& p, int n_channels) {
    if (p.n_channels != n_channels)
        return "the sorting parameters are for " + std::to_string(p.n_channels) + " channels, the core runs " +
               std::to_string(n_channels);
    if (p.pre < 0 || p.post < 0 || p.pre + 1 + p.post > hw::SortConfig::max_snippet_samples)
        return "snippet window pre " + std::to_string(p.pre) + ", post " + std::to_string(p.post) +
               " exceeds the stage's " + std::to_string(hw::SortConfig::max_snippet_samples) + " samples";
    for (int ch = 0; ch < n_channels; ++ch) {
        if (p.n_entries[ch] > hw::SortConfig::max_entries)
            return "channel " + std::to_string(ch) + " has more than " + std::to_string(hw::SortConfig::max_entries) +
                   " classifier entries";
        for (int k = 0; k < hw::SortConfig::snippet_channels; ++k)
            if (p.snippet_channels[ch][k] >= n_channels)
                return "snippet channel " + std::to_string(p.snippet_channels[ch][k]) + " of channel " +
                       std::to_string(ch) + " is outside the recording";
    }
    return {};
}

std::unique_ptr<DetectCoreSim> make_detect_core_sim(const CoreParams& params, const SimOptions& options,
                                                    int min_channels) {
    const int needed = std::max(params.n_channels, min_channels);
    const int largest = available_core_sizes().back();
    if (needed > largest)
        throw UnsupportedParams("the recording has " + std::to_string(params.n_channels) +
                                " channels; the largest verilated core holds " + std::to_string(largest));
    std::unique_ptr<DetectCoreSim> core = needed <= 64 ? make_core_64(options) : make_core_1024(options);
    core->configure(params);
    return core;
}

} // namespace spikeline::rtl
