// Real SpikeGLX headers (../shared/fixtures/spikeglx, see its README), each with a sparse .bin of the size it states,
// opened as a user would; channels, skipped channels, gain and contact positions are checked against values worked
// out here from the documented rules (SpikeGLX metadata help and probe tables), written out independently of the
// reader: per part number the site pitches and offsets, the ADC range, maxInt and gain rule.
#include "io/recording.hpp"
#include "io/spikeglx.hpp"
#include "real_headers.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace spikeline;

namespace {

const fs::path kFixtures = spikeline::testing::real_headers("spikeglx");
[[maybe_unused]] const auto* const kSkipWithoutHeaders = spikeline::testing::skip_without_real_headers(kFixtures);

/// Documented layout of a probe family: x = shank * shank_pitch + (row odd ? x_odd : x_even) + column * x_pitch,
/// y = row * y_pitch; and its ADC: microvolts per bit = range / max_int / gain * 1e6.
struct Documented {
    int columns;
    double x_even, x_odd, x_pitch, y_pitch, shank_pitch;
    double range, max_int, fixed_gain; // fixed_gain 0: the AP gain of the channel's ~imroTbl entry
    int imro_electrode_field;          // 0: bank * 384 + chan; else the field holding the electrode
    int imro_shank_field;              // -1: single shank
};

Documented documented(const std::string& part) {
    const Documented np1{2, 27, 11, 32, 20, 0, 0.6, 512, 0, 0, -1};
    if (part.rfind("PRB_1_4", 0) == 0 || part == "NP1000" || part.empty())
        return np1;
    if (part == "NP1015") // NHP short linear: both columns at the same x on every row
        return {2, 27, 27, 32, 20, 0, 0.6, 512, 0, 0, -1};
    if (part == "NP1030") // NHP 45 mm staggered, 125 um shank
        return {2, 27, 11, 87, 20, 0, 0.6, 512, 0, 0, -1};
    if (part == "NP1100") // NP Ultra: 8 columns, 6 um pitch
        return {8, 14, 14, 6, 6, 0, 0.6, 512, 0, 0, -1};
    if (part == "NP1110") // UHD phase 2: 8 columns, 6 um pitch; gain 500 set in the ~imroTbl header
        return {8, 15.5, 15.5, 6, 6, 0, 0.6, 512, 500, -1, -1};
    if (part.rfind("PRB2_1", 0) == 0) // NP2.0 type 21: 14-bit ADC, +-0.5 V, gain 80
        return {2, 27, 27, 32, 15, 0, 0.5, 8192, 80, 3, -1};
    if (part == "NP2010") // NP2.0 type 24: 4 shanks 250 um apart
        return {2, 27, 27, 32, 15, 250, 0.5, 8192, 80, 4, 1};
    if (part == "NP2013" || part == "NP2020") // commercial NP2.0: 12-bit ADC, +-0.62 V, gain 100
        return {2, 27, 27, 32, 15, 250, 0.62, 2048, 100, 4, 1};
    throw std::runtime_error("no documented values for " + part);
}

std::map<std::string, std::string> parse_meta(const fs::path& path) {
    std::map<std::string, std::string> meta;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        const auto equals = line.find('=');
        if (equals != std::string::npos)
            meta[line.substr(0, equals)] = line.substr(equals + 1);
    }
    return meta;
}

std::vector<std::string> groups_of(const std::string& value) {
    std::vector<std::string> groups;
    for (std::size_t open = value.find('('); open != std::string::npos; open = value.find('(', open + 1))
        groups.push_back(value.substr(open + 1, value.find(')', open) - open - 1));
    return groups;
}

std::vector<double> numbers(const std::string& text, char separator) {
    std::vector<double> values;
    std::istringstream in(text);
    for (std::string token; std::getline(in, token, separator);)
        if (!token.empty())
            values.push_back(std::stod(token));
    return values;
}

/// snsSaveChanSubset as acquired channel numbers ("all": 0..n-1).
std::vector<int> saved_channels(const std::string& value, int n_saved) {
    std::vector<int> channels;
    if (value == "all") {
        for (int c = 0; c < n_saved; ++c)
            channels.push_back(c);
        return channels;
    }
    std::istringstream in(value);
    for (std::string range; std::getline(in, range, ',');) {
        const auto colon = range.find(':');
        const int first = std::stoi(range.substr(0, colon));
        const int last = colon == std::string::npos ? first : std::stoi(range.substr(colon + 1));
        for (int c = first; c <= last; ++c)
            channels.push_back(c);
    }
    return channels;
}

struct Expected {
    int n_neural = 0;
    int n_saved = 0;
    double microvolts_per_bit = 0;
    std::vector<double> x, y;
    std::vector<int> shank;
    int n_unused = 0; ///< entries flagged unused in the .meta's map
};

Expected expected_for(const fs::path& meta_path) {
    const auto meta = parse_meta(meta_path);
    const std::string part = meta.count("imDatPrb_pn") ? meta.at("imDatPrb_pn") : "";
    const Documented doc = documented(part);
    Expected e;
    e.n_saved = std::stoi(meta.at("nSavedChans"));
    e.n_neural = static_cast<int>(numbers(meta.at("snsApLfSy"), ',')[0]);
    const std::vector<int> saved = saved_channels(meta.at("snsSaveChanSubset"), e.n_saved);
    const std::vector<std::string> imro = groups_of(meta.at("~imroTbl"));
    const double first_gain = doc.fixed_gain > 0 ? doc.fixed_gain : numbers(imro[1 + saved[0]], ' ')[3];
    e.microvolts_per_bit = doc.range / doc.max_int / first_gain * 1e6;

    if (doc.imro_electrode_field < 0) {
        // UHD 1110 selects electrodes by groups and column modes: its ~snsGeomMap is the documented statement.
        const std::vector<std::string> entries = groups_of(meta.at("~snsGeomMap"));
        for (std::size_t g = 1; g < entries.size(); ++g) { // after the header
            const auto fields = numbers(entries[g], ':');
            e.shank.push_back(static_cast<int>(fields[0]));
            e.x.push_back(fields[1]);
            e.y.push_back(fields[2]);
            e.n_unused += fields[3] == 0;
        }
        return e;
    }
    for (int k = 0; k < e.n_neural; ++k) {
        const auto entry = numbers(imro[1 + static_cast<std::size_t>(saved[static_cast<std::size_t>(k)])], ' ');
        const int electrode = doc.imro_electrode_field == 0
                                  ? static_cast<int>(entry[1]) * 384 + static_cast<int>(entry[0])
                                  : static_cast<int>(entry[static_cast<std::size_t>(doc.imro_electrode_field)]);
        const int shank = doc.imro_shank_field < 0 ? 0 : static_cast<int>(entry[doc.imro_shank_field]);
        const int row = electrode / doc.columns;
        const int column = electrode % doc.columns;
        e.shank.push_back(shank);
        e.x.push_back(shank * doc.shank_pitch + (row % 2 ? doc.x_odd : doc.x_even) + column * doc.x_pitch);
        e.y.push_back(row * doc.y_pitch);
    }
    for (const char* key : {"~snsShankMap", "~snsGeomMap"})
        if (meta.count(key))
            for (const std::string& entry : groups_of(meta.at(key)))
                if (entry.find(':') != std::string::npos)
                    e.n_unused += numbers(entry, ':').at(3) == 0;
    return e;
}

class SpikeGlxFixtures : public spikeline::testing::TempDirTest {
protected:
    /// A copy of the fixture's .meta, with keys replaced (or dropped: empty value), beside a sparse .bin of the size
    /// it states.
    fs::path make_recording(const fs::path& meta, const std::string& stem,
                            const std::map<std::string, std::string>& changes = {}) {
        std::map<std::string, std::string> keys = parse_meta(meta);
        for (const auto& [key, value] : changes)
            if (value.empty())
                keys.erase(key);
            else
                keys[key] = value;
        std::ofstream out(dir_ / (stem + ".meta"));
        for (const auto& [key, value] : keys)
            out << key << "=" << value << "\n";
        const fs::path bin = dir_ / (stem + ".bin");
        std::ofstream(bin).close();
        fs::resize_file(bin, std::stoull(keys.at("fileSizeBytes")));
        return bin;
    }
};

TEST_F(SpikeGlxFixtures, EveryHeaderOpensWithTheDocumentedChannelsGainAndGeometry) {
    ASSERT_TRUE(fs::is_directory(kFixtures)) << kFixtures << " is missing: see /work/shared/fixtures/README.md";
    int checked = 0;
    for (const auto& item : fs::directory_iterator(kFixtures)) {
        if (item.path().extension() != ".meta")
            continue;
        SCOPED_TRACE(item.path().filename().string());
        // The ".ap" of NAME.imec0.ap.meta is kept: the reader takes the band from it.
        const fs::path bin = make_recording(item.path(), item.path().stem().string());
        const Expected expected = expected_for(item.path());
        const io::RecordingInfo info = io::read_spikeglx_info(bin);

        EXPECT_EQ(info.n_channels, expected.n_neural);
        EXPECT_EQ(info.file_channels(), expected.n_saved);
        ASSERT_EQ(static_cast<int>(info.skipped_channels.size()), expected.n_saved - expected.n_neural);
        for (std::size_t s = 0; s < info.skipped_channels.size(); ++s) {
            EXPECT_EQ(info.skipped_channels[s].first, expected.n_neural + static_cast<int>(s));
            EXPECT_NE(info.skipped_channels[s].second.find("sync"), std::string::npos);
        }
        EXPECT_NEAR(info.microvolts_per_bit, expected.microvolts_per_bit, expected.microvolts_per_bit * 1e-3)
            << info.gain_source;
        EXPECT_FALSE(info.gain_fallback);
        EXPECT_FALSE(info.gain_source.empty());

        ASSERT_TRUE(info.probe.has_value()) << info.geometry_error;
        EXPECT_FALSE(info.probe->builtin_default);
        EXPECT_FALSE(info.geometry_source.empty());
        ASSERT_EQ(info.probe->n_channels(), expected.n_neural);
        ASSERT_EQ(expected.x.size(), static_cast<std::size_t>(expected.n_neural));
        int n_excluded = 0;
        for (int c = 0; c < expected.n_neural; ++c) {
            const auto& contact = info.probe->contacts[static_cast<std::size_t>(c)];
            const auto k = static_cast<std::size_t>(c);
            EXPECT_EQ(contact.shank, expected.shank[k]) << "channel " << c;
            EXPECT_NEAR(contact.x_um, expected.x[k], 0.5) << "channel " << c;
            EXPECT_NEAR(contact.y_um, expected.y[k], 0.5) << "channel " << c;
            n_excluded += contact.excluded;
        }
        EXPECT_EQ(n_excluded, expected.n_unused);
        ++checked;
    }
    EXPECT_EQ(checked, 19);
}

TEST_F(SpikeGlxFixtures, WithoutMapsTheGeometryComesFromImroTblAndTheDocumentedLayout) {
    // Metadata with neither ~snsGeomMap nor ~snsShankMap (other tools, hand-edited files): the electrode each
    // ~imroTbl entry selects, placed by the part number's layout, gives the same positions.
    int checked = 0;
    for (const char* name :
         {"allan-longcol_g0_t0.imec0.ap.meta", "doppio-checkerboard_t0.imec0.ap.meta", "NP-Ultra.meta",
          "non_human_primate_long_staggered.imec0.ap.meta", "non_human_primate_short_linear_probe_type_0.meta",
          "p2_g0_t0.imec0.ap.meta", "NP2_4_shanks_save_different_electrodes.imec0.ap.meta",
          "NP2_2013_subset_channels.imec0.ap.meta", "NP2020_sample_g0_t0.imec0.ap.meta", "phase3a.imec.ap.meta",
          "NP1_saved_only_subset_of_channels.meta"}) {
        SCOPED_TRACE(name);
        const fs::path fixture = kFixtures / name;
        const fs::path bin = make_recording(fixture, fs::path(name).stem().string() + ".nomap",
                                            {{"~snsGeomMap", ""}, {"~snsShankMap", ""}});
        const io::RecordingInfo info = io::read_spikeglx_info(bin);
        const Expected expected = expected_for(fixture);
        ASSERT_TRUE(info.probe.has_value()) << info.geometry_error;
        EXPECT_NE(info.geometry_source.find("~imroTbl"), std::string::npos) << info.geometry_source;
        ASSERT_EQ(info.probe->n_channels(), expected.n_neural);
        for (std::size_t c = 0; c < expected.x.size(); ++c) {
            EXPECT_EQ(info.probe->contacts[c].shank, expected.shank[c]) << "channel " << c;
            EXPECT_NEAR(info.probe->contacts[c].x_um, expected.x[c], 0.5) << "channel " << c;
            EXPECT_NEAR(info.probe->contacts[c].y_um, expected.y[c], 0.5) << "channel " << c;
        }
        ++checked;
    }
    EXPECT_EQ(checked, 11);
}

TEST_F(SpikeGlxFixtures, LfBandUsesTheLfGainAndItsImroEntries) {
    // catgt.meta's ~imroTbl sets AP gain 500 and LF gain 50: the LF file (NAME.lf.bin, saved channels 384..767 and
    // the sync channel 768) is 0.6 V / 512 / 50 = 23.4375 uV/bit.
    const fs::path bin = make_recording(kFixtures / "catgt.meta", "catgt.imec0.lf",
                                        {{"snsApLfSy", "0,384,1"}, {"snsSaveChanSubset", "384:768"}});
    const io::RecordingInfo info = io::read_spikeglx_info(bin);
    EXPECT_EQ(info.n_channels, 384);
    EXPECT_NEAR(info.microvolts_per_bit, 0.6 / 512 / 50 * 1e6, 1e-9);
    ASSERT_TRUE(info.probe.has_value());
    EXPECT_NEAR(info.probe->contacts[3].x_um, 43, 1e-9); // electrode 3: odd row, second column
    EXPECT_NEAR(info.probe->contacts[3].y_um, 20, 1e-9);
}

TEST_F(SpikeGlxFixtures, ChannelsOfDifferentGainsAreReported) {
    auto keys = parse_meta(kFixtures / "catgt.meta");
    std::string table = keys.at("~imroTbl");
    const std::string second = "(1 0 1 500 50 1)";
    ASSERT_NE(table.find(second), std::string::npos);
    table.replace(table.find(second), second.size(), "(1 0 1 1000 50 1)");
    const io::RecordingInfo info =
        io::read_spikeglx_info(make_recording(kFixtures / "catgt.meta", "mixed", {{"~imroTbl", table}}));
    // Channel 0's gain (500) scales every channel, and the difference is said.
    EXPECT_NEAR(info.microvolts_per_bit, 0.6 / 512 / 500 * 1e6, 1e-9);
    EXPECT_NE(info.warning.find("channels differ in gain"), std::string::npos) << info.warning;
    EXPECT_NE(info.warning.find("channel 1: 1000"), std::string::npos) << info.warning;
}

TEST_F(SpikeGlxFixtures, UnknownProbeHasNoGeometryAndAFlaggedGain) {
    // A part number no documentation here describes, without imChan0apGain and with ~imroTbl entries that carry no
    // gain (NP2.0-style): neither layout nor gain is guessed.
    const io::RecordingInfo info = io::read_spikeglx_info(make_recording(
        kFixtures / "p2_g0_t0.imec0.ap.meta", "unknown", {{"imDatPrb_pn", "NP9999"}, {"imDatPrb_type", "9999"}}));
    EXPECT_FALSE(info.probe.has_value());
    EXPECT_TRUE(info.gain_fallback);
    EXPECT_EQ(info.microvolts_per_bit, 0.0);
    EXPECT_NE(info.gain_source.find("NP9999"), std::string::npos) << info.gain_source;
    // A malformed map is kept as an error for resolve_probe, not a crash nor a silent default.
    const io::RecordingInfo broken = io::read_spikeglx_info(
        make_recording(kFixtures / "catgt.meta", "broken", {{"~snsShankMap", "(1,2,480)(0:0:0)"}}));
    EXPECT_FALSE(broken.probe.has_value());
    EXPECT_NE(broken.geometry_error.find("~snsShankMap"), std::string::npos) << broken.geometry_error;
}

} // namespace
