#include "probe/probe.hpp"
#include "util/errors.hpp"

#include "temp_dir_test.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace spikeline;
using namespace spikeline::probe;

namespace {

class ProbeTest : public spikeline::testing::TempDirTest {
protected:
    fs::path write(const std::string& name, const std::string& text) const {
        const fs::path path = dir_ / name;
        std::ofstream(path) << text;
        return path;
    }
};

template <class Action> void expect_input_error(Action&& action, std::initializer_list<std::string> fragments) {
    try {
        action();
        ADD_FAILURE() << "expected an InputError";
    } catch (const InputError& e) {
        const std::string message = e.what();
        for (const auto& fragment : fragments)
            EXPECT_NE(message.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << message;
    }
}

TEST(DefaultProbe, HasEightShanksOfTwoColumnsFor1024Channels) {
    const Probe probe = default_probe();
    ASSERT_EQ(probe.n_channels(), 1024);
    EXPECT_EQ(probe.n_shanks(), 8);
    EXPECT_FALSE(probe.name.empty());
    for (int c = 0; c < probe.n_channels(); ++c) {
        const Contact& contact = probe.contacts[static_cast<std::size_t>(c)];
        const int shank = c / 128;
        const int within = c % 128;
        EXPECT_EQ(contact.shank, shank);
        EXPECT_DOUBLE_EQ(contact.x_um, shank * 250.0 + (within % 2) * 32.0) << c;
        EXPECT_DOUBLE_EQ(contact.y_um, (within / 2) * 20.0) << c;
    }
    EXPECT_EQ(probe.contacts[17].id, "s0e17");
    EXPECT_EQ(probe.contacts[129].id, "s1e1");
    EXPECT_EQ(probe.contacts[1023].id, "s7e127");
    EXPECT_DOUBLE_EQ(probe.contacts[1023].x_um, 7 * 250.0 + 32.0);
    EXPECT_DOUBLE_EQ(probe.contacts[1023].y_um, 63 * 20.0);

    // Column pitch, row pitch and the diagonal.
    EXPECT_DOUBLE_EQ(probe.distance_um(0, 1), 32.0);
    EXPECT_DOUBLE_EQ(probe.distance_um(0, 2), 20.0);
    EXPECT_DOUBLE_EQ(probe.distance_um(0, 3), std::hypot(32.0, 20.0));
    EXPECT_DOUBLE_EQ(probe.distance_um(0, 128), 250.0);
}

TEST(DefaultProbe, OtherSizes) {
    const Probe one_shank = default_probe(100);
    EXPECT_EQ(one_shank.n_channels(), 100);
    EXPECT_EQ(one_shank.n_shanks(), 1);
    EXPECT_DOUBLE_EQ(one_shank.contacts[99].y_um, 49 * 20.0);
    EXPECT_EQ(default_probe(256).n_shanks(), 2);
    EXPECT_EQ(default_probe(128).n_shanks(), 1);
    expect_input_error([] { default_probe(0); }, {"positive"});
}

TEST_F(ProbeTest, WriteReadRoundTrip) {
    Probe probe = default_probe(256);
    probe.contacts[5].x_um = 12.625; // a non-grid value must survive too
    probe.name = "round trip";
    const fs::path path = dir_ / "probe.json";
    write_probeinterface(probe, path);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1) << "temporary file left";

    // The file is probeinterface JSON with one entry per contact in every per-contact list.
    std::ifstream in(path);
    const nlohmann::json document = nlohmann::json::parse(in);
    EXPECT_EQ(document.at("specification"), "probeinterface");
    ASSERT_EQ(document.at("probes").size(), 1u);
    const auto& probe_json = document.at("probes")[0];
    EXPECT_EQ(probe_json.at("ndim"), 2);
    EXPECT_EQ(probe_json.at("si_units"), "um");
    for (const char* key : {"contact_positions", "contact_plane_axes", "contact_shapes", "contact_shape_params",
                            "device_channel_indices", "contact_ids", "shank_ids"})
        EXPECT_EQ(probe_json.at(key).size(), 256u) << key;
    EXPECT_EQ(probe_json.at("device_channel_indices")[200], 200);
    EXPECT_EQ(probe_json.at("shank_ids")[200], "1");

    const Probe read_back = read_probeinterface(path);
    EXPECT_EQ(read_back.name, "round trip");
    ASSERT_EQ(read_back.n_channels(), probe.n_channels());
    for (std::size_t c = 0; c < probe.contacts.size(); ++c) {
        EXPECT_DOUBLE_EQ(read_back.contacts[c].x_um, probe.contacts[c].x_um) << c;
        EXPECT_DOUBLE_EQ(read_back.contacts[c].y_um, probe.contacts[c].y_um) << c;
        EXPECT_EQ(read_back.contacts[c].shank, probe.contacts[c].shank) << c;
        EXPECT_EQ(read_back.contacts[c].id, probe.contacts[c].id) << c;
    }
}

// The fields and types probeinterface's JSON schema (src/probeinterface/schema/probe.json.schema) requires and
// allows: what probeinterface.validate checks before reading a file.
void expect_probeinterface_schema(const nlohmann::json& document) {
    const std::set<std::string> top_level = {"specification", "version", "probes"};
    for (const auto& [key, value] : document.items())
        EXPECT_TRUE(top_level.count(key)) << "not allowed at the top level: " << key;
    ASSERT_TRUE(document.at("specification").is_string());
    const std::string version = document.at("version");
    EXPECT_EQ(std::count(version.begin(), version.end(), '.'), 2) << "version is major.minor.patch: " << version;
    const std::set<std::string> probe_fields = {"ndim",
                                                "si_units",
                                                "annotations",
                                                "contact_annotations",
                                                "contact_positions",
                                                "contact_plane_axes",
                                                "contact_shapes",
                                                "contact_shape_params",
                                                "probe_planar_contour",
                                                "contact_ids",
                                                "shank_ids",
                                                "contact_sides",
                                                "device_channel_indices"};
    for (const auto& probe_json : document.at("probes")) {
        for (const auto& [key, value] : probe_json.items())
            EXPECT_TRUE(probe_fields.count(key)) << "not allowed in a probe: " << key;
        for (const char* key :
             {"ndim", "si_units", "annotations", "contact_positions", "contact_shapes", "contact_shape_params"})
            EXPECT_TRUE(probe_json.contains(key)) << "required: " << key;
        const auto& annotations = probe_json.at("annotations");
        EXPECT_TRUE(annotations.at("model_name").is_string());
        EXPECT_TRUE(annotations.at("manufacturer").is_string());
        for (const char* key : {"contact_ids", "shank_ids"})
            for (const auto& id : probe_json.at(key))
                EXPECT_TRUE(id.is_string()) << key;
        for (const auto& shape : probe_json.at("contact_shapes"))
            EXPECT_TRUE(shape == "circle" || shape == "rect" || shape == "square");
        for (const auto& params : probe_json.at("contact_shape_params"))
            EXPECT_TRUE(params.contains("radius") || params.contains("width"));
        for (const auto& index : probe_json.at("device_channel_indices"))
            EXPECT_TRUE(index.is_number_integer());
    }
}

TEST_F(ProbeTest, WrittenFilesFollowTheProbeinterfaceSchema) {
    for (const auto& [name, model, manufacturer] :
         {std::tuple<std::string, std::string, std::string>{"NP1000 (SpikeGLX ~snsGeomMap)", "NP1000", "IMEC"},
          {"spikeline-default-128", "spikeline-default-128", "spikeline"},
          {"a lab's own probe", "a lab's own probe", ""}}) {
        Probe probe = default_probe(128);
        probe.name = name;
        probe.builtin_default = manufacturer == "spikeline";
        const fs::path path = dir_ / "probe.json";
        write_probeinterface(probe, path);
        std::ifstream in(path);
        const nlohmann::json document = nlohmann::json::parse(in);
        expect_probeinterface_schema(document);
        const auto& annotations = document.at("probes")[0].at("annotations");
        EXPECT_EQ(annotations.at("model_name"), model);
        EXPECT_EQ(annotations.at("manufacturer"), manufacturer);
        EXPECT_EQ(read_probeinterface(path).name, name) << "the full name reads back";
    }
}

// Two probes; the first has an unconnected contact (-1) and both list channels out of order.
constexpr const char* kMultiProbeJson = R"({
  "specification": "probeinterface",
  "version": "0.2.21",
  "probes": [
    {
      "ndim": 2,
      "si_units": "um",
      "annotations": {"name": "left", "manufacturer": "acme"},
      "contact_positions": [[0, 0], [10, 0], [0, 25]],
      "contact_shapes": ["circle", "circle", "circle"],
      "contact_shape_params": [{"radius": 5}, {"radius": 5}, {"radius": 5}],
      "device_channel_indices": [2, -1, 0],
      "contact_ids": ["a0", "a1", "a2"],
      "shank_ids": ["A", "B", "A"]
    },
    {
      "ndim": 2,
      "si_units": "mm",
      "annotations": {"name": "right"},
      "contact_positions": [[1.0, 0.0], [1.0, 0.5]],
      "device_channel_indices": [3, 1],
      "contact_ids": ["b0", "b1"],
      "shank_ids": ["", ""]
    }
  ]
})";

TEST_F(ProbeTest, ReadsMultiProbeFileWithUnconnectedAndShuffledChannels) {
    const Probe probe = read_probeinterface(write("multi.json", kMultiProbeJson));
    EXPECT_EQ(probe.name, "left+right");
    ASSERT_EQ(probe.n_channels(), 4);
    const std::vector<std::string> expected_ids = {"a2", "b1", "a0", "b0"};
    const std::vector<double> expected_x = {0, 1000, 0, 1000};
    const std::vector<double> expected_y = {25, 500, 0, 0};
    // Shank strings are numbered per probe in order of first appearance: probe 0 "A" -> 0, probe 1 "" -> 1.
    const std::vector<int> expected_shank = {0, 1, 0, 1};
    for (std::size_t c = 0; c < 4; ++c) {
        EXPECT_EQ(probe.contacts[c].id, expected_ids[c]) << c;
        EXPECT_DOUBLE_EQ(probe.contacts[c].x_um, expected_x[c]) << c;
        EXPECT_DOUBLE_EQ(probe.contacts[c].y_um, expected_y[c]) << c;
        EXPECT_EQ(probe.contacts[c].shank, expected_shank[c]) << c;
    }
    EXPECT_EQ(probe.n_shanks(), 2);
}

TEST_F(ProbeTest, WithoutDeviceChannelIndicesContactOrderIsChannelOrder) {
    const Probe probe = read_probeinterface(write("plain.json", R"({"probes": [{"ndim": 2, "si_units": "um",
        "contact_positions": [[0, 0], [0, 20], [0, 40]]}]})"));
    ASSERT_EQ(probe.n_channels(), 3);
    EXPECT_DOUBLE_EQ(probe.contacts[2].y_um, 40.0);
    EXPECT_EQ(probe.n_shanks(), 1);
}

TEST_F(ProbeTest, RejectsMalformedFiles) {
    expect_input_error([&] { read_probeinterface(dir_ / "absent.json"); }, {"absent.json", "cannot read"});
    expect_input_error([&] { read_probeinterface(write("broken.json", R"({"probes": [ {"ndim": 2,)")); },
                       {"broken.json", "not valid JSON", "parse error"});
    expect_input_error([&] { read_probeinterface(write("array.json", "[1, 2]")); },
                       {"array.json", "not a JSON object"});
    // Found by fuzz_probe_json: a number no double holds made the JSON library throw out_of_range, not a parse error.
    expect_input_error([&] { read_probeinterface(write("huge.json", std::string(400, '8') + "{}")); },
                       {"huge.json", "not valid JSON", "number overflow"});
    expect_input_error([&] { read_probeinterface(write("noprobes.json", R"({"specification": "x"})")); },
                       {"noprobes.json", "\"probes\""});
    expect_input_error(
        [&] {
            read_probeinterface(write("nopos.json", R"({"probes": [{"ndim": 2, "device_channel_indices": [0]}]})"));
        },
        {"nopos.json", "contact_positions"});
    expect_input_error(
        [&] {
            read_probeinterface(write("3d.json", R"({"probes": [{"ndim": 3, "contact_positions": [[0, 0, 0]]}]})"));
        },
        {"3d.json", "ndim 3"});
    expect_input_error(
        [&] { read_probeinterface(write("badpos.json", R"({"probes": [{"contact_positions": [[0, "x"]]}]})")); },
        {"badpos.json", "[x, y]"});
    expect_input_error(
        [&] {
            read_probeinterface(write("count.json", R"({"probes": [{"contact_positions": [[0, 0], [0, 1]],
            "device_channel_indices": [0]}]})"));
        },
        {"count.json", "device_channel_indices", "one entry per contact"});
}

TEST_F(ProbeTest, RejectsChannelWiredTwice) {
    expect_input_error(
        [&] {
            read_probeinterface(write("twice.json", R"({"probes": [{"contact_positions": [[0, 0], [0, 20], [0, 40]],
            "device_channel_indices": [1, 0, 1]}]})"));
        },
        {"twice.json", "channel 1 is wired twice", "contact 0", "contact 2"});
}

TEST_F(ProbeTest, RejectsContactsSharingAPositionOnOneShank) {
    // Channels are named in recording order: contact 3 is wired to channel 1, contact 0 to channel 2.
    expect_input_error(
        [&] {
            read_probeinterface(write("shared.json", R"({"probes": [{"contact_positions": [[0, 0], [0, 20], [16, 40],
            [0, 0], [0, 60]], "device_channel_indices": [2, 0, 3, 1, 4]}]})"));
        },
        {"shared.json", "1 position(s)", "channels 1, 2 at x=0 y=0 um on shank 0", "fix the contact positions"});
    // The same coordinates on two shanks (each with its own frame, e.g. two probes in one file) are two places.
    const Probe two =
        read_probeinterface(write("two.json", R"({"probes": [{"contact_positions": [[0, 0], [0, 20], [0, 0],
        [0, 20]], "shank_ids": ["0", "0", "1", "1"]}]})"));
    EXPECT_EQ(two.n_channels(), 4);
}

TEST(SpikeGlxGeomMap, RejectsEntriesAtOnePlace) {
    expect_input_error(
        [] { probe::probe_from_spikeglx_geom_map("(NP1000,1,0,70)(0:27:0:1)(0:59:0:1)(0:27:0:1)", 3, "run.meta"); },
        {"run.meta", "~snsGeomMap", "channels 0, 2 at x=27 y=0 um"});
    // An unused entry (a reference site) may sit anywhere.
    EXPECT_EQ(probe::probe_from_spikeglx_geom_map("(NP1000,1,0,70)(0:27:0:1)(0:59:0:1)(0:27:0:0)", 3, "run.meta")
                  .n_channels(),
              3);
}

TEST_F(ProbeTest, RejectsMissingChannel) {
    expect_input_error(
        [&] {
            read_probeinterface(write("gap.json", R"({"probes": [{"contact_positions": [[0, 0], [0, 20], [0, 40]],
            "device_channel_indices": [0, 3, 1]}]})"));
        },
        {"gap.json", "channel 3", "only 3 contacts are connected"});
    expect_input_error(
        [&] {
            read_probeinterface(write("none.json", R"({"probes": [{"contact_positions": [[0, 0]],
            "device_channel_indices": [-1]}]})"));
        },
        {"none.json", "no contact is connected"});
}

TEST(SpikeGlxGeomMap, ContactsFromEveryEntryWithShanksSpacedByThePitch) {
    const probe::Probe probe = probe::probe_from_spikeglx_geom_map(
        "(NP2014,2,250,70)(0:27:0:1)(0:59:15:1)(1:27:0:0)(1:59:15:1)", 4, "run.meta");
    ASSERT_EQ(probe.n_channels(), 4);
    EXPECT_EQ(probe.n_shanks(), 2);
    EXPECT_NE(probe.name.find("NP2014"), std::string::npos);
    EXPECT_DOUBLE_EQ(probe.contacts[1].x_um, 59);
    EXPECT_DOUBLE_EQ(probe.contacts[1].y_um, 15);
    EXPECT_EQ(probe.contacts[2].shank, 1);
    EXPECT_DOUBLE_EQ(probe.contacts[2].x_um, 277); // shank 1 starts 250 um to the right
    EXPECT_TRUE(probe.contacts[2].excluded);       // unused sites stay channels, excluded from detection
    EXPECT_FALSE(probe.contacts[1].excluded);
    // A header without pitch and width (single shank).
    EXPECT_EQ(probe::probe_from_spikeglx_geom_map("(probe,1)(0:0:0:1)(0:20:20:0)", 2, "m").n_channels(), 2);
    // Only channels 1 and 3 saved (and the sync channel, 4, which the map does not describe).
    const probe::Probe subset = probe::probe_from_spikeglx_geom_map(
        "(NP2014,2,250,70)(0:27:0:1)(0:59:15:1)(1:27:0:0)(1:59:15:1)", 2, "run.meta", {1, 3, 4});
    ASSERT_EQ(subset.n_channels(), 2);
    EXPECT_DOUBLE_EQ(subset.contacts[0].x_um, 59);
    EXPECT_DOUBLE_EQ(subset.contacts[1].x_um, 309);
}

TEST(SpikeGlxGeomMap, ASubsetSavesMapListsTheSavedChannelsOnly) {
    // SpikeGLX writes one entry per saved channel: channels 1 and 3 saved (and sync 4), so two entries, used as they
    // are rather than indexed again by snsSaveChanSubset.
    const probe::Probe probe =
        probe::probe_from_spikeglx_geom_map("(NP2014,2,250,70)(0:59:15:1)(1:59:15:1)", 2, "run.meta", {1, 3, 4});
    ASSERT_EQ(probe.n_channels(), 2);
    EXPECT_DOUBLE_EQ(probe.contacts[0].x_um, 59);
    EXPECT_DOUBLE_EQ(probe.contacts[1].x_um, 309);
}

TEST(SpikeGlxGeomMap, MalformedValuesAreClearErrors) {
    expect_input_error([] { probe::probe_from_spikeglx_geom_map("(NP1000,1,0,70)(0:27:0:1)", 2, "run.meta"); },
                       {"run.meta", "describes 1 saved channels", "2 neural channels", "--probe"});
    expect_input_error([] { probe::probe_from_spikeglx_geom_map("(NP1000,1,0,70)(0:27:0)", 1, "run.meta"); },
                       {"(0:27:0)", "(shank:x:z:used)"});
    expect_input_error([] { probe::probe_from_spikeglx_geom_map("(NP1000,1,0,70)(0:2x:0:1)", 1, "run.meta"); },
                       {"'2x' is not a number"});
    expect_input_error([] { probe::probe_from_spikeglx_geom_map("(NP1000,1,0,70)(3:27:0:1)", 1, "run.meta"); },
                       {"shank 3 of 1"});
    expect_input_error([] { probe::probe_from_spikeglx_geom_map("(NP1000,1,0,70)(0:27:0:1", 1, "run.meta"); },
                       {"unclosed"});
    expect_input_error([] { probe::probe_from_spikeglx_geom_map("NP1000", 1, "run.meta"); }, {"no (...) groups"});
    expect_input_error([] { probe::probe_from_spikeglx_geom_map("(NP1000)(0:27:0:1)", 1, "run.meta"); }, {"header"});
}

TEST(Neighbours, NearestFirstOnTheSameShankOnly) {
    const Probe probe = default_probe(256);
    const auto neighbours = neighbours_within(probe, 40.0);
    ASSERT_EQ(neighbours.size(), 256u);
    // From channel 0 at (0, 0): 2 at 20 um, 1 at 32 um, 3 at 37.7 um, 4 at exactly 40 um (on the radius counts).
    EXPECT_EQ(neighbours[0], (std::vector<int>{2, 1, 3, 4}));
    // Equal distances are ordered by channel: 0 and 4 are both 20 um from channel 2.
    EXPECT_EQ(neighbours[2], (std::vector<int>{0, 4, 3, 1, 5, 6}));
    // Channel 127 (top of shank 0) and 128 (bottom of shank 1) never see each other.
    const auto wide = neighbours_within(probe, 10000.0);
    EXPECT_EQ(wide[0].size(), 127u);
    for (const int other : wide[0])
        EXPECT_LT(other, 128);
    for (const int other : wide[128])
        EXPECT_GE(other, 128);

    for (std::size_t c = 0; c < neighbours.size(); ++c) {
        double previous = 0;
        for (const int other : neighbours[c]) {
            EXPECT_NE(other, static_cast<int>(c));
            const double distance = probe.distance_um(static_cast<int>(c), other);
            EXPECT_LE(distance, 40.0);
            EXPECT_GE(distance, previous);
            previous = distance;
            // Symmetric: c is a neighbour of each of its neighbours.
            const auto& back = neighbours[static_cast<std::size_t>(other)];
            EXPECT_NE(std::find(back.begin(), back.end(), static_cast<int>(c)), back.end());
        }
    }
    EXPECT_TRUE(neighbours_within(probe, 10.0)[0].empty());
}

} // namespace
