// Physical and numerical properties of the L1 detection kernels.
#include "backend/detect_settings.hpp"
#include "dsp/filter_design.hpp"
#include "probe/probe.hpp"
#include "spikeline/hw/detector.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <map>
#include <memory>
#include <numbers>
#include <random>
#include <vector>

namespace spikeline {
namespace {

constexpr double kRate = 30000.0;

std::unique_ptr<HwParams> default_params(int channels = 16) {
    return make_detect_params(DetectSettings{}, probe::default_probe(channels), kRate);
}

// Runs the L1 detector (16 channels, no warm-up, median |x| = 10 LSB: the 5 sigma threshold is 74 LSB) over frames
// frames in which channel c carries traces[c] (input LSB, zero after its end); returns its candidates.
std::vector<hw::SpikeEvent> detect_traces(const std::map<int, std::vector<std::int32_t>>& traces, std::size_t frames) {
    auto params = default_params(16);
    params->warmup_frames = 0;
    params->noise_initial = 10 * 256;
    auto state = std::make_unique<hw::DetectorState<HwConfig>>();
    hw::reset_detector(*state, *params);
    std::vector<hw::SpikeEvent> events;
    for (std::size_t t = 0; t < frames; ++t) {
        std::int32_t frame[16] = {};
        for (const auto& [channel, trace] : traces)
            frame[channel] = t < trace.size() ? trace[t] * 16 : 0;
        hw::detect_frame(*state, *params, t, frame, 0, 16, [&](const hw::SpikeEvent& e) { events.push_back(e); });
    }
    return events;
}

// |H(f)| of the quantised sections as the hardware computes them.
double quantised_response(const HwParams& params, double frequency) {
    const std::complex<double> z1 = std::polar(1.0, -2.0 * std::numbers::pi * frequency / kRate);
    const std::complex<double> z2 = z1 * z1;
    const double scale = std::ldexp(1.0, -HwConfig::coef_frac_bits);
    std::complex<double> h = 1.0;
    for (int k = 0; k < HwConfig::n_sections; ++k) {
        const hw::BiquadQ& c = params.sections[k];
        h *= c.gain * scale * (1.0 + double(HwConfig::numerator_middle(k)) * z1 + z2) /
             (1.0 + c.a1 * scale * z1 + c.a2 * scale * z2);
    }
    return std::abs(h);
}

constexpr double kSampleScale = 1 << HwConfig::sample_frac_bits;

// Runs the L1 band-pass over one channel; returns the output in input LSB.
std::vector<double> bandpass_one_channel(const HwParams& params, const std::vector<std::int16_t>& x) {
    auto state = std::make_unique<hw::BandpassState<HwConfig>>();
    std::vector<double> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        std::int32_t out = 0;
        hw::bandpass_frame(*state, params, &x[i], &out, 0, 1);
        y[i] = out / kSampleScale;
    }
    return y;
}

double sine(double frequency, std::size_t i) {
    return std::sin(2 * std::numbers::pi * frequency * double(i) / kRate);
}

double sine_gain(const HwParams& params, double frequency, double amplitude) {
    const std::size_t n = 60000;
    std::vector<std::int16_t> x(n);
    for (std::size_t i = 0; i < n; ++i)
        x[i] = static_cast<std::int16_t>(std::lround(amplitude * sine(frequency, i)));
    const auto y = bandpass_one_channel(params, x);
    double in = 0, out = 0; // RMS over the second half, after the transient
    for (std::size_t i = n / 2; i < n; ++i) {
        in += double(x[i]) * x[i];
        out += y[i] * y[i];
    }
    return std::sqrt(out / in);
}

TEST(Bandpass, QuantisedResponseMatchesTheDesign) {
    const auto params = default_params();
    const auto design = dsp::design_bandpass(kRate, 300, 6000);
    for (double f = 10; f < 14900; f *= 1.05) {
        const double ideal = dsp::magnitude_response(design, kRate, f);
        EXPECT_NEAR(quantised_response(*params, f), ideal, 0.002 * ideal + 1e-5) << f << " Hz";
    }
    // Corners at -3 dB, passband loss below 1 % around the centre, stopband as designed for two 2nd-order sections.
    EXPECT_NEAR(quantised_response(*params, 300), std::sqrt(0.5), 0.01);
    EXPECT_NEAR(quantised_response(*params, 6000), std::sqrt(0.5), 0.01);
    for (double f = 1000; f <= 2000; f += 100)
        EXPECT_GT(quantised_response(*params, f), 0.99) << f << " Hz";
    EXPECT_LT(quantised_response(*params, 30), 0.0105);  // -40 dB a decade below the high-pass corner
    EXPECT_LT(quantised_response(*params, 60), 0.042);   // mains hum
    EXPECT_LT(quantised_response(*params, 14000), 0.05); // towards the bilinear zero at Nyquist
}

TEST(Bandpass, SinesThroughTheFixedPointFilter) {
    const auto params = default_params();
    EXPECT_NEAR(sine_gain(*params, 1500, 8000), quantised_response(*params, 1500), 0.005);
    EXPECT_NEAR(sine_gain(*params, 3000, 8000), quantised_response(*params, 3000), 0.005);
    EXPECT_LT(sine_gain(*params, 50, 8000), 0.03); // line noise: at least 30 dB down
}

TEST(Bandpass, FixedPointErrorAgainstDoubleReferenceIsBelowATenthLsbRms) {
    const auto params = default_params();
    const auto design = dsp::design_bandpass(kRate, 300, 6000);
    std::mt19937 rng(1);
    std::normal_distribution<double> noise(0, 40);
    const std::size_t n = 300000;
    std::vector<std::int16_t> x(n);
    std::vector<double> xd(n);
    for (std::size_t i = 0; i < n; ++i) {
        // White noise, an LFP-like 8 Hz swing of +-2000 LSB and a 1 kHz tone: every part of the band.
        const double v = noise(rng) + 2000 * sine(8, i) + 500 * sine(1000, i);
        x[i] = static_cast<std::int16_t>(std::lround(v));
        xd[i] = x[i];
    }
    const auto y = bandpass_one_channel(*params, x);
    const auto reference = dsp::filter(design, xd);
    double squared = 0;
    for (std::size_t i = 1000; i < n; ++i)
        squared += (y[i] - reference[i]) * (y[i] - reference[i]);
    const double rms = std::sqrt(squared / double(n - 1000));
    EXPECT_LT(rms, 0.1) << "fixed point vs ideal double filter, in LSB";
    RecordProperty("rms_error_lsb", std::to_string(rms));
}

TEST(CommonReference, SubtractsTheRoundedGroupMean) {
    auto params = std::make_unique<HwParams>();
    params->n_channels = 6;
    const std::int16_t groups[6] = {0, 0, 0, 1, 1, -1};
    for (int ch = 0; ch < 6; ++ch)
        params->group_of[ch] = groups[ch];
    params->group_inverse_size[0] = static_cast<std::int32_t>(std::lround(65536.0 / 3));
    params->group_inverse_size[1] = 65536 / 2;
    const std::int32_t filtered[6] = {100, 200, 301, -50, 51, 999};
    auto reference = std::make_unique<hw::ReferenceState<HwConfig>>(); // no clip levels yet: the plain mean
    hw::GroupSums<HwConfig> sums;
    hw::clear_group_sums(sums);
    std::int32_t means[HwConfig::max_groups];
    hw::accumulate_group_sums(*params, *reference, 0, filtered, sums, 0, 3);
    hw::accumulate_group_sums(*params, *reference, 0, filtered, sums, 3, 6); // sums may be built in pieces
    hw::group_means(*params, sums, means);
    EXPECT_EQ(means[0], 200); // 601 / 3 = 200.33
    EXPECT_EQ(means[1], 1);   // 1 / 2 = 0.5 rounds up
    std::int32_t out[6];
    hw::subtract_reference(*params, filtered, means, out, 0, 6);
    const std::int32_t expected[6] = {-100, 0, 101, -51, 50, 999};
    for (int ch = 0; ch < 6; ++ch)
        EXPECT_EQ(out[ch], expected[ch]) << "channel " << ch;
}

TEST(CommonReference, RemovesSignalSharedByAShank) {
    auto params = default_params(128);
    std::int32_t in[128], out[128];
    auto reference = std::make_unique<hw::ReferenceState<HwConfig>>();
    for (int ch = 0; ch < 128; ++ch) // clip levels far below the shared signal: the plain mean all the same
        reference->clip[0][ch] = 40;
    hw::GroupSums<HwConfig> sums;
    hw::clear_group_sums(sums);
    std::int32_t means[HwConfig::max_groups];
    for (int ch = 0; ch < 128; ++ch)
        in[ch] = 700 + (ch % 2 ? 3 : -3);
    hw::accumulate_group_sums(*params, *reference, 0, in, sums, 0, 128);
    hw::group_means(*params, sums, means);
    hw::subtract_reference(*params, in, means, out, 0, 128);
    for (int ch = 0; ch < 128; ++ch)
        EXPECT_EQ(out[ch], ch % 2 ? 3 : -3);
}

// A large spike on a tenth of a shank: the plain mean would carry a fifth of it to every other channel.
TEST(CommonReference, ClipsEachChannelsShareSoThatAFewLargeSamplesDoNotMoveTheMean) {
    auto params = default_params(128);
    auto reference = std::make_unique<hw::ReferenceState<HwConfig>>();
    std::int32_t in[128];
    for (int ch = 0; ch < 128; ++ch) {
        reference->clip[0][ch] = 40;
        in[ch] = ch < 13 ? -2000 : (ch % 2 ? 30 : -30);
    }
    hw::GroupSums<HwConfig> sums;
    hw::clear_group_sums(sums);
    std::int32_t means[HwConfig::max_groups];
    hw::accumulate_group_sums(*params, *reference, 0, in, sums, 0, 128);
    EXPECT_EQ(sums.plain[0], 13 * -2000 + 30); // channels 13..127: 58 at +30, 57 at -30
    EXPECT_EQ(sums.clipped[0], 13 * -40 + 30);
    EXPECT_EQ(sums.beyond[0], 13);
    hw::group_means(*params, sums, means);
    EXPECT_EQ(means[0], -4); // round(-490 / 128); the plain mean would be -203
    // The same frame in a period whose levels are still 0: every channel is beyond, the plain mean.
    hw::clear_group_sums(sums);
    hw::accumulate_group_sums(*params, *reference, HwConfig::reference_period, in, sums, 0, 128);
    EXPECT_EQ(sums.beyond[0], 128);
    hw::group_means(*params, sums, means);
    EXPECT_EQ(means[0], -203);
}

TEST(CommonReference, ClipLevelsComeFromTheNoiseAtEachPeriodsStartForTheNextPeriod) {
    auto params = default_params(4);
    params->reference_clip_gain = 3 * 256;
    auto reference = std::make_unique<hw::ReferenceState<HwConfig>>();
    const std::int32_t noise[4] = {0, 16 * 256, 100 * 256 + 8, 7}; // Q8 median |x|
    hw::take_reference_clips(*reference, *params, 1, noise, 0, 4); // not a period start: nothing
    for (int ch = 0; ch < 4; ++ch)
        EXPECT_EQ(reference->clip[1][ch], 0);
    hw::take_reference_clips(*reference, *params, 0, noise, 0, 4);  // period 0's start: the levels of period 1
    const std::int32_t expected[4] = {0, 3 * 16 * 16, 3 * 1601, 0}; // Q4: round(round(m / 16) * 768 / 256)
    for (int ch = 0; ch < 4; ++ch) {
        EXPECT_EQ(reference->clip[1][ch], expected[ch]) << "channel " << ch;
        EXPECT_EQ(reference->clip[0][ch], 0);
    }
    EXPECT_EQ(hw::reference_bank<HwConfig>(HwConfig::reference_period - 1), 0);
    EXPECT_EQ(hw::reference_bank<HwConfig>(HwConfig::reference_period), 1);
    hw::take_reference_clips(*reference, *params, HwConfig::reference_period, noise, 2, 3); // into bank 0, channel 2
    EXPECT_EQ(reference->clip[0][2], 3 * 1601);
    EXPECT_EQ(reference->clip[0][1], 0);
}

// Feeds Gaussian noise of a given sigma (input LSB, as the filter delivers it in Q4) straight to the noise tracker
// and returns its mean sigma estimate.
double tracked_sigma(double sigma, double seconds) {
    auto params = default_params(64);
    auto state = std::make_unique<hw::DetectorState<HwConfig>>();
    hw::reset_detector(*state, *params);
    std::mt19937 rng(static_cast<unsigned>(sigma * 10));
    std::normal_distribution<double> noise(0, sigma);
    std::int32_t frame[64];
    const auto frames = static_cast<std::uint64_t>(seconds * kRate);
    for (std::uint64_t f = 0; f < frames; ++f) {
        for (auto& v : frame)
            v = static_cast<std::int32_t>(std::lround(noise(rng) * kSampleScale));
        hw::track_noise_and_flag(*state, *params, f, frame, 0, 64);
    }
    double mean = 0;
    for (int ch = 0; ch < 64; ++ch)
        mean += state->noise[ch] / 256.0 / 0.6745;
    return mean / 64;
}

TEST(NoiseTracker, ConvergesWithinFivePercentOfSigma) {
    for (double sigma : {2.0, 4.0, 20.0, 60.0, 200.0})
        EXPECT_NEAR(tracked_sigma(sigma, 3.0), sigma, 0.05 * sigma) << "sigma " << sigma;
}

TEST(ThresholdDetector, AlignsToTheTroughAndHoldsForTheDeadTime) {
    // Channel 3: a trough 4 samples after the crossing, then a second crossing inside the dead time that is not more
    // than 5/4 of the first.
    const auto events = detect_traces({{3, {0, -80, -120, -150, -200, -160, -90, 0, 0, 0, 0, -250, 0}}}, 60);
    ASSERT_EQ(events.size(), 1u) << "the second crossing falls inside the dead time";
    EXPECT_EQ(events[0].sample, 4u);
    EXPECT_EQ(events[0].channel, 3);
    EXPECT_EQ(events[0].amplitude, -200 * 16);
}

TEST(ThresholdDetector, TheSpatialRuleFindsASpikeSpreadOverItsPartnersButNotALoneOne) {
    DetectSettings settings;
    settings.threshold_sigma = 5.0;
    settings.spatial_sigma = 5.75;
    auto params = make_detect_params(settings, probe::default_probe(16), kRate);
    // Two columns, rows 20 um apart: the partners of a channel are the contacts above and below it (32 um across is
    // beyond 1.3 x 20 um).
    EXPECT_EQ(params->partners[5][0], 3);
    EXPECT_EQ(params->partners[5][1], 7);
    EXPECT_EQ(params->partners[5][2], -1);
    EXPECT_EQ(params->partners[0][0], 2);
    EXPECT_EQ(params->partners[0][1], -1);
    // A sparse array (the same layout 20 times wider: rows 400 um apart) has no partners: a spike does not reach them.
    probe::Probe sparse = probe::default_probe(16);
    for (auto& contact : sparse.contacts) {
        contact.x_um *= 20;
        contact.y_um *= 20;
    }
    const auto sparse_params = make_detect_params(settings, sparse, kRate);
    for (int ch = 0; ch < 16; ++ch)
        EXPECT_EQ(sparse_params->partners[ch][0], -1) << "channel " << ch;
    params->warmup_frames = 0;
    params->noise_initial = 10 * 256; // sigma 14.8 LSB: threshold 74, gate 56, two partners' sum 209 LSB
    auto state = std::make_unique<hw::DetectorState<HwConfig>>();
    hw::reset_detector(*state, *params);
    std::vector<hw::SpikeEvent> events;
    std::int32_t frame[16] = {};
    for (std::uint64_t t = 0; t < 40; ++t) {
        std::fill(std::begin(frame), std::end(frame), 0);
        if (t == 5) {
            frame[5] = -65 * 16; // below the threshold, beyond the gate; 2 x -65 - 50 - 50 = -230 is beyond 209
            frame[3] = frame[7] = -50 * 16;
            frame[13] = -70 * 16; // alone: 2 x -70 = -140
            frame[9] = -90 * 16;  // beyond the threshold: an event without partners
        }
        if (t == 20) {
            frame[10] = -65 * 16; // one partner far beyond the threshold counts as the threshold: -130 - 200 - 74
            frame[8] = -200 * 16;
        }
        hw::detect_frame(*state, *params, t, frame, 0, 16, [&](const hw::SpikeEvent& e) { events.push_back(e); });
    }
    std::vector<int> channels;
    for (const auto& e : events)
        channels.push_back(e.channel);
    EXPECT_EQ(channels, (std::vector<int>{5, 9, 8})) << "13 is alone, 10's sum is clamped; 3 and 7 do not cross";
}

TEST(SpatialDedup, KeepsTheLargestAmongNeighboursWithinTheWindow) {
    auto params = default_params(16); // 2 columns 32 um apart, 20 um rows: neighbours within 50 um
    auto state = std::make_unique<hw::DedupState<HwConfig>>();
    std::vector<hw::SpikeEvent> out;
    auto emit = [&](const hw::SpikeEvent& e) { out.push_back(e); };
    const auto window = static_cast<std::uint64_t>(params->dedup_window);
    hw::dedup_add(*state, *params, {100, 4, -300});              // the spike's peak
    hw::dedup_add(*state, *params, {101, 5, -200});              // the same spike on a neighbour
    hw::dedup_add(*state, *params, {100 + window + 1, 6, -250}); // a neighbour, but outside the window
    hw::dedup_add(*state, *params, {100, 15, -100});             // far away: another spike
    hw::dedup_add(*state, *params, {200, 8, -150});              // equal amplitudes on neighbouring channels:
    hw::dedup_add(*state, *params, {200, 9, -150});              // the lower channel wins
    hw::dedup_advance(*state, *params, 1000, true, emit);
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(out[0], (hw::SpikeEvent{100, 4, -300}));
    EXPECT_EQ(out[1], (hw::SpikeEvent{100, 15, -100}));
    EXPECT_EQ(out[2].channel, 6);
    EXPECT_EQ(out[3], (hw::SpikeEvent{200, 8, -150}));
}

TEST(SpatialDedup, DropsMuchSmallerLobesThatFollowALargeSpike) {
    auto params = default_params(16); // shadow: 60 samples, ratio 0.5
    auto state = std::make_unique<hw::DedupState<HwConfig>>();
    std::vector<hw::SpikeEvent> out;
    auto emit = [&](const hw::SpikeEvent& e) { out.push_back(e); };
    hw::dedup_add(*state, *params, {1000, 4, -1000}); // a large spike
    hw::dedup_add(*state, *params, {1030, 4, -400});  // its rebound on the same channel: a lobe
    hw::dedup_add(*state, *params, {1045, 5, -499});  // on a neighbour, just under half: a lobe
    hw::dedup_add(*state, *params, {1050, 6, -500});  // exactly half: kept (another unit)
    hw::dedup_add(*state, *params, {1061, 4, -300});  // after the shadow window: kept
    hw::dedup_add(*state, *params, {990, 5, -100}); // before the large spike: not its lobe, and outside +-dedup window
    hw::dedup_advance(*state, *params, 5000, true, emit);
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(out[0].sample, 990u);
    EXPECT_EQ(out[1].sample, 1000u);
    EXPECT_EQ(out[2].sample, 1050u);
    EXPECT_EQ(out[3].sample, 1061u);
}

TEST(SpatialDedup, ACandidateShapedLikeALaterPhaseFollowsAnyLargerSpike) {
    // Flagged swing (its contact went positive by about its size just before): dropped behind any larger candidate
    // of its neighbourhood within the shadow window (60 samples), not only behind one twice its size. The candidates
    // are more than the +-9 samples of the duplicate rule apart.
    auto params = default_params(16);
    auto state = std::make_unique<hw::DedupState<HwConfig>>();
    std::vector<hw::SpikeEvent> out;
    auto emit = [&](const hw::SpikeEvent& e) { out.push_back(e); };
    hw::dedup_add(*state, *params, {1000, 4, -1000});    // a large spike
    hw::dedup_add(*state, *params, {1020, 5, -700, 1});  // 0.7 of it, after a swing: its later phase
    hw::dedup_add(*state, *params, {1035, 6, -700});     // the same size without the swing: another spike
    hw::dedup_add(*state, *params, {1050, 7, -1000, 1}); // after a swing but not smaller: kept
    hw::dedup_add(*state, *params, {1120, 5, -700, 1});  // beyond the shadow window of every larger one: kept
    hw::dedup_advance(*state, *params, 5000, true, emit);
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(out[0].sample, 1000u);
    EXPECT_EQ(out[1].sample, 1035u);
    EXPECT_EQ(out[2].sample, 1050u);
    EXPECT_EQ(out[3].sample, 1120u);
}

TEST(ThresholdDetector, FlagsACandidateThatFollowsASwingOfItsSize) {
    // The largest sample of the last positive run before the crossing, against 3/4 of the trough.
    std::vector<std::int32_t> swing(40, 0), bump(40, 0), searching(40, 0);
    for (std::size_t t = 5; t < 12; ++t) {
        swing[t] = 150; // then a trough of -200: 150 >= 3/4 of 200
        bump[t] = 149;
    }
    swing[20] = bump[20] = -200;
    searching[20] = -200; // a positive sample inside the search window does not count: the run is frozen
    searching[22] = 200;
    const auto events = detect_traces({{3, swing}, {5, bump}, {7, searching}}, swing.size());
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].channel, 3);
    EXPECT_EQ(events[0].swing, 1);
    EXPECT_EQ(events[1].channel, 5);
    EXPECT_EQ(events[1].swing, 0);
    EXPECT_EQ(events[2].channel, 7);
    EXPECT_EQ(events[2].swing, 0);
}

TEST(ThresholdDetector, ALaterTroughOfTheSameWaveformIsNoEventByDefault) {
    // A tri-phasic waveform after the band-pass: trough, positive peak, then a second trough 1.2 ms after the first
    // and 70 % of it, too large for the lobe rule (0.5). The default dead time covers it; a new spike after it counts.
    const auto params = default_params(16);
    std::vector<std::int32_t> trace(120, 0);
    auto trough = [&](std::size_t at, std::int32_t depth) {
        for (int d = -3; d <= 3; ++d)
            trace[at + static_cast<std::size_t>(d + 3)] = depth * (4 - std::abs(d)) / 4;
    };
    trough(10, -400);                     // peak at 13
    for (std::size_t t = 20; t < 40; ++t) // the positive phase
        trace[t] = 120;
    trough(10 + 36, -280);                                              // peak at 49: 1.2 ms later
    trough(13 + static_cast<std::size_t>(params->dead_time) + 2, -150); // peak 5 after the dead time: a spike
    const auto events = detect_traces({{3, trace}}, trace.size());
    EXPECT_GE(params->dead_time, 45) << "1.5 ms at 30 kHz";
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].sample, 13u);
    EXPECT_EQ(events[1].sample, 13u + static_cast<std::uint64_t>(params->dead_time) + 5);
}

TEST(ThresholdDetector, ASpikeMoreThanAQuarterLargerEndsTheDeadTime) {
    // Two neurons on the same contacts fire 1 ms apart: a later trough beyond 5/4 of the held peak cannot be a lobe
    // of that waveform and starts a search; one at 5/4 or less stays inside the dead time.
    std::vector<std::int32_t> larger(80, 0), not_larger(80, 0);
    larger[13] = not_larger[13] = -200; // peaks at 13, then 30 samples (1 ms) later
    larger[43] = -251;
    not_larger[43] = -250;
    const auto events = detect_traces({{3, larger}, {7, not_larger}}, larger.size());
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].channel, 3);
    EXPECT_EQ(events[1].channel, 7);
    EXPECT_EQ(events[0].sample, 13u);
    EXPECT_EQ(events[1].sample, 13u);
    EXPECT_EQ(events[2].channel, 3);
    EXPECT_EQ(events[2].sample, 43u);
    EXPECT_EQ(events[2].amplitude, -251 * 16);
}

TEST(SpatialDedup, FarContactsGiveCopiesThatAreNotEarlierThanTheLargerCandidate) {
    auto params = default_params(16); // 2 columns 32 um apart, 20 um rows: near within 50 um, far to 100 um
    EXPECT_EQ(params->neighbours[0][0], 2) << "20 um: near";
    EXPECT_EQ(params->neighbours[0][6], 7 | hw::kFarNeighbour) << "68 um: far";
    auto state = std::make_unique<hw::DedupState<HwConfig>>();
    std::vector<hw::SpikeEvent> out;
    auto emit = [&](const hw::SpikeEvent& e) { out.push_back(e); };
    // One spike: its peak on channel 0 (row 0, column 0) and a copy 68 um away (row 3, column 1) 0.1 ms later,
    // with no contact between them crossing.
    hw::dedup_add(*state, *params, {100, 0, -300});
    hw::dedup_add(*state, *params, {103, 7, -200});
    // Another neuron 86 um away (row 4, column 1), smaller but earlier than the large candidate: kept.
    hw::dedup_add(*state, *params, {500, 0, -300});
    hw::dedup_add(*state, *params, {498, 9, -250});
    // The lobe rule covers the whole neighbourhood (a spike's later lobes reach as far as its footprint): a much
    // smaller candidate after a large one is dropped 20 um and 86 um away, kept 120 um away (not a neighbour).
    hw::dedup_add(*state, *params, {1000, 0, -1000});
    hw::dedup_add(*state, *params, {1030, 9, -300});
    hw::dedup_add(*state, *params, {1060, 12, -300});
    hw::dedup_add(*state, *params, {1040, 2, -300});
    hw::dedup_advance(*state, *params, 5000, true, emit);
    ASSERT_EQ(out.size(), 5u);
    EXPECT_EQ(out[0], (hw::SpikeEvent{100, 0, -300}));
    EXPECT_EQ(out[1], (hw::SpikeEvent{498, 9, -250}));
    EXPECT_EQ(out[2], (hw::SpikeEvent{500, 0, -300}));
    EXPECT_EQ(out[3], (hw::SpikeEvent{1000, 0, -1000}));
    EXPECT_EQ(out[4], (hw::SpikeEvent{1060, 12, -300}));
}

TEST(SpatialDedup, DecidesOnlyWhenAllCompetitorsAreKnown) {
    auto params = default_params(16);
    auto state = std::make_unique<hw::DedupState<HwConfig>>();
    std::vector<hw::SpikeEvent> out;
    auto emit = [&](const hw::SpikeEvent& e) { out.push_back(e); };
    const auto latency = static_cast<std::uint64_t>(params->dedup_window + params->align_window - 1);
    hw::dedup_add(*state, *params, {50, 4, -300});
    hw::dedup_advance(*state, *params, 50 + latency - 1, false, emit);
    EXPECT_TRUE(out.empty());
    hw::dedup_advance(*state, *params, 50 + latency, false, emit);
    EXPECT_EQ(out.size(), 1u);
    hw::dedup_advance(*state, *params, 49 + latency + std::uint64_t(params->shadow_window), false, emit);
    EXPECT_EQ(state->n_pending, 1) << "kept while later candidates may be its lobes";
    hw::dedup_advance(*state, *params, 50 + latency + std::uint64_t(params->shadow_window), false, emit);
    EXPECT_EQ(state->n_pending, 0) << "decided candidates are forgotten once no one needs them";
}

TEST(SpatialDedup, BoundsWhatAFrameQueuesAndWhatTheListHolds) {
    auto params = default_params(16);
    params->artifact_window = 0;
    auto state = std::make_unique<hw::DedupState<HwConfig>>();
    std::vector<hw::SpikeEvent> out;
    auto emit = [&](const hw::SpikeEvent& e) { out.push_back(e); };
    // Samples far ahead of the frames: nothing is decided, so the list only grows.
    const std::uint64_t sample = 1'000'000;
    for (int i = 0; i < HwConfig::max_frame_candidates + 5; ++i)
        hw::dedup_add(*state, *params, {sample, i % 16, -100 - i});
    EXPECT_EQ(state->dropped, 5u) << "a frame queues at most max_frame_candidates";
    EXPECT_EQ(state->n_pending, HwConfig::max_frame_candidates);
    std::uint64_t added = HwConfig::max_frame_candidates + 5;
    for (std::uint64_t frame = 0; frame < 2 * HwConfig::max_pending / HwConfig::max_frame_candidates; ++frame) {
        hw::dedup_advance(*state, *params, frame, false, emit);
        for (int i = 0; i < HwConfig::max_frame_candidates; ++i, ++added)
            hw::dedup_add(*state, *params, {sample + frame + 1, i % 16, -100 - i});
    }
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(state->n_pending, HwConfig::max_pending);
    EXPECT_EQ(state->dropped, added - static_cast<std::uint64_t>(HwConfig::max_pending));
}

TEST(SpatialDedup, AFrameEndDecidesAtMostItsShareAndTheRestFollowInOrder) {
    auto params = default_params(128); // 64 rows 20 um apart
    params->artifact_window = 0;
    // Ten candidates with one peak sample on channels 120 um apart, too far to compete: all survive.
    auto bounded = std::make_unique<hw::DedupState<HwConfig>>();
    auto unbounded = std::make_unique<hw::DedupState<HwConfig>>();
    const std::uint64_t sample = 100;
    for (int ch : {108, 0, 96, 12, 84, 24, 72, 36, 60, 48}) {
        hw::dedup_add(*bounded, *params, {sample, ch, -100});
        hw::dedup_add(*unbounded, *params, {sample, ch, -100});
    }
    std::vector<hw::SpikeEvent> all;
    hw::dedup_advance(*unbounded, *params, 0, true, [&](const hw::SpikeEvent& e) { all.push_back(e); });
    const auto eligible = sample + static_cast<std::uint64_t>(params->dedup_window + params->align_window - 1);
    std::vector<hw::SpikeEvent> out;
    std::vector<std::size_t> per_frame;
    for (std::uint64_t frame = eligible; frame < eligible + 4; ++frame) {
        const std::size_t before = out.size();
        hw::dedup_advance(*bounded, *params, frame, false, [&](const hw::SpikeEvent& e) { out.push_back(e); });
        per_frame.push_back(out.size() - before);
    }
    const auto share = static_cast<std::size_t>(HwConfig::max_frame_decisions);
    EXPECT_EQ(per_frame, (std::vector<std::size_t>{share, share, 10 - 2 * share, 0}));
    EXPECT_EQ(out, all) << "the same events, in (sample, channel) order, only later";
}

TEST(ArtifactRejection, ACrossingOnMostOfAShankIsDroppedLoggedAndBlanked) {
    auto params = default_params(64); // one shank: one reference group
    params->artifact_window = 9;
    params->artifact_limit[0] = 16;
    params->artifact_blank = 15;
    auto state = std::make_unique<hw::DedupState<HwConfig>>();
    std::vector<hw::SpikeEvent> out;
    auto emit = [&](const hw::SpikeEvent& e) { out.push_back(e); };
    std::uint64_t frame = 0;
    auto end_frame = [&] { hw::dedup_advance(*state, *params, frame++, false, emit); };
    for (; frame < 100;)
        end_frame();
    // A spike (3 contacts) just before the artefact, then the artefact: 17 channels in one frame and 10 in the next.
    hw::dedup_add(*state, *params, {97, 40, -500});
    hw::dedup_add(*state, *params, {97, 41, -300});
    hw::dedup_add(*state, *params, {98, 42, -200});
    end_frame();
    for (int ch = 0; ch < 17; ++ch)
        hw::dedup_add(*state, *params, {frame, ch, -1000});
    end_frame(); // 20 in the window: declared
    ASSERT_EQ(state->artifacts.count, 1u);
    EXPECT_EQ(state->artifacts.log[0],
              (hw::ArtifactEvent{frame - 1 - static_cast<std::uint64_t>(params->align_window - 1), 0, 20}));
    EXPECT_EQ(state->n_pending, 0) << "every undecided candidate of the group goes";
    for (int ch = 17; ch < 27; ++ch)
        hw::dedup_add(*state, *params, {frame, ch, -1000}); // during the blanking: dropped as they come
    EXPECT_EQ(state->n_pending, 0);
    for (int k = 0; k < 40; ++k)
        end_frame();
    EXPECT_EQ(state->artifacts.count, 1u) << "one artefact, however long it lasts";
    EXPECT_EQ(state->artifacts.dropped_candidates, 3u + 17u + 10u);
    hw::dedup_add(*state, *params, {frame, 50, -400}); // after the blanking: a spike again
    for (int k = 0; k < 40; ++k)
        end_frame();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].channel, 50);
}

TEST(ArtifactRejection, AWideSpikeUnderTheLimitIsKept) {
    auto params = default_params(64);
    params->artifact_window = 9;
    params->artifact_limit[0] = 16;
    auto state = std::make_unique<hw::DedupState<HwConfig>>();
    std::vector<hw::SpikeEvent> out;
    std::uint64_t frame = 100;
    for (int ch = 0; ch < 16; ++ch) // 16 contacts over 4 frames: at the limit, not over it
        hw::dedup_add(*state, *params, {frame + static_cast<std::uint64_t>(ch / 4), ch, -1000 + ch});
    for (int k = 0; k < 100; ++k)
        hw::dedup_advance(*state, *params, frame++, false, [&](const hw::SpikeEvent& e) { out.push_back(e); });
    EXPECT_EQ(state->artifacts.count, 0u);
    EXPECT_FALSE(out.empty());
}

TEST(Settings, RejectWhatTheHardwareCannotRepresent) {
    const auto probe = probe::default_probe(64);
    DetectSettings bad_band;
    bad_band.band_high_hz = 20000;
    EXPECT_THROW(make_detect_params(bad_band, probe, kRate), InputError);
    DetectSettings bad_threshold;
    bad_threshold.threshold_sigma = 12;
    EXPECT_THROW(make_detect_params(bad_threshold, probe, kRate), InputError);
    DetectSettings long_align;
    long_align.align_ms = 5;
    EXPECT_THROW(make_detect_params(long_align, probe, kRate), InputError);
    EXPECT_THROW(make_detect_params(DetectSettings{}, probe::default_probe(2048), kRate), InputError);
}

} // namespace
} // namespace spikeline
