#pragma once
// Slow motion of the tissue relative to the probe. Convention: delta(t, y) is the displacement of the tissue (the
// units) relative to the probe along the probe's y axis, in um: a unit at nominal depth y0 appears at
// y0 + delta(t, y0). Time 0 is sample 0 of the recording.
#include "probe/probe.hpp"

#include <optional>
#include <string>

namespace spikeline::sim {

enum class DriftKind { none, triangle, sine, ramp, step, nonrigid, wander };

/// "none", "triangle", "sine", "ramp", "step", "nonrigid" or "wander".
const char* to_string(DriftKind kind);
/// The kind named by text; throws InputError for any other name.
DriftKind parse_drift_kind(const std::string& text);

/// A drift model. default_drift_model() gives each kind's defaults; check_drift_model() the valid ranges.
struct DriftModel {
    DriftKind kind = DriftKind::none;
    /// triangle: the peak displacement (25 um by default); sine: A; ramp: the final displacement; step: the
    /// displacement after the step; nonrigid: A at the highest contact; wander: the bound of |delta|. Signed: the
    /// direction of the first move.
    double amplitude_um = 0.0;
    /// sine, nonrigid: the period; ramp: the time to reach amplitude_um; wander: its slowest component's period.
    /// Unused by the others.
    double period_s = 0.0;
    /// triangle only: the speed along the triangle wave, first towards its sign (the wave's period is
    /// 4 amplitude / |speed|).
    double speed_um_per_s = 0.0;
    /// step only: the time of the step (none: half the recording).
    std::optional<double> step_s;
};

/// The model of a kind with its default parameters: sine A = 20 um, P = 60 s; ramp A = 40 um over 600 s; step
/// A = 15 um at half the recording; nonrigid A = 20 um, P = 60 s; wander A = 20 um, P = 60 s; triangle A = 25 um at
/// 10 um/s.
DriftModel default_drift_model(DriftKind kind);
/// The triangle model the --drift UM_PER_S option has always meant (amplitude 25 um); none for a speed of 0.
DriftModel triangle_drift(double speed_um_per_s);

/// Throws InputError unless the model's parameters are usable for a recording of duration_s.
void check_drift_model(const DriftModel& model, double duration_s);

/// The model evaluated on a probe: delta(t, y) in um. The nonrigid model's depth runs over the contacts' y range
/// (every shank shares the model).
class DriftField {
public:
    DriftField() = default;
    DriftField(const DriftModel& model, const probe::Probe& probe, double duration_s, double sample_rate);

    bool active() const { return model_.kind != DriftKind::none; }
    /// delta at a time in samples for a unit at nominal depth y_um (the simulator's clock; exact for the triangle).
    double at_sample(double time_samples, double y_um) const;
    /// delta at a time in seconds.
    double at_time(double time_s, double y_um) const { return at_sample(time_s * sample_rate_, y_um); }
    /// The largest |delta| the model reaches anywhere.
    double max_abs_um() const;
    /// The model with its defaults resolved for the recording (the step time).
    const DriftModel& model() const { return model_; }

private:
    DriftModel model_;
    double sample_rate_ = 1.0;
    double y_low_um_ = 0.0, y_high_um_ = 0.0;
};

} // namespace spikeline::sim
