#pragma once
// Detection settings in physical units, and their quantisation into the L1 parameter block.
#include "probe/probe.hpp"
#include "spikeline/hw/detect_config.hpp"

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spikeline {

using HwConfig = hw::DetectConfig;
using HwParams = hw::DetectParams<HwConfig>;

/// What a user tunes, in physical units. Defaults suit extracellular recordings in general (300-6000 Hz band,
/// a 5 sigma threshold on negative peaks or 5.75 sigma on a channel's sum with its nearest contacts, 0.3 ms
/// alignment, 1.5 ms dead time, +-0.3 ms / 50-100 um de-duplication).
struct DetectSettings {
    double band_low_hz = 300.0;
    double band_high_hz = 6000.0;
    double threshold_sigma = 5.0;
    hw::Polarity polarity = hw::Polarity::negative;
    double align_ms = 0.3;
    /// A bi- or tri-phasic waveform's later troughs come 0.4-1.3 ms after its first: a channel that just had a
    /// spike ignores them. 0.6 ms let them through as events (3.8 % of all events on recordings built from real
    /// Neuropixels waveforms). Another neuron's spike in that time is found only on contacts the first did not cross.
    double dead_time_ms = 1.5;
    double dedup_ms = 0.3;
    /// One spike spans ~100 um of a dense probe: its copies 60-150 um from the peak were 2.7 % of an outside tester's
    /// events at 50 um. Neighbour lists hold at most HwConfig::max_neighbours (16) contacts, nearest first, which
    /// reach 70-95 um on Neuropixels-like layouts. Between dedup_near_um and this radius a candidate is a copy of a
    /// larger one only when that one is not later (see spatial_dedup.hpp): merging every coincident spike out to
    /// 75-100 um cost 0.3-0.5 % recall for the same precision.
    double dedup_radius_um = 100.0;
    double dedup_near_um = 50.0; ///< within this radius: every larger candidate in +-dedup_ms, and the lobe rule
    double shadow_ms = 2.0;      ///< after a spike, much smaller neighbours within this time are its lobes
    double shadow_ratio = 0.5;   ///< "much smaller": below this fraction of the large spike's amplitude
    /// Spatial rule (hw/threshold_detector.hpp): a sample beyond spatial_gate x threshold whose sum with its partners
    /// (the contacts of its shank within spatial_reach x its nearest contact's distance and within dedup_near_um, at
    /// most 4) is beyond spatial_sigma times that sum's noise also starts a search (0: off). With the threshold raised
    /// from 4.75 to 5 sigma: recall at SNR >= 5 0.965 -> 0.972 and precision 0.951 -> 0.956 (default probe), 0.970 ->
    /// 0.973 and 0.968 -> 0.964 (a Neuropixels 1.0 layout); 5.5 / 6 sigma traded recall for precision along the same
    /// curve.
    double spatial_sigma = 5.75;
    double spatial_gate = 0.75;
    double spatial_reach = 1.3;
    double warmup_ms = 100.0;     ///< no detection while the noise estimates settle (see make_detect_params)
    bool common_reference = true; ///< subtract the mean of each shank
    /// Each channel's share of its shank's mean is clipped to this many times its median |x| (hw/common_reference.hpp;
    /// 0: the plain mean). On 32- and 64-contact shanks the plain mean carried a large spike's after-hyperpolarisation
    /// to every other contact, where 13-18 % of the events were found (precision 0.82-0.87, 0.98 clipped).
    double reference_clip = 3.0;
    /// Artefact rejection (hw/artifact_rejection.hpp; needs the common reference's groups): a spike reaches at most
    /// ~150 um (its amplitude falls below noise beyond), so crossings on more than artifact_fraction of a shank
    /// within artifact_window_ms, and on more than 1.5 x the contacts within artifact_reach_um of any one contact
    /// (two coincident spikes), are not neural: stimulation, movement and chewing reach every contact at once. 0.3 ms
    /// is one spike's trough: a burst crosses its contacts within a few samples, while two neurons' spikes 0.3 ms apart
    /// are rarely more than a few contacts each. The group's candidates are dropped over the window and
    /// artifact_blank_ms after.
    bool artifact_rejection = true;
    double artifact_fraction = 0.25;
    double artifact_window_ms = 0.3;
    /// After an all-channel step the band-pass rings for about a millisecond, and every channel that crossed holds for
    /// the dead time (1.5 ms) and then crosses again on that ringing: the blanking covers both.
    double artifact_blank_ms = 2.0;
    double artifact_reach_um = 150.0;
    /// Channels neither detected nor in the common reference (--exclude-channels), besides the probe's excluded
    /// contacts: make_detect_params leaves them out of the reference, the backend from excluded_channels() sees
    /// zeros on them.
    std::vector<int> excluded_channels;
};

/// The detection defaults of sort and stream: 4.75 sigma without the spatial rule. The rule's extra events (spikes
/// below the threshold on every single contact) raise detection recall, but the sorter did a little worse with them
/// on drifting and dense recordings (SNR > 8 accuracy -0.001 to -0.008 on 8 of 10 recordings, +0.005 to +0.008 on the
/// 2 stable ones; docs/ACCURACY.md), so it keeps the events it was tuned on; --spatial-threshold turns the rule on.
DetectSettings sorting_detect_settings();

/// The channels to exclude: settings.excluded_channels and the probe's excluded contacts, ascending. Throws
/// InputError naming a channel the probe does not have.
std::vector<int> excluded_channels(const DetectSettings& settings, const probe::Probe& probe);

/// Parses "negative", "positive" or "both".
hw::Polarity parse_polarity(const std::string& text);
std::string to_string(hw::Polarity polarity);

/// Designs and quantises the L1 parameters for a probe and sample rate. Throws InputError on settings the
/// hardware cannot represent (e.g. too many channels or groups, windows longer than the configured maximum).
std::unique_ptr<HwParams> make_detect_params(const DetectSettings& settings, const probe::Probe& probe,
                                             double sample_rate);

nlohmann::json to_json(const DetectSettings& settings);

} // namespace spikeline
