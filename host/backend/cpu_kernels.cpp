#include "backend/cpu_kernels.hpp"

namespace spikeline::cpu {

bool reference_and_flag(hw::DetectorState<HwConfig>& state, const HwParams& params, const ChannelRun& run,
                        std::int32_t mean, std::uint64_t frame, const std::int32_t* filtered,
                        std::int32_t* referenced) {
    const bool warm = frame >= params.warmup_frames;
    return reference_and_flag_loop(
        filtered, referenced, state.noise, state.hold, state.searching, state.attention, run.begin, run.end,
        run.group >= 0 ? mean : 0, warm ? params.noise_step_slow : params.noise_step_fast, params.threshold_gain,
        warm && params.polarity != hw::Polarity::positive, warm && params.polarity != hw::Polarity::negative);
}

bool reference_and_flag_loop(const std::int32_t* __restrict filtered, std::int32_t* __restrict referenced,
                             std::int32_t* __restrict noise, std::int32_t* __restrict hold,
                             const std::uint8_t* __restrict searching, std::uint8_t* __restrict attention, int begin,
                             int end, std::int32_t reference, std::int32_t step, std::int32_t gain,
                             std::int32_t want_negative, std::int32_t want_positive) {
    constexpr std::int32_t sample_max = (1 << (HwConfig::sample_bits - 1)) - 1;
    constexpr std::int32_t sample_min = -(1 << (HwConfig::sample_bits - 1));
    constexpr std::int32_t noise_max = (1 << HwConfig::noise_bits) - 1;
    constexpr int shift = HwConfig::noise_frac_bits - HwConfig::sample_frac_bits;
    std::int32_t any = 0;
    for (int ch = begin; ch < end; ++ch) {
        const std::int32_t value = clamp_value(filtered[ch] - reference, sample_min, sample_max);
        referenced[ch] = value;
        const std::int32_t scaled = (value < 0 ? -value : value) << shift; // |value| <= 2^20: no overflow
        const std::int32_t magnitude = scaled > noise_max ? noise_max : scaled;
        const std::int32_t level = noise[ch];
        const std::int32_t threshold =
            ((level >> 4) * gain + (1 << (HwConfig::gain_frac_bits - 1))) >> HwConfig::gain_frac_bits;
        const std::int32_t raised = level + step > noise_max ? noise_max : level + step;
        const std::int32_t lowered = level - step > 0 ? level - step : 0;
        noise[ch] = magnitude > level ? raised : (magnitude < level ? lowered : level);
        const std::int32_t held = hold[ch];
        hold[ch] = held > 0 ? held - 1 : 0;
        const std::int32_t crossing =
            (held == 0) & ((want_negative & (value < -threshold)) | (want_positive & (value > threshold)));
        const std::int32_t flag = searching[ch] ? 1 : (crossing ? 2 : 0);
        attention[ch] = static_cast<std::uint8_t>(flag);
        any |= flag;
    }
    return any != 0;
}

} // namespace spikeline::cpu
