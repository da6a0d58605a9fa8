#include "io/channel_selection.hpp"
#include "io/mtscomp.hpp"
#include "io/npy.hpp"
#include "io/raw.hpp"
#include "io/recording.hpp"
#include "io/spikeglx.hpp"
#include "probe/probe.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include "mtscomp_writer.hpp"
#include "temp_dir_test.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace spikeline;
using namespace spikeline::io;

namespace {

using IoTest = spikeline::testing::TempDirTest;

/// Runs action, expecting an InputError whose message contains every fragment.
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

void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
}

/// A hand-made .npy of any version, for headers our writer never produces.
std::string make_npy(int major, const std::string& dict, const std::string& data) {
    std::string header = dict;
    const std::size_t preamble = major == 1 ? 10 : 12;
    while ((preamble + header.size() + 1) % 64 != 0)
        header += ' ';
    header += '\n';
    std::string bytes = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
    const std::size_t length_bytes = major == 1 ? 2 : 4;
    for (std::size_t i = 0; i < length_bytes; ++i)
        bytes += static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return bytes + header + data;
}

/// Bytes from 8 onwards hold the header length; the data must start on a 64-byte boundary.
std::size_t npy_v1_data_offset(const fs::path& path) {
    const std::string bytes = read_bytes(path);
    const auto low = static_cast<unsigned char>(bytes.at(8));
    const auto high = static_cast<unsigned char>(bytes.at(9));
    return 10 + (static_cast<std::size_t>(high) << 8 | low);
}

template <class T> void check_npy_round_trip(const fs::path& dir) {
    const std::vector<T> values = {std::numeric_limits<T>::lowest(), T(0), T(1), T(42), std::numeric_limits<T>::max()};
    const fs::path path = dir / (std::string("values_") + (npy_descr<T>() + 1) + ".npy"); // e.g. values_i2.npy
    write_npy(path, values);
    EXPECT_EQ(read_npy_vector<T>(path), values) << npy_descr<T>();
    const NpyArray array = read_npy(path);
    EXPECT_EQ(array.descr, npy_descr<T>());
    EXPECT_EQ(array.shape, std::vector<std::size_t>{values.size()});
    EXPECT_EQ(array.element_count(), values.size());
    EXPECT_EQ(npy_v1_data_offset(path) % 64, 0u) << npy_descr<T>();
    EXPECT_EQ(fs::file_size(path), npy_v1_data_offset(path) + values.size() * sizeof(T));
}

// ---------------------------------------------------------------------------------------------------------------
// .npy

TEST_F(IoTest, NpyRoundTripsEveryDtype) {
    check_npy_round_trip<std::int16_t>(dir_);
    check_npy_round_trip<std::int32_t>(dir_);
    check_npy_round_trip<std::int64_t>(dir_);
    check_npy_round_trip<std::uint64_t>(dir_);
    check_npy_round_trip<std::uint8_t>(dir_);
    check_npy_round_trip<float>(dir_);
    check_npy_round_trip<double>(dir_);
    EXPECT_STREQ(npy_descr<std::uint8_t>(), "|u1");
    EXPECT_STREQ(npy_descr<double>(), "<f8");
}

TEST_F(IoTest, NpyWritesAndReadsTwoDimensionalShape) {
    std::vector<std::int32_t> matrix(3 * 4);
    std::iota(matrix.begin(), matrix.end(), -5);
    const fs::path path = dir_ / "matrix.npy";
    write_npy(path, matrix.data(), {3, 4});
    EXPECT_NE(read_bytes(path).find("'shape': (3, 4)"), std::string::npos);
    const NpyArray array = read_npy(path);
    EXPECT_EQ(array.shape, (std::vector<std::size_t>{3, 4}));
    EXPECT_EQ(array.as<std::int32_t>(), matrix);
    expect_input_error([&] { read_npy_vector<std::int32_t>(path); }, {"matrix.npy", "1-D", "(3, 4)"});

    // An N x 1 column is accepted as a vector.
    const fs::path column = dir_ / "column.npy";
    write_npy(column, matrix.data(), {12, 1});
    EXPECT_EQ(read_npy_vector<std::int32_t>(column), matrix);
}

TEST_F(IoTest, NpyEmptyArrayRoundTrips) {
    const fs::path path = dir_ / "empty.npy";
    write_npy(path, std::vector<double>{});
    EXPECT_TRUE(read_npy_vector<double>(path).empty());
    EXPECT_EQ(read_npy(path).shape, std::vector<std::size_t>{0});
}

TEST_F(IoTest, NpyReadsVersions2And3AndBigEndian) {
    std::string data;
    for (const std::int32_t value : {7, -8, 1 << 20})
        data.append(reinterpret_cast<const char*>(&value), sizeof(value));
    const std::string dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }";
    for (const int major : {2, 3}) {
        const fs::path path = dir_ / std::string("v").append(std::to_string(major)).append(".npy"); // GCC 12 -Wrestrict
        write_bytes(path, make_npy(major, dict, data));
        EXPECT_EQ(read_npy_vector<std::int32_t>(path), (std::vector<std::int32_t>{7, -8, 1 << 20})) << major;
    }

    const std::string big_endian_data("\x00\x00\x01\x02\xff\xff\xff\xfe", 8); // 258, -2
    const fs::path path = dir_ / "big.npy";
    write_bytes(path, make_npy(1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", big_endian_data));
    EXPECT_EQ(read_npy_vector<std::int32_t>(path), (std::vector<std::int32_t>{258, -2}));
}

TEST_F(IoTest, NpyRejectsBadMagic) {
    const fs::path path = dir_ / "bad_magic.npy";
    write_bytes(path, "NOT A NUMPY FILE AT ALL");
    expect_input_error([&] { read_npy(path); }, {"bad_magic.npy", "magic"});
}

TEST_F(IoTest, NpyRejectsTruncatedData) {
    const fs::path path = dir_ / "short.npy";
    write_npy(path, std::vector<std::uint64_t>(100, 3));
    fs::resize_file(path, npy_v1_data_offset(path) + 40);
    expect_input_error([&] { read_npy(path); }, {"short.npy", "truncated", "100 elements of <u8", "only 40 bytes"});
}

TEST_F(IoTest, NpyRejectsWrongDtypeRequested) {
    const fs::path path = dir_ / "int16.npy";
    write_npy(path, std::vector<std::int16_t>{1, 2, 3});
    expect_input_error([&] { read_npy_vector<double>(path); }, {"int16.npy", "<i2", "<f8"});
    expect_input_error([&] { (void)read_npy(path).as<float>(); }, {"<i2", "<f4"});
}

TEST_F(IoTest, NpyRejectsUnsupportedHeaders) {
    const fs::path complex_path = dir_ / "complex.npy";
    write_bytes(complex_path,
                make_npy(1, "{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", std::string(16, '\0')));
    expect_input_error([&] { read_npy(complex_path); }, {"complex.npy", "unsupported dtype '<c16'"});

    // Found by fuzz_npy: an item size of many digits overflowed std::stoul (an uncaught std::out_of_range).
    const fs::path huge_size_path = dir_ / "huge_size.npy";
    const std::string huge_descr = "<i1" + std::string(60, '8');
    write_bytes(huge_size_path,
                make_npy(1, "{'descr': '" + huge_descr + "', 'fortran_order': False, 'shape': (1,), }", "\0"));
    expect_input_error([&] { read_npy(huge_size_path); }, {"huge_size.npy", "unsupported dtype '" + huge_descr});

    const fs::path fortran_path = dir_ / "fortran.npy";
    write_bytes(fortran_path,
                make_npy(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", std::string(32, '\0')));
    expect_input_error([&] { read_npy(fortran_path); }, {"fortran.npy", "Fortran"});

    const fs::path garbled_path = dir_ / "garbled.npy";
    write_bytes(garbled_path, make_npy(1, "{'descr': '<f8', 'shape': [2], }", std::string(16, '\0')));
    expect_input_error([&] { read_npy(garbled_path); }, {"garbled.npy", "malformed .npy header"});

    expect_input_error([&] { read_npy(dir_ / "absent.npy"); }, {"absent.npy", "no such file"});
}

TEST_F(IoTest, NpyAppendWriterWritesFixedHeaderAndFinalShape) {
    const fs::path path = dir_ / "appended.npy";
    std::vector<std::int64_t> expected;
    {
        NpyAppendWriter<std::int64_t> writer(path);
        for (std::int64_t chunk = 0; chunk < 5; ++chunk) {
            std::vector<std::int64_t> values(static_cast<std::size_t>(chunk) * 1000 + 1);
            std::iota(values.begin(), values.end(), chunk * 100000);
            writer.append(values.data(), values.size());
            expected.insert(expected.end(), values.begin(), values.end());
        }
        writer.append(std::int64_t{-9});
        expected.push_back(-9);
        EXPECT_EQ(writer.size(), expected.size());
        EXPECT_FALSE(fs::exists(path)) << "the output must appear only on finish()";
        writer.finish();
    }
    EXPECT_EQ(npy_v1_data_offset(path), 128u);
    EXPECT_EQ(read_npy_vector<std::int64_t>(path), expected);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1) << "temporary file left";
}

TEST_F(IoTest, NpyAppendWriterWithoutFinishLeavesNothing) {
    const fs::path path = dir_ / "abandoned.npy";
    {
        NpyAppendWriter<float> writer(path);
        writer.append(1.5f);
        EXPECT_FALSE(fs::is_empty(dir_)) << "the temporary file should exist while writing";
    }
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::is_empty(dir_));

    const fs::path empty_path = dir_ / "none.npy";
    NpyAppendWriter<std::uint8_t> empty_writer(empty_path);
    empty_writer.finish();
    EXPECT_TRUE(read_npy_vector<std::uint8_t>(empty_path).empty());
}

/// A PID that no process has: a child that has exited and been reaped.
long dead_pid() {
    const pid_t child = ::fork();
    if (child == 0)
        ::_exit(0);
    int status = 0;
    ::waitpid(child, &status, 0);
    return child;
}

/// Copies a file as a crash would leave it under another writer's temporary name, with `extra` bytes of a row or
/// frame cut short after it.
fs::path copy_as_crashed(const fs::path& from, const fs::path& to, std::size_t extra) {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
    std::ofstream(to, std::ios::binary | std::ios::app) << std::string(extra, '\x7f');
    return to;
}

TEST_F(IoTest, NpyAppendFileOfADeadWriterIsFinishedToItsWholeRows) {
    const fs::path path = dir_ / "features.npy";
    NpyAppendWriter<float> writer(path, {3});
    std::vector<float> values(30);
    std::iota(values.begin(), values.end(), 0.5f);
    writer.append(values.data(), values.size());
    writer.flush();
    EXPECT_EQ(writer.rows_on_disk(), 10u);
    // What the process would leave if killed now, plus 5 bytes of an 11th row.
    const long pid = dead_pid();
    const fs::path crashed = copy_as_crashed(temporary_path(path), dir_ / ("crashed.npy.tmp" + std::to_string(pid)), 5);
    const NpyAppendFile found = inspect_npy_append_file(crashed);
    EXPECT_EQ(found.descr, "<f4");
    EXPECT_EQ(found.row_shape, std::vector<std::size_t>{3});
    EXPECT_EQ(found.rows, 10u);

    const fs::path partial = copy_as_crashed(crashed, dir_ / "partial.npy.tmp1", 0);
    EXPECT_EQ(finish_npy_append_file(crashed, dir_ / "crashed.npy", static_cast<std::size_t>(-1)), 10u);
    const NpyArray whole = read_npy(dir_ / "crashed.npy");
    EXPECT_EQ(whole.shape, (std::vector<std::size_t>{10, 3}));
    EXPECT_EQ(whole.as<float>(), values);
    EXPECT_FALSE(fs::exists(crashed));

    EXPECT_EQ(finish_npy_append_file(partial, dir_ / "partial.npy", 4), 4u); // a common length with other arrays
    const NpyArray cut = read_npy(dir_ / "partial.npy");
    EXPECT_EQ(cut.shape, (std::vector<std::size_t>{4, 3}));
    EXPECT_EQ(cut.as<float>(), std::vector<float>(values.begin(), values.begin() + 12));

    EXPECT_EQ(writer.finish(7), 7u);
    EXPECT_EQ(read_npy(path).shape, (std::vector<std::size_t>{7, 3}));
}

TEST_F(IoTest, StaleTemporariesOfDeadProcessesAreRemovedNotThoseOfLiveOnes) {
    const std::string dead = std::to_string(dead_pid());
    const std::string live = std::to_string(::getppid());
    for (const std::string& name :
         {"spike_times.npy.tmp" + dead, "stream.json.tmp" + dead, "params.py.tmp" + live,
          "gaps.tsv.tmp" + std::to_string(::getpid()), std::string("notes.tmpfile"), std::string("x.tmp")})
        std::ofstream(dir_ / name) << "x";
    ensure_directory(dir_);
    EXPECT_FALSE(fs::exists(dir_ / ("spike_times.npy.tmp" + dead)));
    EXPECT_FALSE(fs::exists(dir_ / ("stream.json.tmp" + dead)));
    for (const std::string& kept : {"params.py.tmp" + live, "gaps.tsv.tmp" + std::to_string(::getpid()),
                                    std::string("notes.tmpfile"), std::string("x.tmp")})
        EXPECT_TRUE(fs::exists(dir_ / kept)) << kept;

    // A recording cut short by a crash is never removed: the run is refused until it is recovered.
    std::ofstream(dir_ / ("recording.bin.tmp" + dead)) << "data";
    std::ofstream(dir_ / ("recording.meta.tmp" + dead)) << "nSavedChans=2\n";
    expect_input_error([&]() { ensure_directory(dir_); }, {"cut short by a crash", "spikeline recover"});
    EXPECT_TRUE(fs::exists(dir_ / ("recording.bin.tmp" + dead)));
}

// ---------------------------------------------------------------------------------------------------------------
// SpikeGLX

std::vector<std::int16_t> ramp_frames(std::size_t n_frames, int n_channels) {
    std::vector<std::int16_t> samples(n_frames * static_cast<std::size_t>(n_channels));
    for (std::size_t i = 0; i < samples.size(); ++i)
        samples[i] = static_cast<std::int16_t>(static_cast<int>(i * 37 % 65536) - 32768);
    return samples;
}

std::vector<std::int16_t> read_all(RecordingSource& source, std::size_t chunk_frames) {
    const auto channels = static_cast<std::size_t>(source.info().n_channels);
    std::vector<std::int16_t> all;
    std::vector<std::int16_t> chunk(chunk_frames * channels);
    while (const std::size_t frames = source.read(chunk.data(), chunk_frames)) {
        EXPECT_LE(frames, chunk_frames);
        all.insert(all.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(frames * channels));
    }
    return all;
}

/// Writes NAME.bin/NAME.meta with our writer and returns the .bin path.
fs::path write_spikeglx(const fs::path& dir, const std::string& name, const std::vector<std::int16_t>& samples,
                        int n_channels, double sample_rate = 30000.0, double microvolts_per_bit = 2.34375) {
    const fs::path bin = dir / (name + ".bin");
    SpikeGlxWriter writer(bin, n_channels, sample_rate, microvolts_per_bit);
    const std::size_t n_frames = samples.size() / static_cast<std::size_t>(n_channels);
    const std::size_t half = n_frames / 2;
    writer.write(samples.data(), half);
    writer.write(samples.data() + half * static_cast<std::size_t>(n_channels), n_frames - half);
    writer.finish();
    return bin;
}

TEST_F(IoTest, SpikeGlxWriteReadRoundTrip) {
    const int n_channels = 5;
    const auto samples = ramp_frames(1003, n_channels);
    const fs::path bin = write_spikeglx(dir_, "run_g0_t0.imec0.ap", samples, n_channels, 30000.25, 0.195);
    const fs::path meta = dir_ / "run_g0_t0.imec0.ap.meta";
    ASSERT_TRUE(fs::exists(meta));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 2) << "temporary file left";

    const MetaMap keys = read_spikeglx_meta(meta);
    EXPECT_EQ(keys.at("nSavedChans"), "5");
    EXPECT_EQ(keys.at("fileSizeBytes"), std::to_string(samples.size() * 2));
    EXPECT_EQ(keys.at("snsApLfSy"), "5,0,0");
    EXPECT_EQ(keys.at("snsSaveChanSubset"), "all");
    EXPECT_NEAR(std::stod(keys.at("fileTimeSecs")), 1003 / 30000.25, 1e-12);
    for (const char* key : {"imSampRate", "imAiRangeMax", "imAiRangeMin", "imMaxInt", "typeThis"})
        EXPECT_TRUE(keys.contains(key)) << key;

    auto source = open_spikeglx(bin);
    const RecordingInfo& info = source->info();
    EXPECT_EQ(info.n_channels, n_channels);
    EXPECT_DOUBLE_EQ(info.sample_rate, 30000.25);
    EXPECT_EQ(info.n_frames, 1003u);
    EXPECT_NEAR(info.microvolts_per_bit, 0.195, 1e-12);
    EXPECT_EQ(info.format, "spikeglx");
    EXPECT_EQ(info.data_path, bin);
    EXPECT_EQ(read_all(*source, 64), samples);
    std::int16_t spare[n_channels];
    EXPECT_EQ(source->read(spare, 1), 0u);
}

// The keys SpikeGLX's readSGLX (acqApLfSy for the gains), neo (fileName named RUN_gG_tT.imecN.ap.bin, imDatPrb_pn,
// ~snsChanMap) and probeinterface (~snsGeomMap) read, and the geometry reading back through spikeline's own reader.
TEST_F(IoTest, SpikeGlxWriterStatesWhatSpikeGlxToolsAndNeoRead) {
    probe::Probe two_shanks = probe::default_probe(256);
    two_shanks.contacts[3].excluded = true;
    const int n_channels = two_shanks.n_channels();
    const auto samples = ramp_frames(10, n_channels);
    const fs::path bin = dir_ / "recording.bin";
    {
        SpikeGlxWriter writer(bin, n_channels, 30000.0, 0.195, &two_shanks);
        writer.write(samples.data(), 10);
        writer.finish();
    }
    const MetaMap keys = read_spikeglx_meta(dir_ / "recording.meta");
    EXPECT_EQ(keys.at("acqApLfSy"), "256,0,0");
    EXPECT_EQ(keys.at("firstSample"), "0");
    EXPECT_EQ(keys.at("fileName"), "recording_g0_t0.imec0.ap.bin") << "the name only: the .meta moves with the pair";
    EXPECT_EQ(keys.at("imDatPrb_pn"), "spikeline-default-256");
    const std::string chan_map = keys.at("~snsChanMap");
    EXPECT_EQ(chan_map.rfind("(256,0,0)(AP0;0:0)", 0), 0u) << chan_map.substr(0, 40);
    EXPECT_EQ(std::count(chan_map.begin(), chan_map.end(), '('), 257);
    EXPECT_EQ(keys.at("~snsGeomMap").rfind("(spikeline-default-256,2,250,", 0), 0u) << "two shanks 250 um apart";

    const RecordingInfo info = read_spikeglx_info(bin);
    ASSERT_TRUE(info.probe.has_value()) << info.geometry_error;
    ASSERT_EQ(info.probe->n_channels(), n_channels);
    for (std::size_t c = 0; c < two_shanks.contacts.size(); ++c) {
        EXPECT_DOUBLE_EQ(info.probe->contacts[c].x_um, two_shanks.contacts[c].x_um) << c;
        EXPECT_DOUBLE_EQ(info.probe->contacts[c].y_um, two_shanks.contacts[c].y_um) << c;
        EXPECT_EQ(info.probe->contacts[c].shank, two_shanks.contacts[c].shank) << c;
        EXPECT_EQ(info.probe->contacts[c].excluded, two_shanks.contacts[c].excluded) << c;
    }
    EXPECT_NEAR(info.microvolts_per_bit, 0.195, 1e-12) << "the gain keys still rule";

    // A file already named as SpikeGLX names them keeps its name; a Neuropixels probe states its part number.
    probe::Probe neuropixels = probe::default_probe(128);
    neuropixels.name = "NP2000 (SpikeGLX ~snsGeomMap)";
    const fs::path named = dir_ / "run_g1_t2.imec3.ap.bin";
    {
        SpikeGlxWriter writer(named, 128, 30000.0, 0.195, &neuropixels);
        writer.finish();
    }
    const MetaMap named_keys = read_spikeglx_meta(dir_ / "run_g1_t2.imec3.ap.meta");
    EXPECT_EQ(fs::path(named_keys.at("fileName")).filename(), "run_g1_t2.imec3.ap.bin");
    EXPECT_EQ(named_keys.at("imDatPrb_pn"), "NP2000");
}

TEST_F(IoTest, SpikeGlxWriterWithoutFinishLeavesNothing) {
    {
        SpikeGlxWriter writer(dir_ / "lost.bin", 2, 1000.0, 1.0);
        const std::vector<std::int16_t> frame = {1, 2};
        writer.write(frame.data(), 1);
    }
    EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(IoTest, SpikeGlxWriterLeavesWhatRecoverNeedsAfterACrash) {
    const int n_channels = 3;
    const auto samples = ramp_frames(100, n_channels);
    const fs::path bin = dir_ / "rec.bin";
    SpikeGlxWriter writer(bin, n_channels, 25000.0, 0.5);
    writer.write(samples.data(), 100);
    writer.flush();
    // The process dies now: its data and the .meta written at the start stay, with half a frame more.
    const std::string suffix = ".tmp" + std::to_string(dead_pid());
    const fs::path data = copy_as_crashed(temporary_path(bin), dir_ / ("crashed.bin" + suffix), 3);
    const fs::path meta = copy_as_crashed(temporary_path(dir_ / "rec.meta"), dir_ / ("crashed.meta" + suffix), 0);

    const SpikeGlxRecovery recovery = recover_spikeglx(data, meta, dir_ / "crashed.bin");
    EXPECT_EQ(recovery.frames, 100u);
    EXPECT_EQ(recovery.bytes_dropped, 3u);
    EXPECT_FALSE(fs::exists(data));
    EXPECT_FALSE(fs::exists(meta));
    auto source = open_spikeglx(dir_ / "crashed.bin");
    EXPECT_EQ(source->info().n_frames, 100u);
    EXPECT_DOUBLE_EQ(source->info().sample_rate, 25000.0);
    EXPECT_NEAR(source->info().microvolts_per_bit, 0.5, 1e-12);
    EXPECT_EQ(read_all(*source, 64), samples);
    EXPECT_EQ(writer.finish(), 100u);
}

TEST_F(IoTest, SpikeGlxGainFromImroTableNidqAndUnknown) {
    const std::string common = "nSavedChans=2\nfileSizeBytes=8\n";
    const std::string data(8, '\0');
    const auto open_with = [&](const std::string& name, const std::string& meta) {
        write_bytes(dir_ / (name + ".bin"), data);
        write_text(dir_ / (name + ".meta"), meta);
        return open_spikeglx(dir_ / (name + ".bin"));
    };
    // Neuropixels 1.0: range 0.6 V, 10-bit ADC (imMaxInt 512), AP gain 500 from the first entry, LF gain 250.
    const std::string np1 = common + "imSampRate=30000\nimAiRangeMax=0.6\nimAiRangeMin=-0.6\nimMaxInt=512\n"
                                     "~imroTbl=(0,384)(0 0 0 500 250 1)(1 0 0 500 250 1)\n";
    EXPECT_NEAR(open_with("np1.imec0.ap", np1)->info().microvolts_per_bit, 0.6 / 512 / 500 * 1e6, 1e-9);
    EXPECT_NEAR(open_with("np1.imec0.lf", np1)->info().microvolts_per_bit, 0.6 / 512 / 250 * 1e6, 1e-9);
    // Neuropixels 2.0 entries carry no gain: the stated imChan0apGain applies.
    const std::string np2 = common + "imSampRate=30000\nimAiRangeMax=0.62\nimMaxInt=8192\nimChan0apGain=80\n"
                                     "~imroTbl=(24,384)(0 0 0 0 0)(1 0 0 0 1)\n";
    EXPECT_NEAR(open_with("np2", np2)->info().microvolts_per_bit, 0.62 / 8192 / 80 * 1e6, 1e-9);
    // Neuropixels 2.0 identified by its probe type, without a stated gain: the fixed gain of 80.
    const std::string np2_type = common + "imSampRate=30000\nimAiRangeMax=0.5\nimMaxInt=8192\nimDatPrb_type=21\n"
                                          "~imroTbl=(21,384)(0 1 0 0)(1 1 0 1)\n";
    EXPECT_NEAR(open_with("np2_type", np2_type)->info().microvolts_per_bit, 0.5 / 8192 / 80 * 1e6, 1e-9);
    // A range without any way to know the gain: unknown (amplitudes in LSB), not silently gain 1.
    const std::string no_gain = common + "imSampRate=30000\nimAiRangeMax=0.5\nimMaxInt=8192\n";
    EXPECT_EQ(open_with("no_gain", no_gain)->info().microvolts_per_bit, 0.0);
    const std::string nidq = common + "niSampRate=25000\nniAiRangeMax=5\nniMaxInt=32768\nniMNGain=200\n";
    auto nidq_source = open_with("nidq", nidq);
    EXPECT_NEAR(nidq_source->info().microvolts_per_bit, 5.0 / 32768 / 200 * 1e6, 1e-9);
    EXPECT_DOUBLE_EQ(nidq_source->info().sample_rate, 25000.0);
    EXPECT_EQ(open_with("plain", common + "imSampRate=30000\n")->info().microvolts_per_bit, 0.0);
}

TEST_F(IoTest, SpikeGlxGainInputsMustBeFinitePositiveNumbers) {
    const std::string common = "nSavedChans=2\nfileSizeBytes=8\nimSampRate=30000\n";
    write_bytes(dir_ / "gain.bin", std::string(8, '\0'));
    const std::string np1_table = "~imroTbl=(0,384)(0 0 0 500 250 1)\n";
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"imAiRangeMax=inf\nimMaxInt=512\n" + np1_table, "imAiRangeMax=inf"},
        {"imAiRangeMax=nan\nimMaxInt=512\n" + np1_table, "imAiRangeMax=nan"},
        {"imAiRangeMax=-0.6\nimMaxInt=512\n" + np1_table, "imAiRangeMax=-0.6"},
        {"imAiRangeMax=0.6\nimMaxInt=0\n" + np1_table, "imMaxInt=0"},
        {"imAiRangeMax=0.6\nimMaxInt=512\n~imroTbl=(0,384)(0 0 0 inf 250 1)\n", "AP gain in ~imroTbl"},
        {"imAiRangeMax=0.6\nimMaxInt=8192\nimChan0apGain=nan\n", "imChan0apGain=nan"},
        {"niAiRangeMax=5\nniMaxInt=32768\nniMNGain=-inf\n", "niMNGain=-inf"},
    };
    for (const auto& [keys, named] : bad) {
        SCOPED_TRACE(keys);
        write_text(dir_ / "gain.meta", common + keys);
        expect_input_error([&] { open_spikeglx(dir_ / "gain.bin"); },
                           {"gain.meta", named, "not a finite", "--uv-per-bit"});
        // A gain given by the caller replaces the .meta's, so the recording stays usable.
        OpenOptions given;
        given.microvolts_per_bit = 0.25;
        EXPECT_DOUBLE_EQ(open_recording(dir_ / "gain.bin", given)->info().microvolts_per_bit, 0.25);
    }
    // imAiRangeMax=0 is SpikeGlxWriter's unknown gain: amplitudes in LSB, as before.
    write_text(dir_ / "gain.meta", common + "imAiRangeMax=0\nimMaxInt=32768\nimChan0apGain=1\n");
    EXPECT_EQ(open_spikeglx(dir_ / "gain.bin")->info().microvolts_per_bit, 0.0);
}

TEST_F(IoTest, SpikeGlxMetaParsing) {
    const fs::path meta = dir_ / "parse.meta";
    write_text(meta, "nSavedChans=3\r\n\n~imroTbl=(0,3)(0 0 0 500 250 1)\nacqApLfSy=384,384,1\nempty=\n");
    const MetaMap keys = read_spikeglx_meta(meta);
    EXPECT_EQ(keys.size(), 4u);
    EXPECT_EQ(keys.at("nSavedChans"), "3");
    EXPECT_EQ(keys.at("~imroTbl"), "(0,3)(0 0 0 500 250 1)");
    EXPECT_EQ(keys.at("acqApLfSy"), "384,384,1");
    EXPECT_EQ(keys.at("empty"), "");

    write_text(meta, "nSavedChans=3\nimSampRate=30000\nthis line has no equals sign\n");
    expect_input_error([&] { read_spikeglx_meta(meta); }, {"parse.meta:3", "key=value"});
    expect_input_error([&] { read_spikeglx_meta(dir_ / "absent.meta"); }, {"absent.meta"});
}

TEST_F(IoTest, SpikeGlxRejectsTruncatedBin) {
    const auto samples = ramp_frames(100, 4);
    const fs::path bin = write_spikeglx(dir_, "cut", samples, 4);
    fs::resize_file(bin, 50 * 4 * 2);
    expect_input_error([&] { open_spikeglx(bin); }, {"cut.bin", "400 bytes", "fileSizeBytes=800", "truncated"});
}

TEST_F(IoTest, SpikeGlxTruncatedBinIsReadToItsLastWholeFrameWhenAllowed) {
    const auto samples = ramp_frames(100, 4);
    const fs::path bin = write_spikeglx(dir_, "crash", samples, 4);
    fs::resize_file(bin, 37 * 4 * 2 + 5); // a crash in the middle of frame 37
    expect_input_error([&] { open_recording(bin, {}); }, {"crash.bin", "--allow-truncated"});
    OpenOptions allow;
    allow.allow_truncated = true;
    auto source = open_recording(bin, allow);
    EXPECT_EQ(source->info().n_frames, 37u);
    for (const std::string expected : {"crash.bin", "truncated", "37 whole frames", "296 bytes", "100 frames"})
        EXPECT_NE(source->info().warning.find(expected), std::string::npos)
            << expected << " in " << source->info().warning;
    std::vector<std::int16_t> read(100 * 4);
    ASSERT_EQ(source->read(read.data(), 100), 37u);
    EXPECT_TRUE(std::equal(read.begin(), read.begin() + 37 * 4, samples.begin()));
    EXPECT_EQ(source->read(read.data(), 100), 0u);
    // An intact file carries no warning; a longer file than the .meta says is not a truncation.
    const fs::path whole = write_spikeglx(dir_, "whole", samples, 4);
    EXPECT_TRUE(open_recording(whole, allow)->info().warning.empty());
    fs::resize_file(whole, 101 * 4 * 2);
    expect_input_error([&] { open_recording(whole, allow); }, {"whole.bin", "belongs to another file"});
}

TEST_F(IoTest, SpikeGlxReadFailsWhenFileShrinksMidFrame) {
    const auto samples = ramp_frames(100, 4);
    const fs::path bin = write_spikeglx(dir_, "shrinks", samples, 4);
    auto source = open_spikeglx(bin);
    fs::resize_file(bin, 10 * 4 * 2 + 3); // ends in the middle of frame 10
    std::vector<std::int16_t> buffer(100 * 4);
    expect_input_error([&] { source->read(buffer.data(), 100); }, {"shrinks.bin", "truncated"});
}

TEST_F(IoTest, MappedViewDeliversWhatReadDeliversInAnyMixOfCalls) {
    // 3 channels and chunks of 777 frames: chunks start in the middle of pages and of nothing in particular.
    const auto samples = ramp_frames(5000, 3);
    const fs::path bin = write_spikeglx(dir_, "mapped", samples, 3);
    auto source = open_spikeglx(bin);
    InPlaceSource* in_place = in_place_source(*source);
    ASSERT_NE(in_place, nullptr);
    std::vector<std::int16_t> delivered, buffer(777 * 3);
    for (int call = 0;; ++call) {
        std::size_t n = 0;
        if (call % 3 == 2) { // every third chunk through read(): both advance the same position
            n = source->read(buffer.data(), 777);
            delivered.insert(delivered.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n * 3));
        } else {
            const std::int16_t* chunk = in_place->view(777, n);
            if (n > 0)
                delivered.insert(delivered.end(), chunk, chunk + n * 3);
        }
        if (n == 0)
            break;
        ASSERT_LE(n, 777u);
    }
    EXPECT_EQ(delivered, samples);
    std::size_t n = 1;
    in_place->view(777, n);
    EXPECT_EQ(n, 0u) << "the end stays the end";
}

TEST_F(IoTest, MappedViewOfAFileThatShrankIsAnInputError) {
    const auto samples = ramp_frames(4000, 4);
    const fs::path bin = write_spikeglx(dir_, "shrinks_mapped", samples, 4);
    auto source = open_spikeglx(bin);
    InPlaceSource* in_place = in_place_source(*source);
    ASSERT_NE(in_place, nullptr);
    std::size_t n = 0;
    ASSERT_NE(in_place->view(1000, n), nullptr);
    EXPECT_EQ(n, 1000u);
    fs::resize_file(bin, 1500 * 4 * 2); // half of the next chunk is gone: mapping it would fault, not fail
    expect_input_error([&] { in_place->view(1000, n); }, {"shrinks_mapped.bin", "truncated"});
}

TEST_F(IoTest, SpikeGlxRejectsMissingKeys) {
    const std::string data(16, '\0');
    // fileSizeBytes may be absent (see SpikeGlxWithoutFileSizeUsesTheBinSize).
    const std::vector<std::string> lines = {"nSavedChans=2", "imSampRate=30000"};
    for (std::size_t skip = 0; skip < lines.size(); ++skip) {
        std::string meta;
        for (std::size_t i = 0; i < lines.size(); ++i)
            if (i != skip)
                meta += lines[i] + "\n";
        write_bytes(dir_ / "keys.bin", data);
        write_text(dir_ / "keys.meta", meta);
        const std::string key = lines[skip].substr(0, lines[skip].find('='));
        expect_input_error([&] { open_spikeglx(dir_ / "keys.bin"); }, {"keys.meta", "missing key " + key});
    }
    write_text(dir_ / "keys.meta", "nSavedChans=two\nimSampRate=30000\nfileSizeBytes=16\n");
    expect_input_error([&] { open_spikeglx(dir_ / "keys.bin"); }, {"nSavedChans=two", "not a number"});
    write_text(dir_ / "keys.meta", "nSavedChans=0\nimSampRate=30000\nfileSizeBytes=16\n");
    expect_input_error([&] { open_spikeglx(dir_ / "keys.bin"); }, {"nSavedChans must be positive"});
}

TEST_F(IoTest, SpikeGlxRejectsSizeNotDividingByChannels) {
    write_bytes(dir_ / "odd.bin", std::string(10, '\0'));
    write_text(dir_ / "odd.meta", "nSavedChans=4\nimSampRate=30000\nfileSizeBytes=10\n");
    expect_input_error([&] { open_spikeglx(dir_ / "odd.bin"); },
                       {"odd.bin", "10 bytes", "4 int16 channels", "2 bytes left over"});
}

TEST_F(IoTest, SpikeGlxSyncChannelsAreSkipped) {
    // A Neuropixels-style AP file: 4 neural channels then 1 sync channel (snsApLfSy=4,0,1), 10 frames.
    const std::vector<std::int16_t> samples = ramp_frames(10, 5);
    write_bytes(dir_ / "run.imec0.ap.bin",
                std::string(reinterpret_cast<const char*>(samples.data()), samples.size() * sizeof(std::int16_t)));
    write_text(dir_ / "run.imec0.ap.meta",
               "nSavedChans=5\nimSampRate=30000\nfileSizeBytes=100\nsnsApLfSy=4,0,1\nsnsSaveChanSubset=all\n");
    auto source = open_spikeglx(dir_ / "run.imec0.ap.bin");
    EXPECT_EQ(source->info().n_channels, 4);
    EXPECT_EQ(source->info().file_channels(), 5);
    EXPECT_EQ(source->info().n_frames, 10u);
    EXPECT_EQ(in_place_source(*source), nullptr) << "a frame of the file is not a frame delivered: no view in place";
    const std::vector<std::int16_t> read = read_all(*source, 3);
    ASSERT_EQ(read.size(), 40u);
    for (std::size_t f = 0; f < 10; ++f)
        for (std::size_t c = 0; c < 4; ++c)
            EXPECT_EQ(read[f * 4 + c], samples[f * 5 + c]) << "frame " << f << " channel " << c;
    // --channels may name either count.
    OpenOptions neural;
    neural.n_channels = 4;
    EXPECT_EQ(open_recording(dir_ / "run.imec0.ap.bin", neural)->info().n_channels, 4);
    OpenOptions saved;
    saved.n_channels = 5;
    EXPECT_EQ(open_recording(dir_ / "run.imec0.ap.bin", saved)->info().n_channels, 4);

    for (const char* bad : {"4,0", "3,0,1", "4,0,x", "0,0,5", "4,-1,2"}) {
        write_text(dir_ / "run.imec0.ap.meta",
                   std::string("nSavedChans=5\nimSampRate=30000\nfileSizeBytes=100\n") + "snsApLfSy=" + bad + "\n");
        expect_input_error([&] { open_spikeglx(dir_ / "run.imec0.ap.bin"); },
                           {"snsApLfSy=" + std::string(bad), "nSavedChans=5"});
    }
}

TEST_F(IoTest, SpikeGlxSavedChannelSubset) {
    const fs::path meta = dir_ / "m.meta";
    EXPECT_TRUE(spikeglx_saved_channels({{"snsSaveChanSubset", "all"}}, meta).empty());
    EXPECT_TRUE(spikeglx_saved_channels({}, meta).empty());
    EXPECT_EQ(spikeglx_saved_channels({{"snsSaveChanSubset", "12:14,2,4, 8"}}, meta),
              (std::vector<int>{2, 4, 8, 12, 13, 14}));
    for (const char* bad : {"1:x", "5:2", "-1", "3,,4", "a"})
        expect_input_error(
            [&] {
                spikeglx_saved_channels({{"snsSaveChanSubset", bad}}, meta);
            },
            {"m.meta", "snsSaveChanSubset=" + std::string(bad)});
}

// ---------------------------------------------------------------------------------------------------------------
// open_recording and raw files

TEST_F(IoTest, OpenRecordingDispatchesSpikeGlxByBinMetaAndFolder) {
    const auto samples = ramp_frames(20, 3);
    const fs::path bin = write_spikeglx(dir_, "rec", samples, 3);
    for (const fs::path& input : {bin, fs::path(dir_ / "rec.meta"), dir_}) {
        auto source = open_recording(input, {});
        EXPECT_EQ(source->info().format, "spikeglx") << input;
        EXPECT_EQ(source->info().data_path, bin) << input;
        EXPECT_EQ(source->info().n_channels, 3);
        EXPECT_EQ(read_all(*source, 7), samples) << input;
    }

    OpenOptions options;
    options.microvolts_per_bit = 0.5;
    EXPECT_DOUBLE_EQ(open_recording(bin, options)->info().microvolts_per_bit, 0.5);
    options.n_channels = 4;
    expect_input_error([&] { open_recording(bin, options); }, {"--channels 4", "nSavedChans=3"});

    fs::remove(bin);
    expect_input_error([&] { open_recording(dir_ / "rec.meta", {}); }, {"rec.bin", "missing"});
}

TEST_F(IoTest, OpenRecordingFolderNeedsExactlyOnePair) {
    expect_input_error([&] { open_recording(dir_, {}); }, {"holds no SpikeGLX recording", "structure.oebin"});
    write_spikeglx(dir_, "first", ramp_frames(4, 2), 2);
    write_spikeglx(dir_, "second", ramp_frames(4, 2), 2);
    write_bytes(dir_ / "stray.bin", std::string(8, '\0')); // no .meta: not a candidate
    expect_input_error([&] { open_recording(dir_, {}); }, {"holds 2 SpikeGLX recordings", "first.bin", "second.bin"});
}

TEST_F(IoTest, OpenRecordingReadsRawWithChannelsAndRate) {
    const auto samples = ramp_frames(50, 8);
    const fs::path path = dir_ / "raw.dat";
    write_bytes(path, std::string(reinterpret_cast<const char*>(samples.data()), samples.size() * 2));

    expect_input_error([&] { open_recording(path, {}); }, {"raw.dat", "pass --channels and --sample-rate"});
    OpenOptions only_channels;
    only_channels.n_channels = 8;
    expect_input_error([&] { open_recording(path, only_channels); }, {"--sample-rate"});

    OpenOptions options;
    options.n_channels = 8;
    options.sample_rate = 20000.0;
    auto source = open_recording(path, options);
    EXPECT_EQ(source->info().format, "raw");
    EXPECT_EQ(source->info().n_frames, 50u);
    EXPECT_EQ(source->info().microvolts_per_bit, 0.0);
    EXPECT_DOUBLE_EQ(source->info().sample_rate, 20000.0);
    EXPECT_EQ(read_all(*source, 16), samples);

    // A .bin without a .meta is raw too.
    const fs::path bare_bin = dir_ / "bare.bin";
    fs::copy_file(path, bare_bin);
    EXPECT_EQ(open_recording(bare_bin, options)->info().format, "raw");

    expect_input_error([&] { open_recording(dir_ / "nowhere.dat", options); }, {"nowhere.dat", "does not exist"});
}

TEST_F(IoTest, RawRejectsBadSizesAndOptions) {
    const fs::path path = dir_ / "odd.raw";
    write_bytes(path, std::string(1001, '\0'));
    expect_input_error([&] { open_raw(path, 4, 30000.0, 0.0); },
                       {"odd.raw", "1001 bytes", "4 int16 channels", "1 bytes left over", "check --channels"});
    expect_input_error([&] { open_raw(path, 0, 30000.0, 0.0); }, {"between 1 and 65536"});
    expect_input_error([&] { open_raw(path, 70000, 30000.0, 0.0); }, {"between 1 and 65536"});
    expect_input_error([&] { open_raw(path, 1, 0.0, 0.0); }, {"--sample-rate"});

    const fs::path empty = dir_ / "empty.raw";
    write_bytes(empty, "");
    expect_input_error([&] { open_raw(empty, 1, 30000.0, 0.0); }, {"empty.raw", "empty"});

    // 1001 bytes is not a whole number of 1-channel frames either; 1000 bytes is 500 frames.
    expect_input_error([&] { open_raw(path, 1, 30000.0, 0.0); }, {"1 bytes left over"});
    fs::resize_file(path, 1000);
    auto one_channel = open_raw(path, 1, 30000.0, 0.25);
    EXPECT_EQ(one_channel->info().n_frames, 500u);
    EXPECT_DOUBLE_EQ(one_channel->info().microvolts_per_bit, 0.25);
}

// ---------------------------------------------------------------------------------------------------------------
// Open Ephys binary: which channels are electrodes, and the gain

struct OeChannel {
    std::string name, description, units;
    double bit_volts;
};

/// A one-stream recording folder: structure.oebin listing `channels` and continuous.dat holding `samples`.
fs::path write_oe_stream(const fs::path& folder, const std::vector<OeChannel>& channels,
                         const std::vector<std::int16_t>& samples, const std::string& processor = "Acquisition Board") {
    nlohmann::json list = nlohmann::json::array();
    for (const OeChannel& c : channels) {
        nlohmann::json channel = {{"channel_name", c.name}, {"description", c.description}, {"units", c.units}};
        if (c.bit_volts > 0)
            channel["bit_volts"] = c.bit_volts;
        list.push_back(channel);
    }
    const nlohmann::json oebin = {{"continuous",
                                   {{{"folder_name", "Acquisition_Board-100.Rhythm Data/"},
                                     {"stream_name", "Rhythm Data"},
                                     {"source_processor_name", processor},
                                     {"sample_rate", 30000.0},
                                     {"num_channels", channels.size()},
                                     {"channels", list}}}}};
    fs::create_directories(folder / "continuous" / "Acquisition_Board-100.Rhythm Data");
    std::ofstream(folder / "structure.oebin") << oebin.dump();
    std::ofstream data(folder / "continuous" / "Acquisition_Board-100.Rhythm Data" / "continuous.dat",
                       std::ios::binary);
    data.write(reinterpret_cast<const char*>(samples.data()), static_cast<std::streamsize>(samples.size() * 2));
    return folder;
}

const OeChannel kElectrode1{"CH1", "Headstage data channel", "uV", 0.195};
const OeChannel kElectrode2{"CH2", "Headstage data channel", "uV", 0.195};
const OeChannel kAux{"AUX1", "Auxiliary input channel", "mV", 0.0000374};
const OeChannel kAdc{"ADC1", "ADC data channel", "V", 0.00015};

TEST_F(IoTest, OpenEphysAuxAndAdcChannelsAreSkippedAndOnlyElectrodesDelivered) {
    // Two frames of CH1, CH2, AUX1, ADC1.
    write_oe_stream(dir_, {kElectrode1, kElectrode2, kAux, kAdc}, {1, 2, 300, 400, 5, 6, 700, 800});
    OpenOptions options;
    auto source = open_recording(dir_, options);
    const RecordingInfo& info = source->info();
    EXPECT_EQ(info.n_channels, 2);
    EXPECT_EQ(info.file_channels(), 4);
    ASSERT_EQ(info.skipped_channels.size(), 2u);
    EXPECT_EQ(info.skipped_channels[0].first, 2);
    EXPECT_NE(info.skipped_channels[0].second.find("AUX1"), std::string::npos);
    EXPECT_EQ(info.skipped_channels[1].first, 3);
    EXPECT_NE(info.skipped_channels[1].second.find("ADC1"), std::string::npos);
    EXPECT_DOUBLE_EQ(info.microvolts_per_bit, 0.195);
    EXPECT_FALSE(info.gain_fallback);
    std::vector<std::int16_t> frames(4);
    ASSERT_EQ(source->read(frames.data(), 2), 2u);
    EXPECT_EQ(frames, (std::vector<std::int16_t>{1, 2, 5, 6}));
}

TEST_F(IoTest, OpenEphysChannelCountMustBeAnIntegerInRange) {
    // 4e55 once reached an int conversion (undefined behaviour; found by fuzz_open_ephys_oebin).
    for (const char* count : {"4.4e55", "4.0", "\"4\"", "1099511627776", "0", "-4", "18446744073709551615"}) {
        SCOPED_TRACE(count);
        write_oe_stream(dir_, {kElectrode1, kElectrode2, kAux, kAdc}, {1, 2, 300, 400});
        std::ifstream in(dir_ / "structure.oebin");
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const std::string key = "\"num_channels\":4";
        ASSERT_NE(text.find(key), std::string::npos);
        text.replace(text.find(key), key.size(), std::string("\"num_channels\":") + count);
        std::ofstream(dir_ / "structure.oebin") << text;
        expect_input_error([&] { open_recording(dir_, OpenOptions{}); },
                           {"num_channels", "an integer from 1 to 65536"});
    }
}

TEST_F(IoTest, OpenEphysStreamWithoutElectrodesIsRefusedUnlessForcedThenReadInMicrovolts) {
    write_oe_stream(dir_, {kAdc, kAdc}, {1, 2});
    expect_input_error([&] { open_recording(dir_, OpenOptions{}); }, {"no electrode channels", "--force-non-neural"});
    OpenOptions forced;
    forced.allow_non_neural = true;
    const auto source = open_recording(dir_, forced);
    EXPECT_EQ(source->info().n_channels, 2);
    EXPECT_TRUE(source->info().skipped_channels.empty());
    EXPECT_NEAR(source->info().microvolts_per_bit, 150.0, 1e-9); // 0.00015 V per bit
}

TEST_F(IoTest, OpenEphysNiDaqStreamsAreNonNeural) {
    // NI-DAQmx analog inputs name no units; the source processor says what they are.
    write_oe_stream(dir_, {{"AI0", "Analog Input channel from a NIDAQ device", "", 0.000305}}, {1}, "NI-DAQmx");
    expect_input_error([&] { open_recording(dir_, OpenOptions{}); }, {"NI-DAQmx", "--oe-stream"});
}

TEST_F(IoTest, OpenEphysElectrodeAfterASkippedChannelIsRefused) {
    write_oe_stream(dir_, {kElectrode1, kAdc, kElectrode2}, {1, 2, 3});
    expect_input_error([&] { open_recording(dir_, OpenOptions{}); }, {"electrode channel 2", "comes after"});
}

TEST_F(IoTest, OpenEphysGainFallbackIsFlaggedAndUvPerBitOverrides) {
    write_oe_stream(dir_, {{"CH1", "", "uV", 0}, {"CH2", "", "uV", 0}}, {1, 2});
    const auto unknown = open_recording(dir_, OpenOptions{});
    EXPECT_EQ(unknown->info().microvolts_per_bit, 0.0);
    EXPECT_TRUE(unknown->info().gain_fallback);
    OpenOptions given;
    given.microvolts_per_bit = 0.5;
    const auto source = open_recording(dir_, given);
    EXPECT_DOUBLE_EQ(source->info().microvolts_per_bit, 0.5);
    EXPECT_FALSE(source->info().gain_fallback);
    EXPECT_EQ(source->info().gain_source, "--uv-per-bit");
}

// mtscomp .cbin + .ch

using spikeline::testing::CbinLayout;
using spikeline::testing::write_cbin;

/// Samples that exercise wrap-around in the differences: full-scale steps between neighbouring frames and channels.
std::vector<std::int16_t> extreme_frames(std::size_t n_frames, int n_channels) {
    std::vector<std::int16_t> samples = ramp_frames(n_frames, n_channels);
    for (std::size_t i = 0; i < samples.size(); i += 7)
        samples[i] = (i / 7) % 2 ? std::numeric_limits<std::int16_t>::min() : std::numeric_limits<std::int16_t>::max();
    return samples;
}

TEST_F(IoTest, MtscompRoundTripsEveryLayoutBitForBit) {
    const int n_channels = 6;
    const auto samples = extreme_frames(1003, n_channels); // chunks of 300 frames: the last holds 103
    int variant = 0;
    for (const bool channel_major : {true, false})
        for (const bool time_diff : {true, false})
            for (const bool spatial_diff : {false, true}) {
                CbinLayout layout;
                layout.channel_major = channel_major;
                layout.time_diff = time_diff;
                layout.spatial_diff = spatial_diff;
                std::string name = "rec";
                name += std::to_string(variant++);
                const fs::path cbin = write_cbin(dir_, name, samples, n_channels, 25000.0, layout);
                for (const std::size_t read_frames : {std::size_t{1}, std::size_t{64}, std::size_t{5000}}) {
                    auto source = open_recording(cbin, {});
                    const RecordingInfo& info = source->info();
                    EXPECT_EQ(info.format, "mtscomp .cbin");
                    EXPECT_EQ(info.n_channels, n_channels);
                    EXPECT_EQ(info.n_frames, 1003u);
                    EXPECT_DOUBLE_EQ(info.sample_rate, 25000.0);
                    EXPECT_EQ(info.data_path, cbin);
                    EXPECT_TRUE(info.gain_fallback);
                    EXPECT_EQ(read_all(*source, read_frames), samples) << name << " read by " << read_frames;
                }
            }
    // Without a .meta the gain comes from --uv-per-bit.
    OpenOptions gain;
    gain.microvolts_per_bit = 0.5;
    EXPECT_DOUBLE_EQ(open_recording(dir_ / "rec0.cbin", gain)->info().microvolts_per_bit, 0.5);
}

TEST_F(IoTest, MtscompWithSpikeGlxMetaReadsLikeTheBin) {
    // A Neuropixels-style file, 4 neural channels and a sync channel: the .meta gives gain and sync, the .ch the data.
    const auto samples = extreme_frames(700, 5);
    const fs::path bin = write_spikeglx(dir_, "run_g0_t0.imec0.ap", samples, 5, 30000.0, 2.34375);
    std::string meta = read_bytes(dir_ / "run_g0_t0.imec0.ap.meta");
    meta.replace(meta.find("snsApLfSy=5,0,0"), 15, "snsApLfSy=4,0,1");
    write_text(dir_ / "run_g0_t0.imec0.ap.meta", meta);
    const RecordingInfo bin_info = open_recording(bin, {})->info();
    const std::vector<std::int16_t> expected = read_all(*open_recording(bin, {}), 100);

    const fs::path cbin = write_cbin(dir_, "run_g0_t0.imec0.ap", samples, 5, 30000.0);
    fs::remove(bin);
    for (const fs::path& input : {cbin, fs::path(dir_ / "run_g0_t0.imec0.ap.meta"), dir_}) {
        auto source = open_recording(input, {});
        const RecordingInfo& info = source->info();
        EXPECT_EQ(info.format, "spikeglx (mtscomp .cbin)") << input;
        EXPECT_EQ(info.data_path, cbin) << input;
        EXPECT_EQ(info.n_channels, 4);
        EXPECT_EQ(info.file_channels(), 5);
        EXPECT_EQ(info.n_frames, bin_info.n_frames);
        EXPECT_DOUBLE_EQ(info.microvolts_per_bit, bin_info.microvolts_per_bit);
        EXPECT_EQ(read_all(*source, 33), expected) << input;
    }

    // The .meta and the .ch must describe the same data.
    write_text(dir_ / "run_g0_t0.imec0.ap.meta", "nSavedChans=6\nimSampRate=30000\nfileSizeBytes=8400\n");
    expect_input_error([&] { open_recording(cbin, {}); }, {"nSavedChans=6", "its .ch says 5 channels"});
    write_text(dir_ / "run_g0_t0.imec0.ap.meta", "nSavedChans=5\nimSampRate=30000\nfileSizeBytes=6000\n");
    expect_input_error([&] { open_recording(cbin, {}); },
                       {"fileSizeBytes=6000", "describes 7000 bytes of data (700 frames)"});
}

TEST_F(IoTest, MtscompCorruptChunkIsAClearError) {
    const auto samples = extreme_frames(900, 4);
    const fs::path cbin = write_cbin(dir_, "rec", samples, 4, 30000.0);
    const nlohmann::json header = nlohmann::json::parse(read_bytes(dir_ / "rec.ch"));
    const auto chunk1 = header["chunk_offsets"][1].get<std::size_t>();
    std::string bytes = read_bytes(cbin);
    bytes[chunk1 + 20] = static_cast<char>(bytes[chunk1 + 20] ^ 0x5a);
    write_bytes(cbin, bytes);
    auto source = open_recording(cbin, {});
    std::vector<std::int16_t> chunk(300 * 4);
    EXPECT_EQ(source->read(chunk.data(), 300), 300u); // chunk 0 is intact
    expect_input_error([&] { source->read(chunk.data(), 300); }, {"rec.cbin", "chunk 1 of 3", "is corrupt"});
}

TEST_F(IoTest, MtscompRejectsMissingDamagedAndUnsupportedHeaders) {
    const auto samples = extreme_frames(600, 3);
    const fs::path cbin = write_cbin(dir_, "rec", samples, 3, 30000.0);
    const nlohmann::json good = nlohmann::json::parse(read_bytes(dir_ / "rec.ch"));
    auto with = [&](const std::string& key, const nlohmann::json& value) {
        nlohmann::json header = good;
        if (value.is_null())
            header.erase(key);
        else
            header[key] = value;
        write_text(dir_ / "rec.ch", header.dump());
    };
    with("algorithm", "bzip2");
    expect_input_error([&] { open_recording(cbin, {}); }, {"rec.ch", "'bzip2' is not supported"});
    with("dtype", "float32");
    expect_input_error([&] { open_recording(cbin, {}); }, {"dtype 'float32' is not supported"});
    with("chunk_order", "A");
    expect_input_error([&] { open_recording(cbin, {}); }, {"chunk_order 'A'"});
    with("chunk_order", 7); // a type nlohmann's value() would throw on: an internal error before
    expect_input_error([&] { open_recording(cbin, {}); }, {"chunk_order is 7, not text"});
    with("chopped", "yes");
    expect_input_error([&] { open_recording(cbin, {}); }, {"true/false field chopped"});
    with("algorithm", nlohmann::json::array({"zlib"}));
    expect_input_error([&] { open_recording(cbin, {}); }, {"algorithm is [\"zlib\"], not text"});
    with("version", "2.0");
    expect_input_error([&] { open_recording(cbin, {}); }, {"version \"2.0\" is not supported"});
    with("do_time_diff", nullptr);
    expect_input_error([&] { open_recording(cbin, {}); }, {"do_time_diff"});
    with("chunk_bounds", nlohmann::json::array({0, 300, 250}));
    expect_input_error([&] { open_recording(cbin, {}); }, {"chunk_bounds must start at 0 and increase"});
    with("chunk_offsets", nlohmann::json::array({0, 10}));
    expect_input_error([&] { open_recording(cbin, {}); }, {"chunk_bounds lists 2 chunks but chunk_offsets 1"});
    // A chunk whose stream holds fewer frames than its bounds state.
    nlohmann::json longer = good;
    longer["chunk_bounds"][1] = 301;
    longer["chunk_bounds"][2] = 601;
    write_text(dir_ / "rec.ch", longer.dump());
    std::vector<std::int16_t> all(601 * 3);
    expect_input_error([&] { open_recording(cbin, {})->read(all.data(), 601); },
                       {"chunk 0 of 2 is corrupt", "decompresses to 1800 bytes, not the 1806"});

    // ... and one whose stream holds more.
    nlohmann::json shorter = good;
    shorter["chunk_bounds"][1] = 299;
    write_text(dir_ / "rec.ch", shorter.dump());
    expect_input_error([&] { open_recording(cbin, {})->read(all.data(), 600); },
                       {"chunk 0 of 2 is corrupt", "decompresses to more than the 1794 bytes"});

    write_text(dir_ / "rec.ch", good.dump());
    fs::resize_file(cbin, fs::file_size(cbin) - 1);
    expect_input_error([&] { open_recording(cbin, {}); }, {"rec.cbin", "the .cbin is truncated"});
    write_text(dir_ / "rec.ch", "{ not json");
    expect_input_error([&] { open_recording(cbin, {}); }, {"rec.ch is not valid JSON"});
    fs::remove(dir_ / "rec.ch");
    expect_input_error([&] { open_recording(cbin, {}); }, {"no rec.ch beside it"});
}

TEST_F(IoTest, MtscompTruncatedAndChoppedFilesAreReadByTheirWholeChunks) {
    // 1000 frames of 3 channels in chunks of 300: the .meta (fileSizeBytes=6000) describes the whole recording.
    const auto samples = extreme_frames(1000, 3);
    write_spikeglx(dir_, "rec", samples, 3);
    fs::remove(dir_ / "rec.bin");
    const fs::path cbin = write_cbin(dir_, "rec", samples, 3, 30000.0);
    const nlohmann::json header = nlohmann::json::parse(read_bytes(dir_ / "rec.ch"));
    const std::vector<std::int16_t> first_600(samples.begin(), samples.begin() + 600 * 3);

    // An interrupted copy: the .cbin ends inside chunk 2.
    fs::resize_file(cbin, header["chunk_offsets"][2].get<std::uintmax_t>() + 10);
    expect_input_error([&] { open_recording(cbin, {}); },
                       {"the .cbin is truncated", "pass --allow-truncated to process its 2 whole chunk(s)"});
    OpenOptions allow;
    allow.allow_truncated = true;
    auto cut = open_recording(cbin, allow);
    EXPECT_EQ(cut->info().n_frames, 600u);
    EXPECT_NE(cut->info().warning.find("using its 2 whole chunk(s), 600 of the 1000 frames"), std::string::npos)
        << cut->info().warning;
    EXPECT_EQ(read_all(*cut, 128), first_600);

    // mtscomp's Reader.chop: the first chunks, "chopped": true, the .meta of the whole recording kept.
    nlohmann::json chopped = header;
    chopped["chunk_bounds"] = nlohmann::json::array({0, 300, 600});
    chopped["chunk_offsets"] = nlohmann::json::array({0, header["chunk_offsets"][1], header["chunk_offsets"][2]});
    chopped["chopped"] = true;
    write_text(dir_ / "rec.ch", chopped.dump());
    fs::resize_file(cbin, header["chunk_offsets"][2].get<std::uintmax_t>());
    auto part = open_recording(cbin, {});
    EXPECT_EQ(part->info().format, "spikeglx (mtscomp .cbin)");
    EXPECT_EQ(part->info().n_frames, 600u);
    EXPECT_NE(part->info().warning.find("chopped mtscomp file"), std::string::npos) << part->info().warning;
    EXPECT_EQ(read_all(*part, 77), first_600);
    // Not chopped, the same .ch contradicts the .meta.
    chopped.erase("chopped");
    write_text(dir_ / "rec.ch", chopped.dump());
    expect_input_error([&] { open_recording(cbin, {}); }, {"fileSizeBytes=6000", "describes 3600 bytes"});
}

// ---------------------------------------------------------------------------------------------------------------
// Channel selection

TEST_F(IoTest, ChannelSelectionDeliversChosenChannelsWithGlobalIds) {
    const auto samples = ramp_frames(40, 6);
    const fs::path path = dir_ / "raw.dat";
    write_bytes(path, std::string(reinterpret_cast<const char*>(samples.data()), samples.size() * 2));
    OpenOptions options;
    options.n_channels = 6;
    options.sample_rate = 30000.0;
    auto selected = select_channels(open_recording(path, options), {1, 4, 5});
    EXPECT_EQ(selected->info().n_channels, 3);
    EXPECT_EQ(selected->info().file_channels(), 6);
    EXPECT_EQ(selected->info().channel_ids, (std::vector<int>{1, 4, 5}));
    const std::vector<std::size_t> chosen = {1, 4, 5};
    const auto read = read_all(*selected, 7);
    ASSERT_EQ(read.size(), 40u * 3);
    for (std::size_t f = 0; f < 40; ++f)
        for (std::size_t k = 0; k < 3; ++k)
            EXPECT_EQ(read[f * 3 + k], samples[f * 6 + chosen[k]]);

    // A selection of a selection keeps the recording's ids.
    auto nested = select_channels(select_channels(open_recording(path, options), {1, 4, 5}), {0, 2});
    EXPECT_EQ(nested->info().channel_ids, (std::vector<int>{1, 5}));

    expect_input_error([&] { select_channels(open_recording(path, options), {}); }, {"empty"});
    expect_input_error([&] { select_channels(open_recording(path, options), {2, 6}); }, {"channel 6", "0..5"});
    expect_input_error([&] { select_channels(open_recording(path, options), {3, 1}); }, {"ascending"});
}

TEST_F(IoTest, ShankSelectionAndTheSuggestionForLargeProbes) {
    // A quad-base-like probe: 4 shanks of 384 contacts, 1536 channels.
    probe::Probe quad;
    quad.name = "quad";
    for (int c = 0; c < 1536; ++c) {
        std::string id = "e";
        id += std::to_string(c);
        quad.contacts.push_back(
            {static_cast<double>(c % 2) * 32.0 + (c / 384) * 250.0, (c % 384) / 2 * 15.0, c / 384, id, false});
    }
    const std::vector<int> shank2 = channels_on_shanks(quad, {2});
    ASSERT_EQ(shank2.size(), 384u);
    EXPECT_EQ(shank2.front(), 768);
    EXPECT_EQ(shank2.back(), 1151);
    expect_input_error([&] { channels_on_shanks(quad, {4}); }, {"shank 4", "0,1,2,3"});
    EXPECT_EQ(suggest_selection(quad, 1024), "--shanks 0,1 (768 channels), then --shanks 2,3 (768 channels)");
    const probe::Probe subset = probe_subset(quad, shank2);
    EXPECT_EQ(subset.n_channels(), 384);
    EXPECT_EQ(subset.contacts.front().id, "e768");

    probe::Probe one_shank = quad;
    for (auto& contact : one_shank.contacts)
        contact.shank = 0;
    EXPECT_EQ(suggest_selection(one_shank, 1024),
              "--channels-subset 0:1023 (1024 channels), then --channels-subset 1024:1535 (512 channels)");
}

} // namespace
