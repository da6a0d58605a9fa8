#include "backend/cpu_kernels.hpp"

namespace spikeline::cpu {

std::int32_t filter_doubles(const double (&coef)[2][4], const std::int32_t* __restrict in, std::int32_t* __restrict out,
                            double* __restrict x1, double* __restrict x2, double* __restrict m1, double* __restrict m2,
                            double* __restrict y1, double* __restrict y2, int begin, int end) {
    constexpr double state_max = (1 << (HwConfig::state_bits - 1)) - 1;
    constexpr double state_min = -(1 << (HwConfig::state_bits - 1));
    constexpr double input_scale = 1 << HwConfig::state_frac_bits;
    constexpr double output_scale = 1.0 / (1 << (HwConfig::state_frac_bits - HwConfig::sample_frac_bits));
    constexpr double sample_max = (1 << (HwConfig::sample_bits - 1)) - 1;
    constexpr double sample_min = -(1 << (HwConfig::sample_bits - 1));
    const double g0 = coef[0][0], mid0 = coef[0][1], a01 = coef[0][2], a02 = coef[0][3];
    const double g1 = coef[1][0], mid1 = coef[1][1], a11 = coef[1][2], a12 = coef[1][3];
    std::int32_t sum = 0;
    for (int ch = begin; ch < end; ++ch) {
        const double x = in[ch] * input_scale;
        const double mid = clamp_value(
            std::floor(g0 * (x + mid0 * x1[ch] + x2[ch]) - a01 * m1[ch] - a02 * m2[ch] + 0.5), state_min, state_max);
        const double y = clamp_value(
            std::floor(g1 * (mid + mid1 * m1[ch] + m2[ch]) - a11 * y1[ch] - a12 * y2[ch] + 0.5), state_min, state_max);
        x2[ch] = x1[ch];
        x1[ch] = x;
        m2[ch] = m1[ch];
        m1[ch] = mid;
        y2[ch] = y1[ch];
        y1[ch] = y;
        const auto value =
            static_cast<std::int32_t>(clamp_value(std::floor(y * output_scale + 0.5), sample_min, sample_max));
        out[ch] = value;
        sum += value;
    }
    return sum;
}

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
