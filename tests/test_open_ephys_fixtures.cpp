// Open Ephys headers from real rigs (../shared/fixtures/openephys): each structure.oebin is rebuilt into a recording
// folder with a sparse continuous.dat per stream, and what the reader makes of it is checked against the rules the
// Open Ephys and Neuropixels documentation give, computed here from the headers' own fields (electrode_index per
// channel, bit_volts, channel descriptions). settings.xml files without an oebin check the settings parser.
#include "io/open_ephys.hpp"
#include "io/open_ephys_settings.hpp"
#include "util/errors.hpp"

#include "real_headers.hpp"
#include "temp_dir_test.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

namespace fs = std::filesystem;
using spikeline::InputError;
using spikeline::io::OpenEphysProbe;

const fs::path kFixtures = spikeline::testing::real_headers("openephys");
[[maybe_unused]] const auto* const kSkipWithoutHeaders = spikeline::testing::skip_without_real_headers(kFixtures);

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Position {
    double x_um = 0, y_um = 0;
    int shank = 0;
};

/// Documented site layouts by electrode index (SpikeGLX / IMEC probe tables): NP2.0 four-shank (NP2010/2013/2014:
/// 1280 electrodes per shank, 2 columns 32 um apart, rows 15 um apart, shanks 250 um apart, even electrodes in the
/// left column); NP2.0 single shank (NP2000/2003/2004: the same on one shank); NHP linear long (NP1032: 2 columns 103
/// um apart, rows 20 um apart); NP1.0 (staggered: 4 electrodes per two rows at x 16, 48, 0, 32 um, rows 20 um apart).
Position documented_position(const std::string& part, int electrode) {
    if (part == "NP2010" || part == "NP2013" || part == "NP2014") {
        const int shank = electrode / 1280, within = electrode % 1280;
        return {shank * 250.0 + (within % 2) * 32.0, (within / 2) * 15.0, shank};
    }
    if (part == "NP2000" || part == "NP2003" || part == "NP2004")
        return {(electrode % 2) * 32.0, (electrode / 2) * 15.0, 0};
    if (part == "NP1032")
        return {(electrode % 2) * 103.0, (electrode / 2) * 20.0, 0};
    if (part.rfind("PRB_1_", 0) == 0) {
        static const double kX[] = {16, 48, 0, 32};
        return {kX[electrode % 4], (electrode / 2) * 20.0, 0};
    }
    ADD_FAILURE() << "no documented layout in this test for " << part;
    return {};
}

int electrode_index(const nlohmann::json& channel) {
    for (const auto& item : channel.at("channel_metadata"))
        if (item.at("name") == "electrode_index")
            return item.at("value").at(0).get<int>();
    return -1;
}

struct OebinFixture {
    std::string folder;      ///< under openephys/
    std::string node;        ///< the Record Node folder
    std::string recording;   ///< experimentN/recordingM
    std::string part_number; ///< the probe settings.xml names (probe_part_number)
};

class OpenEphysOebinFixtures : public spikeline::testing::TempDirTest,
                               public ::testing::WithParamInterface<OebinFixture> {
protected:
    /// The recording folder rebuilt under dir_: structure.oebin, settings.xml and a few sparse frames per stream.
    fs::path build_recording() {
        const OebinFixture& fixture = GetParam();
        const fs::path source = kFixtures / fixture.folder / fixture.node;
        const fs::path node = dir_ / fixture.node;
        const fs::path recording = node / fixture.recording;
        fs::create_directories(recording);
        fs::copy_file(source / "settings.xml", node / "settings.xml");
        fs::copy_file(source / fixture.recording / "structure.oebin", recording / "structure.oebin");
        oebin_ = nlohmann::json::parse(read_text(recording / "structure.oebin"));
        for (const auto& stream : oebin_.at("continuous")) {
            std::string folder = stream.at("folder_name").get<std::string>();
            folder.erase(folder.find_last_not_of('/') + 1);
            const fs::path data = recording / "continuous" / folder;
            fs::create_directories(data);
            std::ofstream(data / "continuous.dat").close();
            fs::resize_file(data / "continuous.dat", 2u * stream.at("num_channels").get<unsigned>() * kFrames);
        }
        return recording;
    }

    static constexpr unsigned kFrames = 7;
    nlohmann::json oebin_;
};

TEST_P(OpenEphysOebinFixtures, EveryStreamOpensWithItsElectrodesGainAndGeometry) {
    const fs::path recording = build_recording();
    const std::string part = GetParam().part_number;
    int probe_streams = 0;
    for (const auto& stream : oebin_.at("continuous")) {
        const std::string name = stream.at("stream_name");
        const auto& channels = stream.at("channels");
        const int file_channels = stream.at("num_channels");
        // Documented: Neuropixels streams carry "Neuropixels electrode" channels, then the sync line; NI-DAQ and
        // OneBox ADC streams carry inputs whose bit_volts are volts per bit.
        std::vector<int> electrodes, sync;
        for (int c = 0; c < file_channels; ++c) {
            const std::string description = channels.at(c).at("description");
            if (description == "Neuropixels electrode")
                electrodes.push_back(c);
            else if (description.find("sync") != std::string::npos)
                sync.push_back(c);
        }
        SCOPED_TRACE(name);
        if (electrodes.empty()) {
            try {
                spikeline::io::read_open_ephys_info(recording, name);
                ADD_FAILURE() << "a stream without electrodes was read as neural";
            } catch (const InputError& e) {
                EXPECT_NE(std::string(e.what()).find("--force-non-neural"), std::string::npos) << e.what();
            }
            const auto forced = spikeline::io::read_open_ephys_info(recording, name, true);
            EXPECT_EQ(forced.n_channels, file_channels);
            EXPECT_TRUE(forced.skipped_channels.empty());
            EXPECT_NEAR(forced.microvolts_per_bit, channels.at(0).at("bit_volts").get<double>() * 1e6,
                        1e-3 * forced.microvolts_per_bit);
            EXPECT_FALSE(forced.probe.has_value());
            continue;
        }
        ++probe_streams;
        const auto info = spikeline::io::read_open_ephys_info(recording, name);
        EXPECT_EQ(info.n_channels, static_cast<int>(electrodes.size()));
        EXPECT_EQ(info.file_channels(), file_channels);
        EXPECT_EQ(info.n_frames, kFrames);
        ASSERT_EQ(info.skipped_channels.size(), sync.size());
        for (std::size_t i = 0; i < sync.size(); ++i) {
            EXPECT_EQ(info.skipped_channels[i].first, sync[i]);
            EXPECT_NE(info.skipped_channels[i].second.find("sync"), std::string::npos);
        }
        // bit_volts of electrode channels is microvolts per bit.
        EXPECT_NEAR(info.microvolts_per_bit, channels.at(electrodes[0]).at("bit_volts").get<double>(),
                    1e-3 * info.microvolts_per_bit);
        EXPECT_FALSE(info.gain_fallback);
        ASSERT_TRUE(info.probe.has_value()) << info.warning;
        EXPECT_NE(info.geometry_source.find("settings.xml"), std::string::npos);
        EXPECT_EQ(info.probe->name.rfind(part, 0), 0u) << info.probe->name;
        ASSERT_EQ(info.probe->n_channels(), info.n_channels);
        // Positions: the documented layout at each channel's electrode_index, up to the translation the plugin's
        // origin adds (it differs between plugin versions).
        const Position first = documented_position(part, electrode_index(channels.at(electrodes[0])));
        const double dx = info.probe->contacts[0].x_um - first.x_um, dy = info.probe->contacts[0].y_um - first.y_um;
        for (int c = 0; c < info.n_channels; ++c) {
            const int electrode = electrode_index(channels.at(electrodes[static_cast<std::size_t>(c)]));
            const Position expected = documented_position(part, electrode);
            const auto& contact = info.probe->contacts[static_cast<std::size_t>(c)];
            EXPECT_NEAR(contact.x_um - dx, expected.x_um, 0.5) << "channel " << c << " electrode " << electrode;
            EXPECT_NEAR(contact.y_um - dy, expected.y_um, 0.5) << "channel " << c << " electrode " << electrode;
            EXPECT_EQ(contact.shank, expected.shank) << "channel " << c << " electrode " << electrode;
            EXPECT_FALSE(contact.excluded);
        }
    }
    EXPECT_GT(probe_streams, 0);
}

INSTANTIATE_TEST_SUITE_P(
    RealHeaders, OpenEphysOebinFixtures,
    ::testing::Values(
        OebinFixture{"OE_Neuropix-PXI-NP1-binary", "Record_Node_101", "experiment1/recording1", "NP2014"},
        OebinFixture{"OE_Neuropix-PXI-NP2-4shank-binary", "Record_Node_101", "experiment4/recording2", "NP1032"},
        OebinFixture{"OE_Neuropix-PXI-NP2-multishank-binary", "Record_Node_109", "experiment1/recording1", "NP2013"},
        OebinFixture{"OE_OneBox-NP2014-binary", "Record_Node_101", "experiment1/recording1", "NP2014"}),
    [](const ::testing::TestParamInfo<OebinFixture>& param_info) {
        std::string name = param_info.param.folder.substr(3);
        for (char& c : name)
            if (!std::isalnum(static_cast<unsigned char>(c)))
                c = '_';
        return name;
    });

// ---------------------------------------------------------------------------------------------------------------
// settings.xml alone

/// Per enabled NP_PROBE of the file, its part number and the ELECTRODE_XPOS / ELECTRODE_YPOS / CHANNELS attributes,
/// found with regular expressions (independently of the parser under test).
struct RawProbe {
    std::string part;
    std::map<std::string, std::string> x, y, channels;
};

std::map<std::string, std::string> attributes_of(const std::string& element) {
    static const std::regex kAttribute(R"re(([A-Za-z_0-9]+)="([^"]*)")re");
    std::map<std::string, std::string> result;
    for (auto it = std::sregex_iterator(element.begin(), element.end(), kAttribute); it != std::sregex_iterator(); ++it)
        result[(*it)[1]] = (*it)[2];
    return result;
}

std::vector<RawProbe> raw_probes(const std::string& xml) {
    std::vector<RawProbe> probes;
    std::size_t at = 0;
    while ((at = xml.find("<NP_PROBE ", at)) != std::string::npos) {
        const std::size_t end = xml.find("</NP_PROBE>", at);
        const std::string block = xml.substr(at, end - at);
        at = end;
        const auto header = attributes_of(block.substr(0, block.find('>')));
        if (header.count("isEnabled") && header.at("isEnabled") == "0")
            continue;
        const auto element = [&](const std::string& tag) {
            const std::size_t start = block.find("<" + tag + " ");
            return start == std::string::npos ? std::map<std::string, std::string>()
                                              : attributes_of(block.substr(start, block.find("/>", start) - start));
        };
        probes.push_back({header.at("probe_part_number"), element("ELECTRODE_XPOS"), element("ELECTRODE_YPOS"),
                          element("CHANNELS")});
    }
    return probes;
}

/// A recording folder for a settings.xml without an oebin: one stream `stream` of `processor` (node `node_id`) with
/// 384 electrode channels CH0..CH383 and a sync line, as the Neuropix-PXI plugin names them.
fs::path synthetic_recording(const fs::path& root, const fs::path& settings, const std::string& processor,
                             const std::string& node_id, const std::string& stream) {
    const fs::path node = root / "Record Node 102";
    const fs::path recording = node / "experiment1" / "recording1";
    const std::string folder = processor + "-" + node_id + "." + stream;
    fs::create_directories(recording / "continuous" / folder);
    fs::copy_file(settings, node / "settings.xml");
    nlohmann::json channels = nlohmann::json::array();
    for (int c = 0; c < 384; ++c)
        channels.push_back({{"channel_name", "CH" + std::to_string(c)},
                            {"description", "Neuropixels electrode"},
                            {"bit_volts", 0.195},
                            {"units", "uV"}});
    channels.push_back(
        {{"channel_name", "CH_SYNC"}, {"description", "Neuropixels sync line"}, {"bit_volts", 1.0}, {"units", ""}});
    const nlohmann::json oebin = {{"continuous",
                                   {{{"folder_name", folder + "/"},
                                     {"stream_name", stream},
                                     {"source_processor_name", processor},
                                     {"source_processor_id", std::stoi(node_id)},
                                     {"sample_rate", 30000.0},
                                     {"num_channels", 385},
                                     {"channels", channels}}}}};
    std::ofstream(recording / "structure.oebin") << oebin.dump();
    std::ofstream(recording / "continuous" / folder / "continuous.dat").close();
    fs::resize_file(recording / "continuous" / folder / "continuous.dat", 385u * 2u * 3u);
    return recording;
}

using OpenEphysStreamGeometry = spikeline::testing::TempDirTest;

TEST_F(OpenEphysStreamGeometry, QuadBaseShankStreamsAndNpUltraStreamsGetTheirProbesPositions) {
    struct Case {
        std::string file, stream, key_suffix, part;
        int probe_in_file; ///< which NP_PROBE of the file (0-based) the stream's positions are
    };
    const std::vector<Case> cases = {
        {"OE_Neuropix-PXI-QuadBase/settings.xml", "ProbeC-1", "_0", "NP2020", 2},
        {"OE_Neuropix-PXI-QuadBase/settings.xml", "ProbeC-4", "_3", "NP2020", 5},
        {"OE_Neuropix-PXI-QuadBase/settings.xml", "ProbeB-AP", "", "NP1016", 1},
        {"OE_Neuropix-PXI-NP-Ultra/settings.xml", "ProbeD-AP", "", "NP1121", 3},
        {"OE_Neuropix-PXI-NP-Ultra/settings.xml", "ProbeA-LFP", "", "NP1100", 1},
    };
    for (const Case& test : cases) {
        SCOPED_TRACE(test.file + " " + test.stream);
        const fs::path root = dir_ / (test.stream + std::to_string(test.probe_in_file));
        const fs::path recording = synthetic_recording(root, kFixtures / test.file, "Neuropix-PXI", "100", test.stream);
        const auto info = spikeline::io::read_open_ephys_info(recording, "");
        ASSERT_TRUE(info.probe.has_value()) << info.warning;
        EXPECT_EQ(info.probe->name.rfind(test.part, 0), 0u) << info.probe->name;
        EXPECT_EQ(info.n_channels, 384);
        const RawProbe expected = raw_probes(read_text(kFixtures / test.file)).at(test.probe_in_file);
        for (int c = 0; c < 384; ++c) {
            const std::string key = "CH" + std::to_string(c) + test.key_suffix;
            const auto& contact = info.probe->contacts[static_cast<std::size_t>(c)];
            EXPECT_DOUBLE_EQ(contact.x_um, std::stod(expected.x.at(key))) << key;
            EXPECT_DOUBLE_EQ(contact.y_um, std::stod(expected.y.at(key))) << key;
            if (!test.key_suffix.empty()) {
                EXPECT_EQ(contact.shank, std::stoi(test.key_suffix.substr(1))) << key;
            }
        }
    }
}

TEST_F(OpenEphysStreamGeometry, ASettingsFileWithoutTheStreamsProbeWarnsAndFallsBack) {
    // settings.xml of another rig: its Neuropix-PXI node lists ProbeA only.
    const fs::path recording =
        synthetic_recording(dir_, kFixtures / "OE_Neuropix-PXI" / "settings.xml", "Neuropix-PXI", "100", "ProbeQ-AP");
    const auto info = spikeline::io::read_open_ephys_info(recording, "");
    EXPECT_FALSE(info.probe.has_value());
    EXPECT_NE(info.warning.find("no probe for stream 'ProbeQ-AP'"), std::string::npos) << info.warning;
    EXPECT_EQ(info.n_channels, 384);
}

TEST(OpenEphysSettings, EveryProbeOfEveryFileHasTheFilesPositionsAndTheDocumentedLayout) {
    int files = 0, probes_checked = 0, layouts_checked = 0;
    for (const auto& entry : fs::recursive_directory_iterator(kFixtures)) {
        if (entry.path().extension() != ".xml")
            continue;
        ++files;
        SCOPED_TRACE(entry.path().string());
        const std::vector<RawProbe> expected = raw_probes(read_text(entry.path()));
        std::vector<OpenEphysProbe> probes = spikeline::io::read_open_ephys_probes(entry.path());
        std::erase_if(probes, [](const OpenEphysProbe& probe) { return probe.processor == "ONIX Source"; });
        ASSERT_EQ(probes.size(), expected.size());
        for (std::size_t p = 0; p < probes.size(); ++p) {
            EXPECT_EQ(probes[p].part_number, expected[p].part);
            ASSERT_EQ(probes[p].sites.size(), expected[p].x.size());
            for (const auto& [key, x_text] : expected[p].x) {
                // CH<channel> or, for a quad-base shank, CH<channel>_<shank>.
                const std::size_t underscore = key.find('_');
                const int channel = std::stoi(key.substr(2, underscore - 2));
                const auto site = probes[p].sites.find(channel);
                ASSERT_NE(site, probes[p].sites.end()) << key;
                EXPECT_DOUBLE_EQ(site->second.x_um, std::stod(x_text)) << key;
                EXPECT_DOUBLE_EQ(site->second.y_um, std::stod(expected[p].y.at(key))) << key;
                if (underscore != std::string::npos) {
                    EXPECT_EQ(site->second.shank, std::stoi(key.substr(underscore + 1))) << key;
                }
            }
            ++probes_checked;
            // NP1.0: electrode = channel + 384 * bank, at the documented staggered position (up to the origin).
            if (expected[p].part.rfind("PRB_1_", 0) == 0) {
                const auto& [first_channel, first_site] = *probes[p].sites.begin();
                const Position origin = documented_position(expected[p].part, first_channel + 384 * first_site.bank);
                for (const auto& [channel, site] : probes[p].sites) {
                    const Position documented = documented_position(expected[p].part, channel + 384 * site.bank);
                    EXPECT_NEAR(site.x_um - first_site.x_um, documented.x_um - origin.x_um, 0.5) << channel;
                    EXPECT_NEAR(site.y_um - first_site.y_um, documented.y_um - origin.y_um, 0.5) << channel;
                }
                ++layouts_checked;
            }
            // Quad-base (NP2020/2021): each per-shank entry sits on its shank, 250 um from the next, 2 columns
            // 32 um apart.
            if (expected[p].part == "NP2020" || expected[p].part == "NP2021") {
                const spikeline::io::OpenEphysSite& first = probes[p].sites.begin()->second;
                for (const auto& [channel, site] : probes[p].sites) {
                    EXPECT_EQ(site.shank, first.shank) << channel;
                    const double column = site.x_um - 250.0 * site.shank - (first.x_um - 250.0 * first.shank);
                    EXPECT_TRUE(std::abs(column) < 0.5 || std::abs(std::abs(column) - 32) < 0.5) << channel;
                }
                ++layouts_checked;
            }
        }
    }
    EXPECT_GE(files, 20);
    EXPECT_GE(probes_checked, 40);
    EXPECT_GE(layouts_checked, 10);
}

TEST(OpenEphysSettings, StreamsFindTheirProbeInMultiProbeFiles) {
    using spikeline::io::find_open_ephys_probe;
    // NP Ultra rig: streams listed B, A, F, D; probes named after them (custom_probe_name).
    const auto ultra = spikeline::io::read_open_ephys_probes(kFixtures / "OE_Neuropix-PXI-NP-Ultra" / "settings.xml");
    ASSERT_EQ(ultra.size(), 4u);
    const auto* d = find_open_ephys_probe(ultra, "ProbeD-AP", "Neuropix-PXI", "100");
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->part_number, "NP1121");
    const auto* a = find_open_ephys_probe(ultra, "ProbeA-LFP", "Neuropix-PXI", "100");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->serial_number, "20088315631");
    EXPECT_EQ(find_open_ephys_probe(ultra, "ProbeA-AP", "Neuropix-PXI", "101"), nullptr); // another node
    EXPECT_EQ(find_open_ephys_probe(ultra, "PXI-6133", "NI-DAQmx", ""), nullptr);

    // Quad base: four streams, one per shank, each its own NP_PROBE entry.
    const auto quad = spikeline::io::read_open_ephys_probes(kFixtures / "OE_Neuropix-PXI-QuadBase" / "settings.xml");
    for (int shank = 0; shank < 4; ++shank) {
        const auto* probe = find_open_ephys_probe(quad, "ProbeC-" + std::to_string(shank + 1), "Neuropix-PXI", "");
        ASSERT_NE(probe, nullptr) << shank;
        EXPECT_EQ(probe->part_number, "NP2020");
        EXPECT_EQ(probe->sites.begin()->second.shank, shank);
    }
    const auto* sapiens = find_open_ephys_probe(quad, "ProbeB-AP", "Neuropix-PXI", "");
    ASSERT_NE(sapiens, nullptr);
    EXPECT_EQ(sapiens->part_number, "NP1016");
    // Custom stream names: "50213-3" is the third shank of the quad-base probe named 50213.
    const auto custom =
        spikeline::io::read_open_ephys_probes(kFixtures / "OE_Neuropix-PXI-QuadBase" / "settings_custom_names.xml");
    const auto* third = find_open_ephys_probe(custom, "50213-3", "Neuropix-PXI", "100");
    ASSERT_NE(third, nullptr);
    EXPECT_EQ(third->serial_number, "23207205101");
    EXPECT_EQ(third->sites.begin()->second.shank, 2);

    // A disabled probe is not listed; the enabled one keeps its stream.
    const auto one = spikeline::io::read_open_ephys_probes(kFixtures / "OE_6.7_enabled_disabled_Neuropix-PXI" /
                                                           "settings_enabled-disabled.xml");
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0].stream_base, "ProbeA");
    // GUI 0.5 lists no streams: with two probes, a stream cannot be told apart.
    const auto old =
        spikeline::io::read_open_ephys_probes(kFixtures / "OE_5_Neuropix-PXI-multi-probe" / "settings.xml");
    ASSERT_EQ(old.size(), 2u);
    EXPECT_EQ(find_open_ephys_probe(old, "ProbeA", "Neuropix-PXI", ""), nullptr);
}

TEST(OpenEphysSettings, OnixProbesAreAtTheirSelectedElectrodesOnTheDocumentedLayout) {
    static const std::regex kProbe(R"re(<(NEUROPIXELSV1E|PROBE[01]) [^>]*probePartNumber="([^"]+)")re");
    int probes_checked = 0;
    for (const auto& entry : fs::directory_iterator(kFixtures / "OE_ONIX-NP")) {
        SCOPED_TRACE(entry.path().string());
        const std::string xml = read_text(entry.path());
        const auto probes = spikeline::io::read_open_ephys_probes(entry.path());
        std::size_t index = 0;
        for (auto it = std::sregex_iterator(xml.begin(), xml.end(), kProbe); it != std::sregex_iterator(); ++it) {
            ASSERT_LT(index, probes.size());
            const OpenEphysProbe& probe = probes[index++];
            const std::string part = (*it)[2];
            EXPECT_EQ(probe.part_number, part);
            const std::size_t start = xml.find("<SELECTED_ELECTRODES ", static_cast<std::size_t>(it->position()));
            const auto electrodes = attributes_of(xml.substr(start, xml.find("/>", start) - start));
            ASSERT_EQ(probe.sites.size(), electrodes.size());
            for (const auto& [key, electrode] : electrodes) {
                const Position documented = documented_position(part, std::stoi(electrode));
                const auto& site = probe.sites.at(std::stoi(key.substr(2)));
                EXPECT_NEAR(site.x_um, documented.x_um, 0.5) << key;
                EXPECT_NEAR(site.y_um, documented.y_um, 0.5) << key;
                EXPECT_EQ(site.shank, documented.shank) << key;
            }
            ++probes_checked;
        }
        EXPECT_EQ(index, probes.size());
    }
    EXPECT_GE(probes_checked, 14);

    using spikeline::io::find_open_ephys_probe;
    const auto two = spikeline::io::read_open_ephys_probes(kFixtures / "OE_ONIX-NP" / "settings_NP2.xml");
    const auto* second =
        find_open_ephys_probe(two, "PortA-Neuropixels2.0eHeadstage-Neuropixels2.0-Probe1", "ONIX Source", "100");
    ASSERT_NE(second, nullptr);
    EXPECT_EQ(second->serial_number, "12345601013");
    EXPECT_EQ(find_open_ephys_probe(two, "BreakoutBoard-AnalogIO-AnalogInput", "ONIX Source", "100"), nullptr);
    const auto one = spikeline::io::read_open_ephys_probes(kFixtures / "OE_ONIX-NP" / "settings_bankB.xml");
    const auto* np1 = find_open_ephys_probe(one, "PortB-Neuropixels1.0eHeadstage-Probe-LFP", "ONIX Source", "100");
    ASSERT_NE(np1, nullptr);
    EXPECT_EQ(np1->part_number, "PRB_1_4_0480_1_C");
    // Bank B: electrodes 384..767, so channel 0 sits 20 um x 192 rows up.
    EXPECT_NEAR(np1->sites.at(0).y_um, 3840.0, 0.5);
}

TEST(OpenEphysSettings, MalformedFilesAreRefusedWithWhereAndWhat) {
    const fs::path dir = fs::temp_directory_path() / ("spikeline_oe_settings_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const auto expect_refused = [&](const std::string& text, const std::string& expected) {
        std::ofstream(dir / "settings.xml") << text;
        try {
            spikeline::io::read_open_ephys_probes(dir / "settings.xml");
            ADD_FAILURE() << "accepted: " << text;
        } catch (const InputError& e) {
            EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
        }
    };
    expect_refused("<SETTINGS><SIGNALCHAIN>", "not well-formed");
    const std::string probe_start = R"(<SETTINGS><SIGNALCHAIN><PROCESSOR name="Neuropix-PXI" nodeId="100">)"
                                    R"(<NP_PROBE probe_part_number="NP2000" probe_serial_number="7">)";
    const std::string probe_end = "</NP_PROBE></PROCESSOR></SIGNALCHAIN></SETTINGS>";
    expect_refused(probe_start + R"(<CHANNELS CH0="0"/><ELECTRODE_XPOS CH0="x"/><ELECTRODE_YPOS CH0="0"/>)" + probe_end,
                   "not a number");
    expect_refused(probe_start + R"(<CHANNELS CH0="0"/><ELECTRODE_XPOS CH1="1"/><ELECTRODE_YPOS CH0="0"/>)" + probe_end,
                   "CH0");
    expect_refused(
        probe_start + R"(<CHANNELS CH0="a:b"/><ELECTRODE_XPOS CH0="1"/><ELECTRODE_YPOS CH0="0"/>)" + probe_end, "bank");
    fs::remove_all(dir);
}

} // namespace
