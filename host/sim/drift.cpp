#include "sim/drift.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <numbers>

namespace spikeline::sim {
namespace {

constexpr std::array<const char*, 7> kNames = {"none", "triangle", "sine", "ramp", "step", "nonrigid", "wander"};
constexpr double kMaxAmplitudeUm = 500.0;
constexpr double kMaxSpeedUmPerS = 1000.0;

// The triangle wave as the simulator has always computed it: the expression order is kept so that a --drift
// recording stays byte-identical.
double triangle_um(double amplitude_um, double speed_um_per_s, double time_samples, double sample_rate) {
    const double travelled = std::abs(speed_um_per_s) * time_samples / sample_rate;
    const double period = 4.0 * amplitude_um;
    const double m = std::fmod(travelled, period);
    const double offset = m < amplitude_um ? m : m < 3 * amplitude_um ? 2 * amplitude_um - m : m - period;
    return speed_um_per_s > 0 ? offset : -offset;
}

// Irregular rigid motion: five slow sines of incommensurate periods (P, 0.613 P, ... 0.144 P) and fixed phases, so
// that the speed changes and the direction reverses at irregular times, softly bounded (tanh) so that it spans most
// of +-A, plus a tenth of A at 1.3 Hz (the brain's pulsation with breathing, faster than a motion estimate resolves).
// It starts at 0 and |delta| < A.
double wander_um(double amplitude_um, double period_s, double t) {
    constexpr std::array<double, 5> kPeriod = {1.0, 0.613, 0.377, 0.233, 0.144};
    constexpr std::array<double, 5> kWeight = {1.0, 0.7, 0.5, 0.35, 0.25};
    constexpr std::array<double, 5> kPhase = {0.3, 1.9, 4.1, 2.7, 5.5};
    constexpr double kPulsationHz = 1.3, kPulsationShare = 0.1, kSpread = 2.0;
    double slow = 0, total = 0;
    for (std::size_t k = 0; k < kPeriod.size(); ++k) {
        slow += kWeight[k] *
                (std::sin(2.0 * std::numbers::pi * t / (kPeriod[k] * period_s) + kPhase[k]) - std::sin(kPhase[k]));
        total += kWeight[k];
    }
    return amplitude_um * ((1 - kPulsationShare) * std::tanh(kSpread * slow / total) +
                           kPulsationShare * std::sin(2.0 * std::numbers::pi * kPulsationHz * t));
}

std::string number(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    return text;
}

} // namespace

const char* to_string(DriftKind kind) {
    return kNames[static_cast<std::size_t>(kind)];
}

DriftKind parse_drift_kind(const std::string& text) {
    for (std::size_t k = 0; k < kNames.size(); ++k)
        if (text == kNames[k])
            return static_cast<DriftKind>(k);
    throw InputError("unknown drift model '" + text + "': use none, triangle, sine, ramp, step, nonrigid or wander");
}

DriftModel default_drift_model(DriftKind kind) {
    DriftModel model;
    model.kind = kind;
    switch (kind) {
    case DriftKind::none:
        break;
    case DriftKind::triangle:
        model.amplitude_um = 25.0;
        model.speed_um_per_s = 10.0;
        break;
    case DriftKind::sine:
    case DriftKind::nonrigid:
    case DriftKind::wander:
        model.amplitude_um = 20.0;
        model.period_s = 60.0;
        break;
    case DriftKind::ramp:
        model.amplitude_um = 40.0;
        model.period_s = 600.0;
        break;
    case DriftKind::step:
        model.amplitude_um = 15.0;
        break;
    }
    return model;
}

DriftModel triangle_drift(double speed_um_per_s) {
    if (speed_um_per_s == 0.0)
        return {};
    DriftModel model = default_drift_model(DriftKind::triangle);
    model.speed_um_per_s = speed_um_per_s;
    return model;
}

void check_drift_model(const DriftModel& model, double duration_s) {
    require(static_cast<std::size_t>(model.kind) < kNames.size(), "unknown drift model");
    if (model.kind == DriftKind::none)
        return;
    const std::string name = std::string("the ") + to_string(model.kind) + " drift";
    require(std::isfinite(model.amplitude_um) && model.amplitude_um != 0.0 &&
                std::abs(model.amplitude_um) <= kMaxAmplitudeUm,
            name + "'s amplitude must be non-zero and at most " + number(kMaxAmplitudeUm) + " um in magnitude (got " +
                number(model.amplitude_um) + " um)");
    switch (model.kind) {
    case DriftKind::triangle:
        require(model.amplitude_um > 0, name +
                                            "'s amplitude must be positive (the sign of the speed gives the "
                                            "direction; got " +
                                            number(model.amplitude_um) + " um)");
        require(std::isfinite(model.speed_um_per_s) && model.speed_um_per_s != 0.0 &&
                    std::abs(model.speed_um_per_s) <= kMaxSpeedUmPerS,
                "the drift speed must be non-zero and at most " + number(kMaxSpeedUmPerS) + " um/s in magnitude (got " +
                    number(model.speed_um_per_s) + " um/s)");
        break;
    case DriftKind::sine:
    case DriftKind::nonrigid:
    case DriftKind::wander:
    case DriftKind::ramp:
        require(std::isfinite(model.period_s) && model.period_s >= 0.1 && model.period_s <= 1e7,
                name + (model.kind == DriftKind::ramp ? "'s rise time" : "'s period") +
                    " must be between 0.1 s and 1e7 s (got " + number(model.period_s) + " s)");
        break;
    case DriftKind::step:
        if (model.step_s)
            require(std::isfinite(*model.step_s) && *model.step_s >= 0.0 && *model.step_s <= duration_s,
                    name + "'s time must lie within the recording, 0 to " + number(duration_s) + " s (got " +
                        number(*model.step_s) + " s)");
        break;
    case DriftKind::none:
        break;
    }
}

DriftField::DriftField(const DriftModel& model, const probe::Probe& probe, double duration_s, double sample_rate)
    : model_(model), sample_rate_(sample_rate) {
    if (model_.kind == DriftKind::step && !model_.step_s)
        model_.step_s = 0.5 * duration_s;
    if (!probe.contacts.empty()) {
        y_low_um_ = y_high_um_ = probe.contacts.front().y_um;
        for (const probe::Contact& contact : probe.contacts) {
            y_low_um_ = std::min(y_low_um_, contact.y_um);
            y_high_um_ = std::max(y_high_um_, contact.y_um);
        }
    }
}

double DriftField::at_sample(double time_samples, double y_um) const {
    const double a = model_.amplitude_um;
    const double t = time_samples / sample_rate_;
    switch (model_.kind) {
    case DriftKind::none:
        return 0.0;
    case DriftKind::triangle:
        return triangle_um(a, model_.speed_um_per_s, time_samples, sample_rate_);
    case DriftKind::sine:
        return a * std::sin(2.0 * std::numbers::pi * t / model_.period_s);
    case DriftKind::ramp:
        return a * std::clamp(t / model_.period_s, 0.0, 1.0);
    case DriftKind::step:
        return t < *model_.step_s ? 0.0 : a;
    case DriftKind::wander:
        return wander_um(a, model_.period_s, t);
    case DriftKind::nonrigid: {
        // u: 0 at the lowest contact, 1 at the highest (a single row counts as the highest).
        const double span = y_high_um_ - y_low_um_;
        const double u = span > 0 ? std::clamp((y_um - y_low_um_) / span, 0.0, 1.0) : 1.0;
        const double phase = 2.0 * std::numbers::pi * t / model_.period_s - 0.5 * std::numbers::pi * u;
        return a * (0.25 + 0.75 * u) * std::sin(phase);
    }
    }
    return 0.0;
}

double DriftField::max_abs_um() const {
    return model_.kind == DriftKind::none ? 0.0 : std::abs(model_.amplitude_um);
}

} // namespace spikeline::sim
