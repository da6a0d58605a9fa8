// End-to-end tests of the spikeline command-line tool: runs the built binary (SPIKELINE_CLI) as a child process
// with stdout and stderr redirected to files, then checks exit status, messages and the files it wrote.
#include "io/channel_selection.hpp"
#include "io/npy.hpp"
#include "mtscomp_writer.hpp"
#include "open_ephys_recording.hpp"
#include "probe/probe.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#ifndef SPIKELINE_CLI
#error "SPIKELINE_CLI must be defined as the path of the spikeline binary"
#endif

namespace {

namespace fs = std::filesystem;
using spikeline::io::read_npy_vector;

constexpr int kChannels = 64;
constexpr double kSampleRate = 30000;
constexpr double kDurationS = 3;

struct RunResult {
    int status = -1; ///< exit status, or 128 + signal number when the child was killed by a signal
    std::string out;
    std::string err;
};

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<char> read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

std::string describe(const std::vector<std::string>& args) {
    std::string s = "spikeline";
    for (const std::string& a : args)
        s.append(" ").append(a);
    return s;
}

/// Runs `spikeline args...` with stdout/stderr captured in files under capture_dir; never through a shell.
RunResult run_cli(const std::vector<std::string>& args, const fs::path& capture_dir) {
    static int counter = 0;
    ++counter;
    const fs::path out_file = capture_dir / (std::string("cli_stdout_") + std::to_string(counter) + ".txt");
    const fs::path err_file = capture_dir / (std::string("cli_stderr_") + std::to_string(counter) + ".txt");

    std::vector<std::string> storage;
    storage.emplace_back(SPIKELINE_CLI);
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : storage)
        argv.push_back(s.data());
    argv.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid == 0) {
        const int out_fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err_fd = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out_fd < 0 || err_fd < 0 || ::dup2(out_fd, STDOUT_FILENO) < 0 || ::dup2(err_fd, STDERR_FILENO) < 0)
            ::_exit(126);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    RunResult result;
    if (pid < 0)
        return result;
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0) {
    }
    if (WIFEXITED(wstatus))
        result.status = WEXITSTATUS(wstatus);
    else if (WIFSIGNALED(wstatus))
        result.status = 128 + WTERMSIG(wstatus);
    result.out = read_text(out_file);
    result.err = read_text(err_file);
    std::error_code ignored;
    fs::remove(out_file, ignored);
    fs::remove(err_file, ignored);
    return result;
}

/// key=value pairs of a SpikeGLX .meta file.
std::map<std::string, std::string> read_meta(const fs::path& path) {
    std::map<std::string, std::string> meta;
    std::istringstream in(read_text(path));
    std::string line;
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq != std::string::npos)
            meta[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return meta;
}

/// Writes the .meta at `from` to `to` without the line of `key`.
void copy_meta_without(const fs::path& from, const fs::path& to, const std::string& key) {
    std::istringstream in(read_text(from));
    std::ofstream out(to, std::ios::binary | std::ios::trunc);
    std::string line;
    bool removed = false;
    while (std::getline(in, line)) {
        if (line.rfind(key + "=", 0) == 0) {
            removed = true;
            continue;
        }
        out << line << '\n';
    }
    ASSERT_TRUE(removed) << key << " not found in " << from;
}

/// Files whose name contains ".tmp" anywhere below dir (nothing when dir does not exist).
std::vector<std::string> temporary_files(const fs::path& dir) {
    std::vector<std::string> found;
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return found;
    for (const auto& entry : fs::recursive_directory_iterator(dir))
        if (entry.path().filename().string().find(".tmp") != std::string::npos)
            found.push_back(entry.path().string());
    return found;
}

class CliTest : public ::testing::Test {
protected:
    /// One shared simulated recording (D) and its detection (O), made once for the whole suite.
    static void SetUpTestSuite() {
        root_ = fs::temp_directory_path() / (std::string("spikeline_test_cli_") + std::to_string(::getpid()));
        fs::remove_all(root_);
        fs::create_directories(root_);
        sim_dir_ = root_ / "D";
        detect_dir_ = root_ / "O";
        simulate_result_ = run_cli({"simulate", "--out", sim_dir_.string(), "--channels", std::to_string(kChannels),
                                    "--duration", "3", "--seed", "3", "-q"},
                                   root_);
        if (simulate_result_.status == 0)
            detect_result_ = run_cli({"detect", (sim_dir_ / "recording.bin").string(), "--out", detect_dir_.string(),
                                      "--threads", "2", "-q"},
                                     root_);
    }

    static void TearDownTestSuite() {
        std::error_code ignored;
        fs::remove_all(root_, ignored);
    }

    void SetUp() override {
        ASSERT_EQ(simulate_result_.status, 0) << "simulate failed: " << simulate_result_.err;
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = root_ / (std::string(info->name()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }

    RunResult run(const std::vector<std::string>& args) const { return run_cli(args, dir_); }

    /// Runs a detect that must fail: exit status 2, `expected` in the message, no outputs nor temporaries left.
    void expect_detect_fails(const std::vector<std::string>& args, const fs::path& out_dir,
                             const std::vector<std::string>& expected) const {
        const RunResult r = run(args);
        EXPECT_EQ(r.status, 2) << describe(args) << "\nstderr: " << r.err;
        EXPECT_EQ(r.err.rfind("spikeline " + args.front(), 0), 0u) << r.err;
        for (const std::string& e : expected)
            EXPECT_NE(r.err.find(e), std::string::npos)
                << "expected '" << e << "' in stderr of " << describe(args) << "\nstderr: " << r.err;
        EXPECT_FALSE(fs::exists(out_dir / "spike_times.npy")) << describe(args);
        EXPECT_FALSE(fs::exists(out_dir / "spike_channels.npy")) << describe(args);
        EXPECT_FALSE(fs::exists(out_dir / "detect_info.json")) << describe(args);
        EXPECT_FALSE(fs::exists(out_dir / "spike_clusters.npy")) << describe(args);
        EXPECT_TRUE(temporary_files(dir_).empty()) << describe(args) << " left " << temporary_files(dir_).front();
        EXPECT_TRUE(temporary_files(sim_dir_).empty()) << describe(args);
    }

    static inline fs::path root_;
    static inline fs::path sim_dir_;
    static inline fs::path detect_dir_;
    static inline RunResult simulate_result_;
    static inline RunResult detect_result_;
    fs::path dir_;
};

// ---------------------------------------------------------------------------------------------------------------
// simulate

TEST_F(CliTest, SimulateWritesRecordingProbeAndGroundTruth) {
    EXPECT_TRUE(simulate_result_.err.empty()) << simulate_result_.err;
    EXPECT_TRUE(simulate_result_.out.empty()) << "-q should print nothing: " << simulate_result_.out;
    for (const char* name : {"recording.bin", "recording.meta", "probe.json", "ground_truth/spike_times.npy",
                             "ground_truth/spike_units.npy", "ground_truth/units.tsv", "ground_truth/info.json"})
        EXPECT_TRUE(fs::is_regular_file(sim_dir_ / name)) << name;
    EXPECT_TRUE(temporary_files(sim_dir_).empty());

    const auto meta = read_meta(sim_dir_ / "recording.meta");
    ASSERT_TRUE(meta.count("fileSizeBytes"));
    ASSERT_TRUE(meta.count("nSavedChans"));
    ASSERT_TRUE(meta.count("imSampRate"));
    EXPECT_EQ(std::stoi(meta.at("nSavedChans")), kChannels);
    EXPECT_DOUBLE_EQ(std::stod(meta.at("imSampRate")), kSampleRate);
    const auto file_size = static_cast<std::uintmax_t>(std::stoull(meta.at("fileSizeBytes")));
    EXPECT_EQ(fs::file_size(sim_dir_ / "recording.bin"), file_size);
    const std::uintmax_t frame_bytes = 2u * kChannels;
    EXPECT_EQ(file_size % frame_bytes, 0u);
    const std::uintmax_t frames = file_size / frame_bytes;
    EXPECT_EQ(frames, static_cast<std::uintmax_t>(kDurationS * kSampleRate));

    const auto probe = nlohmann::json::parse(read_text(sim_dir_ / "probe.json"));
    ASSERT_TRUE(probe.contains("probes"));
    ASSERT_FALSE(probe["probes"].empty());
    EXPECT_EQ(probe["probes"][0]["contact_positions"].size(), static_cast<std::size_t>(kChannels));

    const auto truth_times = read_npy_vector<std::uint64_t>(sim_dir_ / "ground_truth" / "spike_times.npy");
    EXPECT_FALSE(truth_times.empty());
    EXPECT_TRUE(std::is_sorted(truth_times.begin(), truth_times.end()));
    EXPECT_LT(truth_times.back(), frames);
}

TEST_F(CliTest, SimulateIsDeterministicForASeed) {
    const fs::path again = dir_ / "D";
    const RunResult r = run({"simulate", "--out", again.string(), "--channels", std::to_string(kChannels), "--duration",
                             "3", "--seed", "3", "-q"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(read_bytes(again / "recording.bin") == read_bytes(sim_dir_ / "recording.bin"));
    EXPECT_EQ(read_text(again / "recording.meta"), read_text(sim_dir_ / "recording.meta"));
}

// ---------------------------------------------------------------------------------------------------------------
// detect + compare

TEST_F(CliTest, DetectThenCompareScoresWell) {
    ASSERT_EQ(detect_result_.status, 0) << detect_result_.err;
    EXPECT_TRUE(detect_result_.err.empty()) << detect_result_.err;
    EXPECT_TRUE(detect_result_.out.empty()) << "-q should print nothing: " << detect_result_.out;
    for (const char* name : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy", "detect_info.json"})
        EXPECT_TRUE(fs::is_regular_file(detect_dir_ / name)) << name;
    EXPECT_TRUE(temporary_files(detect_dir_).empty());

    const auto times = read_npy_vector<std::uint64_t>(detect_dir_ / "spike_times.npy");
    const auto channels = read_npy_vector<std::int32_t>(detect_dir_ / "spike_channels.npy");
    const auto amplitudes = read_npy_vector<float>(detect_dir_ / "spike_amplitudes.npy");
    ASSERT_FALSE(times.empty());
    EXPECT_EQ(channels.size(), times.size());
    EXPECT_EQ(amplitudes.size(), times.size());
    EXPECT_TRUE(std::is_sorted(times.begin(), times.end())) << "spike_times.npy must be non-decreasing";
    EXPECT_LT(times.back(), static_cast<std::uint64_t>(kDurationS * kSampleRate));
    for (const std::int32_t c : channels)
        ASSERT_TRUE(c >= 0 && c < kChannels) << c;

    const auto info = nlohmann::json::parse(read_text(detect_dir_ / "detect_info.json"));
    EXPECT_EQ(info["n_channels"].get<int>(), kChannels);
    EXPECT_EQ(info["n_spikes"].get<std::size_t>(), times.size());
    EXPECT_EQ(info["n_frames"].get<std::size_t>(), static_cast<std::size_t>(kDurationS * kSampleRate));

    const fs::path score_file = dir_ / "score.json";
    const RunResult r = run({"compare", "--ground-truth", (sim_dir_ / "ground_truth").string(), "--sorted",
                             detect_dir_.string(), "--json", score_file.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("precision"), std::string::npos) << r.out;
    ASSERT_TRUE(fs::is_regular_file(score_file));
    EXPECT_TRUE(temporary_files(dir_).empty());
    const auto score = nlohmann::json::parse(read_text(score_file));
    for (const char* key : {"precision", "recall", "recall_snr_at_least_5"}) {
        ASSERT_TRUE(score.contains(key) && score[key].is_number()) << key;
        EXPECT_GE(score[key].get<double>(), 0.0) << key;
        EXPECT_LE(score[key].get<double>(), 1.0) << key;
    }
    EXPECT_EQ(score["n_detected"].get<std::size_t>(), times.size());
    // Observed with seed 3, 64 channels, 3 s: recall(SNR >= 5) 0.964, precision 0.977, recall 0.894.
    EXPECT_GT(score["recall_snr_at_least_5"].get<double>(), 0.85);
    EXPECT_GT(score["precision"].get<double>(), 0.85);
    EXPECT_GT(score["recall"].get<double>(), 0.7);
}

TEST_F(CliTest, VerifyPassesDetectsOutputsAsWrittenAndNamesAChangedOrMissingFile) {
    ASSERT_EQ(detect_result_.status, 0) << detect_result_.err;
    const fs::path out = dir_ / "det";
    fs::copy(detect_dir_, out, fs::copy_options::recursive);
    RunResult r = run({"verify", out.string()});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("5 files as written by detect, 0 changed, 0 missing"), std::string::npos) << r.out;

    std::vector<char> times = read_bytes(out / "spike_times.npy");
    times.back() = static_cast<char>(times.back() ^ 1); // one bit of the last spike time, same size
    write_text(out / "spike_times.npy", std::string(times.begin(), times.end()));
    fs::remove(out / "detect_info.json");
    write_text(out / "notes.txt", "added by hand\n");
    r = run({"verify", out.string(), "-q"});
    EXPECT_EQ(r.status, 4) << r.err;
    EXPECT_EQ(r.out, "CHANGED  spike_times.npy\nMISSING  detect_info.json\n");

    r = run({"verify", (dir_ / "nowhere").string()});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("manifest.json"), std::string::npos) << r.err;
}

TEST_F(CliTest, ThreadsAndBackendsGiveIdenticalFiles) {
    ASSERT_EQ(detect_result_.status, 0) << detect_result_.err;
    const std::string input = (sim_dir_ / "recording.bin").string();
    const std::vector<std::pair<std::string, std::vector<std::string>>> runs = {
        {"t1", {"--threads", "1"}},
        {"t2", {"--threads", "2"}},
        {"t3", {"--threads", "3"}},
        {"ref", {"--backend", "reference"}},
        {"t2_small_chunks", {"--threads", "2", "--chunk-ms", "7"}},
    };
    for (const auto& [name, options] : runs) {
        std::vector<std::string> args = {"detect", input, "--out", (dir_ / name).string(), "-q"};
        args.insert(args.end(), options.begin(), options.end());
        const RunResult r = run(args);
        ASSERT_EQ(r.status, 0) << describe(args) << "\n" << r.err;
    }
    for (const char* file : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy"}) {
        const std::vector<char> expected = read_bytes(dir_ / "t1" / file);
        ASSERT_FALSE(expected.empty()) << file;
        EXPECT_TRUE(expected == read_bytes(detect_dir_ / file)) << file << ": default run differs from --threads 1";
        for (const auto& [name, options] : runs)
            EXPECT_TRUE(expected == read_bytes(dir_ / name / file)) << file << ": " << name << " differs from t1";
    }
}

TEST_F(CliTest, SortThreadsAndChunksGiveIdenticalFiles) {
    // The first of sort's two passes handles each chunk on another thread while the next is detected: small chunks
    // (many of them in flight, a calibration window ending inside one) must give the files one thread gives.
    const std::string input = (sim_dir_ / "recording.bin").string();
    const std::vector<std::pair<std::string, std::vector<std::string>>> runs = {
        {"t1", {"--threads", "1"}},
        {"t2", {"--threads", "2"}},
        {"t2_small_chunks", {"--threads", "2", "--chunk-ms", "7"}},
        {"t3_odd_chunks", {"--threads", "3", "--chunk-ms", "13"}},
    };
    for (const auto& [name, options] : runs) {
        std::vector<std::string> args = {"sort", input, "--out", (dir_ / name).string(), "--calibration-s", "1", "-q"};
        args.insert(args.end(), options.begin(), options.end());
        const RunResult r = run(args);
        ASSERT_EQ(r.status, 0) << describe(args) << "\n" << r.err;
    }
    for (const char* file : {"spike_times.npy", "spike_clusters.npy", "amplitudes.npy", "sorter.json"}) {
        const std::vector<char> expected = read_bytes(dir_ / "t1" / file);
        ASSERT_FALSE(expected.empty()) << file;
        for (const auto& [name, options] : runs)
            EXPECT_TRUE(expected == read_bytes(dir_ / name / file)) << file << ": " << name << " differs from t1";
    }
}

TEST_F(CliTest, DetectAcceptsTheFolderAndRawInt16) {
    // A folder holding one recording.
    const RunResult folder = run({"detect", sim_dir_.string(), "--out", (dir_ / "folder").string(), "-q"});
    ASSERT_EQ(folder.status, 0) << folder.err;
    EXPECT_TRUE(read_bytes(dir_ / "folder" / "spike_times.npy") == read_bytes(detect_dir_ / "spike_times.npy"));

    // The same samples as raw int16 with the probe and gain given explicitly give the same events.
    fs::create_directories(dir_ / "raw");
    fs::copy_file(sim_dir_ / "recording.bin", dir_ / "raw" / "data.dat");
    const RunResult raw =
        run({"detect", (dir_ / "raw" / "data.dat").string(), "--channels", std::to_string(kChannels), "--sample-rate",
             "30000", "--probe", (sim_dir_ / "probe.json").string(), "--out", (dir_ / "raw_out").string(), "-q"});
    ASSERT_EQ(raw.status, 0) << raw.err;
    EXPECT_TRUE(read_bytes(dir_ / "raw_out" / "spike_times.npy") == read_bytes(detect_dir_ / "spike_times.npy"));
    EXPECT_TRUE(read_bytes(dir_ / "raw_out" / "spike_channels.npy") == read_bytes(detect_dir_ / "spike_channels.npy"));
}

TEST_F(CliTest, AllChannelBurstsAreArtefactsUnlessRejectionIsOff) {
    // 256 channels (two shanks of 128), 1 s of noise with a burst every 0.2 s from 0.3 s: +-3000 LSB for 10 samples,
    // alternating sign between channels.
    constexpr int channels = 256;
    constexpr std::size_t frames = 30000;
    std::vector<std::int16_t> data(frames * channels);
    std::uint32_t state = 12345;
    for (std::size_t f = 0; f < frames; ++f)
        for (std::size_t ch = 0; ch < channels; ++ch) {
            state = state * 1664525u + 1013904223u;
            int v = static_cast<int>(state >> 26) - 32; // uniform noise, +-32 LSB
            if (f >= 9000 && (f - 9000) % 6000 < 10)
                v += ch % 2 ? 3000 : -3000;
            data[f * channels + ch] = static_cast<std::int16_t>(v);
        }
    const fs::path raw = dir_ / "bursts.dat";
    {
        std::ofstream out(raw, std::ios::binary);
        out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size() * 2));
    }
    auto detect = [&](const std::string& name, std::vector<std::string> extra) {
        std::vector<std::string> args = {
            "detect", raw.string(),           "--channels", std::to_string(channels), "--sample-rate", "30000",
            "--out",  (dir_ / name).string(), "-q"};
        args.insert(args.end(), extra.begin(), extra.end());
        const RunResult result = run(args);
        EXPECT_EQ(result.status, 0) << result.err;
        return nlohmann::json::parse(read_text(dir_ / name / "detect_info.json"));
    };
    const auto on = detect("on", {});
    const auto off = detect("off", {"--no-artifact-rejection"});
    // 4 bursts on each of 2 shanks; the rows hold {sample, group, crossings}
    EXPECT_EQ(on["artifacts"], 8);
    EXPECT_GT(on["artifact_candidates"].get<int>(), 4 * 128);
    const auto array = spikeline::io::read_npy(dir_ / "on" / "artifacts.npy");
    ASSERT_EQ(array.shape, (std::vector<std::size_t>{8, 3}));
    const auto rows = array.as<std::int64_t>();
    for (std::size_t i = 0; i < 8; ++i) {
        const auto burst = (i / 2) * 6000 + 9000;
        EXPECT_GE(rows[3 * i], static_cast<std::int64_t>(burst)) << "artefact " << i;
        EXPECT_LT(rows[3 * i], static_cast<std::int64_t>(burst + 20)) << "artefact " << i;
        EXPECT_EQ(rows[3 * i + 1], static_cast<std::int64_t>(i % 2));
    }
    EXPECT_EQ(off["artifacts"], 0);
    EXPECT_EQ(off["settings"]["artifact_rejection"], false);
    EXPECT_EQ(spikeline::io::read_npy(dir_ / "off" / "artifacts.npy").shape, (std::vector<std::size_t>{0, 3}));
    EXPECT_LT(on["n_spikes"].get<int>() + 20, off["n_spikes"].get<int>()) << "the bursts' events are gone";

    // a de-duplication window shorter than the artefact window is refused with the option that fixes it
    const RunResult short_window = run({"detect", raw.string(), "--channels", std::to_string(channels), "--sample-rate",
                                        "30000", "--out", (dir_ / "short").string(), "--dedup-ms", "0.1", "-q"});
    EXPECT_NE(short_window.status, 0);
    EXPECT_NE(short_window.err.find("--artifact-window-ms"), std::string::npos) << short_window.err;
    EXPECT_FALSE(fs::exists(dir_ / "short" / "spike_times.npy"));
    const auto narrow =
        detect("narrow", {"--dedup-ms", "0.1", "--artifact-window-ms", "0.1", "--artifact-reach-um", "100"});
    EXPECT_EQ(narrow["artifacts"], 8);
    EXPECT_DOUBLE_EQ(narrow["settings"]["artifact_window_ms"].get<double>(), 0.1);
    EXPECT_DOUBLE_EQ(narrow["settings"]["artifact_reach_um"].get<double>(), 100.0);
}

TEST_F(CliTest, DetectPrintsASummaryWithoutQuiet) {
    const RunResult r = run({"detect", (sim_dir_ / "recording.bin").string(), "--out", (dir_ / "O").string()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("spikeline detect"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("spikes"), std::string::npos) << r.out;
    // stderr is a file here, so no progress line is drawn.
    EXPECT_EQ(r.err.find("detect:"), std::string::npos) << r.err;
}

TEST_F(CliTest, SpikeGlxSyncChannelIsSkippedAndGeometryComesFromTheMeta) {
    // The simulated recording with a Neuropixels-style sync channel appended to every frame: a square wave of
    // 0 / 64 LSB toggling every 1000 frames, which would be detected as spikes if it were read as neural.
    const fs::path rec = dir_ / "with_sync";
    fs::create_directories(rec);
    const std::vector<char> neural = read_bytes(sim_dir_ / "recording.bin");
    constexpr auto channels = static_cast<std::size_t>(kChannels);
    const std::size_t n_frames = neural.size() / (2 * channels);
    std::vector<char> with_sync;
    with_sync.reserve(n_frames * 2 * (channels + 1));
    for (std::size_t f = 0; f < n_frames; ++f) {
        with_sync.insert(with_sync.end(), neural.begin() + static_cast<std::ptrdiff_t>(f * 2 * channels),
                         neural.begin() + static_cast<std::ptrdiff_t>((f + 1) * 2 * channels));
        const std::int16_t sync = (f / 1000) % 2 == 0 ? 0 : 64;
        with_sync.push_back(static_cast<char>(sync & 0xff));
        with_sync.push_back(static_cast<char>(sync >> 8));
    }
    std::ofstream(rec / "recording.bin", std::ios::binary)
        .write(with_sync.data(), static_cast<std::streamsize>(with_sync.size()));
    copy_meta_without(sim_dir_ / "recording.meta", rec / "recording.meta", "nSavedChans");
    copy_meta_without(rec / "recording.meta", rec / "meta.tmp", "fileSizeBytes");
    copy_meta_without(rec / "meta.tmp", rec / "recording.meta", "snsApLfSy");
    fs::remove(rec / "meta.tmp");
    std::ofstream(rec / "recording.meta", std::ios::app)
        << "nSavedChans=65\nfileSizeBytes=" << with_sync.size() << "\nsnsApLfSy=64,0,1\n";
    fs::copy_file(sim_dir_ / "probe.json", rec / "probe.json");

    const fs::path plain = dir_ / "plain", synced = dir_ / "synced";
    ASSERT_EQ(run({"detect", (sim_dir_ / "recording.bin").string(), "--out", plain.string(), "-q"}).status, 0);
    const RunResult r = run({"detect", (rec / "recording.bin").string(), "--out", synced.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("1 non-neural channel(s) of the file skipped"), std::string::npos) << r.out;
    for (const char* name : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy"})
        EXPECT_EQ(read_bytes(plain / name), read_bytes(synced / name)) << name;

    const fs::path phy = dir_ / "phy";
    ASSERT_EQ(run({"sort", (rec / "recording.bin").string(), "--out", phy.string(), "-q"}).status, 0);
    const std::string params = read_text(phy / "params.py");
    EXPECT_NE(params.find("n_channels_dat = 65"), std::string::npos) << params;
    EXPECT_NE(params.find("recording.bin"), std::string::npos) << params;

    // Without probe.json the geometry comes from the .meta's ~snsGeomMap (SpikeGLX 2023 and later).
    const spikeline::probe::Probe probe = spikeline::probe::read_probeinterface(rec / "probe.json");
    fs::remove(rec / "probe.json");
    std::string geometry = "~snsGeomMap=(spikeline,1,250,70)";
    for (const auto& contact : probe.contacts)
        geometry += "(0:" + std::to_string(contact.x_um) + ":" + std::to_string(contact.y_um) + ":1)";
    std::ofstream(rec / "recording.meta", std::ios::app) << geometry << "\n";
    const fs::path from_meta = dir_ / "from_meta";
    const RunResult m = run({"detect", (rec / "recording.bin").string(), "--out", from_meta.string()});
    ASSERT_EQ(m.status, 0) << m.err;
    EXPECT_NE(m.out.find("recording.meta (~snsGeomMap)"), std::string::npos) << m.out;
    for (const char* name : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy"})
        EXPECT_EQ(read_bytes(plain / name), read_bytes(from_meta / name)) << name;
}

TEST_F(CliTest, DetectAndSortReadOpenEphysBinaryRecordings) {
    // The simulated samples as an Open Ephys recording folder (gain 0.195 uV/bit, as the simulation's).
    const fs::path oe = dir_ / "Record Node 101" / "experiment1" / "recording1";
    spikeline::testing::write_open_ephys_recording(oe, sim_dir_ / "recording.bin", kChannels, kSampleRate);

    const fs::path from_spikeglx = dir_ / "spikeglx", from_oe = dir_ / "oe";
    ASSERT_EQ(run({"detect", (sim_dir_ / "recording.bin").string(), "--out", from_spikeglx.string(), "-q"}).status, 0);
    const RunResult r = run({"detect", oe.string(), "--out", from_oe.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    for (const char* name : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy"})
        EXPECT_EQ(read_bytes(from_spikeglx / name), read_bytes(from_oe / name)) << name;

    const fs::path phy = dir_ / "phy";
    ASSERT_EQ(
        run({"sort", (oe / "structure.oebin").string(), "--oe-stream", "Rhythm Data", "--out", phy.string(), "-q"})
            .status,
        0);
    const std::string params = read_text(phy / "params.py");
    EXPECT_NE(params.find("continuous.dat"), std::string::npos) << params;
    EXPECT_NE(params.find("n_channels_dat = 64"), std::string::npos) << params;

    expect_detect_fails({"detect", oe.string(), "--oe-stream", "LFP", "--out", (dir_ / "none").string(), "-q"},
                        dir_ / "none", {"LFP", "Rhythm Data"});
}

/// The simulated recording as an Open Ephys Neuropixels-style stream: its channels, then a CH_SYNC line carrying a
/// 1 Hz square wave (0 / 64), as the Neuropix-PXI and OneBox plugins record it.
fs::path write_open_ephys_with_sync(const fs::path& folder, const fs::path& samples_path, int channels) {
    const std::vector<char> bytes = read_bytes(samples_path);
    const std::size_t frames = bytes.size() / (2 * static_cast<std::size_t>(channels));
    std::vector<std::int16_t> samples(frames * static_cast<std::size_t>(channels + 1));
    for (std::size_t f = 0; f < frames; ++f) {
        std::memcpy(&samples[f * static_cast<std::size_t>(channels + 1)],
                    &bytes[f * 2 * static_cast<std::size_t>(channels)], 2 * static_cast<std::size_t>(channels));
        samples[f * static_cast<std::size_t>(channels + 1) + static_cast<std::size_t>(channels)] =
            static_cast<std::int16_t>((f / static_cast<std::size_t>(kSampleRate / 2)) % 2 == 1 ? 64 : 0);
    }
    const fs::path data = folder / "continuous" / "Neuropix-PXI-100.ProbeA";
    fs::create_directories(data);
    std::ofstream(data / "continuous.dat", std::ios::binary)
        .write(reinterpret_cast<const char*>(samples.data()), static_cast<std::streamsize>(samples.size() * 2));
    nlohmann::json list = nlohmann::json::array();
    for (int c = 0; c < channels; ++c)
        list.push_back({{"channel_name", "CH" + std::to_string(c)},
                        {"description", "Neuropixels electrode"},
                        {"bit_volts", 0.195},
                        {"units", ""}});
    list.push_back({{"channel_name", "CH_SYNC"},
                    {"description", "Neuropixels sync line (continuously sampled)"},
                    {"bit_volts", 1.0},
                    {"units", ""}});
    const nlohmann::json oebin = {{"continuous",
                                   {{{"folder_name", "Neuropix-PXI-100.ProbeA/"},
                                     {"stream_name", "ProbeA"},
                                     {"source_processor_name", "Neuropix-PXI"},
                                     {"sample_rate", kSampleRate},
                                     {"num_channels", channels + 1},
                                     {"channels", list}}}}};
    std::ofstream(folder / "structure.oebin") << oebin.dump(1);
    return folder;
}

TEST_F(CliTest, OpenEphysSyncSquareWaveGivesNoEventsAndInfoShowsItSkipped) {
    const fs::path oe = write_open_ephys_with_sync(dir_ / "Record Node 101" / "experiment1" / "recording1",
                                                   sim_dir_ / "recording.bin", kChannels);
    // The same events as the recording without the sync line: none on it, none changed by it.
    const fs::path plain = dir_ / "plain", with_sync = dir_ / "with_sync";
    ASSERT_EQ(run({"detect", (sim_dir_ / "recording.bin").string(), "--out", plain.string(), "-q"}).status, 0);
    const RunResult detect = run({"detect", oe.string(), "--out", with_sync.string()});
    ASSERT_EQ(detect.status, 0) << detect.err;
    EXPECT_NE(detect.out.find("sync line CH_SYNC"), std::string::npos) << detect.out;
    for (const char* name : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy"})
        EXPECT_EQ(read_bytes(plain / name), read_bytes(with_sync / name)) << name;
    const auto channels = read_npy_vector<std::int32_t>(with_sync / "spike_channels.npy");
    EXPECT_FALSE(channels.empty());
    EXPECT_EQ(std::count(channels.begin(), channels.end(), kChannels), 0);
    // The probe of the electrodes alone fits the recording (the sync line is no channel of it).
    const RunResult with_probe = run({"detect", oe.string(), "--probe", (sim_dir_ / "probe.json").string(), "--out",
                                      (dir_ / "with_probe").string(), "-q"});
    EXPECT_EQ(with_probe.status, 0) << with_probe.err;

    const fs::path json = dir_ / "info.json", svg = dir_ / "probe.svg";
    const RunResult info = run({"info", oe.string(), "--json", json.string(), "--svg", svg.string()});
    ASSERT_EQ(info.status, 0) << info.err;
    EXPECT_NE(info.out.find("file channel 64: sync line CH_SYNC"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("64 neural of 65 in the file"), std::string::npos) << info.out;
    // No settings.xml: the run would use the built-in layout, which info flags, also on stderr.
    EXPECT_NE(info.out.find("FALLBACK"), std::string::npos) << info.out;
    EXPECT_NE(info.err.find("warning"), std::string::npos) << info.err;
    const auto described = nlohmann::json::parse(read_text(json));
    EXPECT_EQ(described.at("format"), "open-ephys");
    EXPECT_EQ(described.at("neural_channels"), kChannels);
    EXPECT_EQ(described.at("file_channels"), kChannels + 1);
    ASSERT_EQ(described.at("skipped_channels").size(), 1u);
    EXPECT_EQ(described.at("skipped_channels")[0].at("file_channel"), kChannels);
    EXPECT_DOUBLE_EQ(described.at("microvolts_per_bit").get<double>(), 0.195);
    EXPECT_DOUBLE_EQ(described.at("duration_s").get<double>(), kDurationS);
    EXPECT_TRUE(described.at("geometry_fallback").get<bool>());
    ASSERT_EQ(described.at("channels").size(), static_cast<std::size_t>(kChannels));
    const std::string picture = read_text(svg);
    EXPECT_EQ(picture.rfind("<svg", 0), 0u);
    EXPECT_NE(picture.find("64 (sync line CH_SYNC)"), std::string::npos);
}

TEST_F(CliTest, InfoDescribesSpikeGlxAndRawRecordingsWithTheirGeometrySource) {
    // SpikeGLX with probe.json beside it: positions are the probe file's.
    const fs::path json = dir_ / "info.json";
    const fs::path svg = dir_ / "probe.svg";
    const RunResult sglx = run({"info", (sim_dir_ / "recording.bin").string(), "--json", json.string(),
                                "--exclude-channels", "3,5", "--svg", svg.string()});
    ASSERT_EQ(sglx.status, 0) << sglx.err;
    EXPECT_NE(sglx.out.find("spikeglx"), std::string::npos) << sglx.out;
    EXPECT_NE(sglx.out.find("probe.json"), std::string::npos) << sglx.out;
    const auto described = nlohmann::json::parse(read_text(json));
    const spikeline::probe::Probe probe = spikeline::probe::read_probeinterface(sim_dir_ / "probe.json");
    ASSERT_EQ(described.at("channels").size(), static_cast<std::size_t>(probe.n_channels()));
    for (int c = 0; c < probe.n_channels(); ++c) {
        const auto& channel = described.at("channels")[static_cast<std::size_t>(c)];
        EXPECT_DOUBLE_EQ(channel.at("x_um").get<double>(), probe.contacts[static_cast<std::size_t>(c)].x_um);
        EXPECT_DOUBLE_EQ(channel.at("y_um").get<double>(), probe.contacts[static_cast<std::size_t>(c)].y_um);
        EXPECT_EQ(channel.at("excluded").get<bool>(), c == 3 || c == 5);
    }
    EXPECT_FALSE(described.at("geometry_fallback").get<bool>());
    EXPECT_GT(described.at("microvolts_per_bit").get<double>(), 0.0);
    // The picture: one square per contact, the two excluded ones hollow and crossed in red.
    const std::string picture = read_text(svg);
    std::size_t squares = 0, hollow = 0;
    for (std::size_t at = picture.find("<rect x="); at != std::string::npos; at = picture.find("<rect x=", at + 1)) {
        ++squares;
        hollow += picture.compare(picture.find("fill=", at), 11, "fill=\"none\"") == 0 ? 1 : 0;
    }
    EXPECT_EQ(squares, static_cast<std::size_t>(probe.n_channels()));
    EXPECT_EQ(hollow, 2u);

    // Raw int16 with --channels and --sample-rate: no gain, the built-in layout; both flagged.
    fs::copy_file(sim_dir_ / "recording.bin", dir_ / "raw.dat");
    const RunResult raw = run(
        {"info", (dir_ / "raw.dat").string(), "--channels", "64", "--sample-rate", "30000", "--json", json.string()});
    ASSERT_EQ(raw.status, 0) << raw.err;
    EXPECT_NE(raw.out.find("built-in default"), std::string::npos) << raw.out;
    const auto raw_described = nlohmann::json::parse(read_text(json));
    EXPECT_EQ(raw_described.at("format"), "raw");
    EXPECT_TRUE(raw_described.at("gain_fallback").get<bool>());
    EXPECT_TRUE(raw_described.at("geometry_fallback").get<bool>());

    // A channel past the recording's is refused.
    const RunResult bad = run({"info", (sim_dir_ / "recording.bin").string(), "--exclude-channels", "64"});
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("--exclude-channels"), std::string::npos) << bad.err;
}

/// The int16 samples of a file.
std::vector<std::int16_t> read_samples(const fs::path& path) {
    const std::vector<char> bytes = read_bytes(path);
    std::vector<std::int16_t> samples(bytes.size() / 2);
    std::memcpy(samples.data(), bytes.data(), samples.size() * 2);
    return samples;
}

TEST_F(CliTest, DetectOnCbinEqualsDetectOnBin) {
    // The simulated recording compressed as mtscomp does by default (1 s chunks, "F" order, time differences), with its
    // .meta and probe.json beside it and no .bin.
    const fs::path rec = dir_ / "compressed";
    fs::create_directories(rec);
    fs::copy_file(sim_dir_ / "recording.meta", rec / "recording.meta");
    fs::copy_file(sim_dir_ / "probe.json", rec / "probe.json");
    spikeline::testing::CbinLayout layout;
    layout.chunk_frames = static_cast<std::size_t>(kSampleRate);
    spikeline::testing::write_cbin(rec, "recording", read_samples(sim_dir_ / "recording.bin"), kChannels, kSampleRate,
                                   layout);
    ASSERT_LT(fs::file_size(rec / "recording.cbin"), fs::file_size(sim_dir_ / "recording.bin"));

    for (const fs::path& input : {rec / "recording.cbin", rec}) {
        const fs::path out = dir_ / ("out_" + std::to_string(fs::is_directory(input)));
        const RunResult r = run({"detect", input.string(), "--out", out.string(), "--threads", "2"});
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_NE(r.out.find("spikeglx (mtscomp .cbin)"), std::string::npos) << r.out;
        for (const char* name : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy"})
            EXPECT_EQ(read_bytes(detect_dir_ / name), read_bytes(out / name)) << name << " from " << input;
    }

    // A damaged chunk stops the run with exit status 2, naming the chunk, and leaves no outputs.
    const auto header = nlohmann::json::parse(read_text(rec / "recording.ch"));
    const auto offset = header["chunk_offsets"][2].get<std::streamoff>() + 100;
    {
        std::fstream cbin(rec / "recording.cbin", std::ios::in | std::ios::out | std::ios::binary);
        cbin.seekg(offset);
        const char byte = static_cast<char>(cbin.get() ^ 0x55);
        cbin.seekp(offset);
        cbin.put(byte);
    }
    expect_detect_fails({"detect", (rec / "recording.cbin").string(), "--out", (dir_ / "none").string(), "-q"},
                        dir_ / "none", {"recording.cbin: chunk 2 of 3 is corrupt"});

    fs::remove(rec / "recording.ch");
    expect_detect_fails({"detect", (rec / "recording.cbin").string(), "--out", (dir_ / "none").string(), "-q"},
                        dir_ / "none", {"recording.cbin", "no recording.ch beside it"});
}

TEST_F(CliTest, RecordingOfMoreThan1024ChannelsIsDetectedBySelection) {
    // 1536 channels (as a quad-base Neuropixels 2.0 recording): 12 shanks of 128 with the built-in probe.
    const fs::path big = dir_ / "big";
    ASSERT_EQ(
        run({"simulate", "--out", big.string(), "--channels", "1536", "--duration", "0.4", "--seed", "5", "-q"}).status,
        0);
    expect_detect_fails({"detect", big.string(), "--out", (dir_ / "all").string(), "-q"}, dir_ / "all",
                        {"1536 channels", "at most 1024",
                         "--shanks 0,1,2,3,4,5,6,7 (1024 channels), then --shanks 8,9,10,11 (512 channels)"});
    expect_detect_fails({"detect", big.string(), "--channels-subset", "0:1099", "--out", (dir_ / "all").string()},
                        dir_ / "all", {"the selection has 1100 channels"});
    expect_detect_fails({"detect", big.string(), "--shanks", "12", "--out", (dir_ / "all").string()}, dir_ / "all",
                        {"--shanks names shank 12"});

    const fs::path by_shanks = dir_ / "shanks", by_channels = dir_ / "channels";
    ASSERT_EQ(run({"detect", big.string(), "--shanks", "8,9,10,11", "--uv-per-bit", "0.195", "--out",
                   by_shanks.string(), "-q"})
                  .status,
              0);
    ASSERT_EQ(run({"detect", big.string(), "--channels-subset", "1024:1535", "--uv-per-bit", "0.195", "--out",
                   by_channels.string(), "-q"})
                  .status,
              0);
    for (const char* name : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy"})
        EXPECT_EQ(read_bytes(by_shanks / name), read_bytes(by_channels / name)) << name;
    const auto info = nlohmann::json::parse(read_text(by_shanks / "detect_info.json"));
    ASSERT_EQ(info.at("channel_ids").size(), 512u);
    EXPECT_EQ(info.at("channel_ids").front(), 1024);
    EXPECT_EQ(info.at("channel_ids").back(), 1535);

    // The same channels cut out into a file of their own, with their contacts as its probe: the same events, whose
    // channels are the selection's global ids less 1024.
    const std::vector<std::int16_t> all = read_samples(big / "recording.bin");
    std::vector<std::int16_t> part;
    for (std::size_t f = 0; f < all.size() / 1536; ++f)
        part.insert(part.end(), all.begin() + static_cast<std::ptrdiff_t>(f * 1536 + 1024),
                    all.begin() + static_cast<std::ptrdiff_t>((f + 1) * 1536));
    std::ofstream(dir_ / "part.dat", std::ios::binary)
        .write(reinterpret_cast<const char*>(part.data()), static_cast<std::streamsize>(part.size() * 2));
    std::vector<int> upper(512);
    std::iota(upper.begin(), upper.end(), 1024);
    spikeline::probe::write_probeinterface(
        spikeline::io::probe_subset(spikeline::probe::read_probeinterface(big / "probe.json"), upper),
        dir_ / "part_probe.json");
    const fs::path cut = dir_ / "cut";
    ASSERT_EQ(run({"detect", (dir_ / "part.dat").string(), "--channels", "512", "--sample-rate", "30000", "--probe",
                   (dir_ / "part_probe.json").string(), "--uv-per-bit", "0.195", "--out", cut.string(), "-q"})
                  .status,
              0);
    EXPECT_EQ(read_bytes(by_shanks / "spike_times.npy"), read_bytes(cut / "spike_times.npy"));
    EXPECT_EQ(read_bytes(by_shanks / "spike_amplitudes.npy"), read_bytes(cut / "spike_amplitudes.npy"));
    const auto global = read_npy_vector<std::int32_t>(by_shanks / "spike_channels.npy");
    const auto local = read_npy_vector<std::int32_t>(cut / "spike_channels.npy");
    ASSERT_FALSE(global.empty());
    ASSERT_EQ(global.size(), local.size());
    for (std::size_t i = 0; i < global.size(); ++i)
        EXPECT_EQ(global[i], local[i] + 1024) << "spike " << i;
}

TEST_F(CliTest, SortOnAChannelSubsetWritesGlobalChannelIds) {
    // --exclude-channels names global ids: channel 40 is the 9th of the selection 32:63.
    const fs::path phy = dir_ / "phy";
    const RunResult r = run({"sort", (sim_dir_ / "recording.bin").string(), "--channels-subset", "32:63",
                             "--exclude-channels", "40", "--out", phy.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("32 channels"), std::string::npos) << r.out;
    const auto channel_map = read_npy_vector<std::int32_t>(phy / "channel_map.npy");
    std::vector<std::int32_t> expected(32);
    std::iota(expected.begin(), expected.end(), 32);
    EXPECT_EQ(channel_map, expected);
    EXPECT_NE(read_text(phy / "params.py").find("n_channels_dat = 64"), std::string::npos);
    const auto info = nlohmann::json::parse(read_text(phy / "spikeline_sort.json"));
    EXPECT_EQ(info.at("detect_settings").at("excluded_channels"), nlohmann::json::array({8})) << info.dump();
    EXPECT_EQ(info.at("channel_ids").front(), 32);
}

// ---------------------------------------------------------------------------------------------------------------
// bad input: exit status 2, a message naming the problem, no outputs left behind

TEST_F(CliTest, TruncatedBinIsRejected) {
    const fs::path rec = dir_ / "rec";
    fs::create_directories(rec);
    fs::copy_file(sim_dir_ / "recording.meta", rec / "recording.meta");
    fs::copy_file(sim_dir_ / "recording.bin", rec / "recording.bin");
    fs::resize_file(rec / "recording.bin", fs::file_size(rec / "recording.bin") - 5);
    const fs::path out = dir_ / "out";
    expect_detect_fails({"detect", (rec / "recording.bin").string(), "--out", out.string(), "-q"}, out,
                        {"truncated", "fileSizeBytes"});
}

TEST_F(CliTest, TruncatedBinIsProcessedWithAllowTruncated) {
    const fs::path rec = dir_ / "rec";
    fs::create_directories(rec);
    fs::copy_file(sim_dir_ / "recording.meta", rec / "recording.meta");
    fs::copy_file(sim_dir_ / "recording.bin", rec / "recording.bin");
    // Cut in the middle of a frame, as a crash would: the partial frame is dropped.
    const std::uintmax_t frame_bytes = 2u * kChannels;
    const std::uintmax_t whole_frames = fs::file_size(rec / "recording.bin") / frame_bytes / 2;
    fs::resize_file(rec / "recording.bin", whole_frames * frame_bytes + 7);
    const fs::path refused = dir_ / "refused";
    expect_detect_fails({"detect", (rec / "recording.bin").string(), "--out", refused.string(), "-q"}, refused,
                        {"truncated", "--allow-truncated"});

    for (const std::string command : {"detect", "sort"}) {
        SCOPED_TRACE(command);
        const fs::path out = dir_ / command;
        const RunResult r =
            run({command, (rec / "recording.bin").string(), "--out", out.string(), "--allow-truncated", "-q"});
        ASSERT_EQ(r.status, 0) << r.err;
        const std::string declared = std::to_string(static_cast<std::uintmax_t>(kDurationS * kSampleRate));
        for (const std::string& expected :
             {std::string("warning"), std::to_string(whole_frames) + " whole frames", declared + " frames"})
            EXPECT_NE(r.err.find(expected), std::string::npos) << expected << " in " << r.err;
        const auto info =
            nlohmann::json::parse(read_text(out / (command == "detect" ? "detect_info.json" : "spikeline_sort.json")));
        EXPECT_EQ(info["n_frames"].get<std::uintmax_t>(), whole_frames);
    }
}

TEST_F(CliTest, NonFiniteOrNonPositiveGainInTheMetaIsRejected) {
    const fs::path rec = dir_ / "rec";
    fs::create_directories(rec);
    fs::copy_file(sim_dir_ / "recording.bin", rec / "recording.bin");
    const auto meta = read_meta(sim_dir_ / "recording.meta");
    ASSERT_TRUE(meta.count("imAiRangeMax"));
    // (imAiRangeMax=0 is how spikeline's own writer says the gain is unknown: amplitudes are then in LSB.)
    for (const std::string value : {"inf", "nan", "-inf", "-0.6"}) {
        SCOPED_TRACE(value);
        copy_meta_without(sim_dir_ / "recording.meta", rec / "recording.meta", "imAiRangeMax");
        std::ofstream(rec / "recording.meta", std::ios::app) << "imAiRangeMax=" << value << "\n";
        const fs::path out = dir_ / "out";
        expect_detect_fails({"detect", (rec / "recording.bin").string(), "--out", out.string(), "-q"}, out,
                            {"imAiRangeMax=" + value, "not a finite positive number", "--uv-per-bit"});
    }
    // The gain given on the command line replaces the .meta's.
    const fs::path out = dir_ / "given";
    const RunResult r =
        run({"detect", (rec / "recording.bin").string(), "--out", out.string(), "--uv-per-bit", "0.5", "-q"});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto info = nlohmann::json::parse(read_text(out / "detect_info.json"));
    EXPECT_EQ(info["microvolts_per_bit"].get<double>(), 0.5);
    for (const float amplitude : read_npy_vector<float>(out / "spike_amplitudes.npy"))
        ASSERT_TRUE(std::isfinite(amplitude));
}

TEST_F(CliTest, ProbeWithContactsAtOnePlaceIsRejected) {
    auto probe = nlohmann::json::parse(read_text(sim_dir_ / "probe.json"));
    auto& positions = probe["probes"][0]["contact_positions"];
    positions[9] = positions[3];
    const fs::path file = dir_ / "shared.json";
    write_text(file, probe.dump());
    const fs::path out = dir_ / "out";
    expect_detect_fails(
        {"detect", (sim_dir_ / "recording.bin").string(), "--probe", file.string(), "--out", out.string(), "-q"}, out,
        {"shared.json", "channels 3, 9"});
}

TEST_F(CliTest, OutputIntoTheInputsFolderIsRefusedAndTheInputKept) {
    const std::vector<char> recording = read_bytes(sim_dir_ / "recording.bin");
    const std::string meta = read_text(sim_dir_ / "recording.meta");
    const std::string input = (sim_dir_ / "recording.bin").string();
    const std::vector<std::vector<std::string>> runs = {
        {"stream", "--source", input, "--out", sim_dir_.string(), "--duration", "1", "--calibration-s", "0", "-q"},
        {"stream", "--source", input, "--out", (sim_dir_ / ".").string(), "--calibration-s", "0", "--overwrite", "-q"},
        {"detect", input, "--out", sim_dir_.string(), "-q"},
        {"detect", sim_dir_.string(), "--out", sim_dir_.string(), "--overwrite", "-q"},
        {"sort", input, "--out", sim_dir_.string(), "-q"},
        {"simulate", "--out", sim_dir_.string(), "--probe", (sim_dir_ / "probe.json").string(), "--channels", "64",
         "--duration", "0.2", "-q"},
    };
    for (const auto& args : runs) {
        const RunResult r = run(args);
        EXPECT_EQ(r.status, 2) << describe(args) << "\nstderr: " << r.err;
        EXPECT_NE(r.err.find("is the folder of the input"), std::string::npos) << describe(args) << ": " << r.err;
        EXPECT_NE(r.err.find("choose another --out"), std::string::npos) << r.err;
    }
    // An output file that is an input file is refused as well.
    const RunResult replay = run({"replay", input, "--to", "udp://127.0.0.1:9", "--json", input, "-q"});
    EXPECT_EQ(replay.status, 2) << replay.err;
    EXPECT_NE(replay.err.find("is the input"), std::string::npos) << replay.err;
    const RunResult compare = run({"compare", "--ground-truth", (sim_dir_ / "ground_truth").string(), "--sorted",
                                   detect_dir_.string(), "--json", (detect_dir_ / "spike_times.npy").string()});
    EXPECT_EQ(compare.status, 2) << compare.err;
    EXPECT_NE(compare.err.find("is the input"), std::string::npos) << compare.err;
    // A folder holding the input further down is refused too.
    const RunResult above = run({"detect", input, "--out", root_.string(), "-q"});
    EXPECT_EQ(above.status, 2) << above.err;
    EXPECT_NE(above.err.find("holds the input"), std::string::npos) << above.err;
    EXPECT_FALSE(fs::exists(root_ / "detect_info.json"));

    EXPECT_TRUE(read_bytes(sim_dir_ / "recording.bin") == recording) << "the recording was changed";
    EXPECT_EQ(read_text(sim_dir_ / "recording.meta"), meta);
    EXPECT_FALSE(fs::exists(sim_dir_ / "stream.json"));
    EXPECT_FALSE(fs::exists(sim_dir_ / "spike_times.npy"));
    EXPECT_TRUE(temporary_files(sim_dir_).empty());
    // A new folder inside the recording's folder is fine (the usual layout, e.g. D/detected).
    const fs::path inside = dir_ / "rec";
    fs::create_directories(inside);
    fs::copy_file(sim_dir_ / "recording.bin", inside / "recording.bin");
    fs::copy_file(sim_dir_ / "recording.meta", inside / "recording.meta");
    const RunResult r =
        run({"detect", (inside / "recording.bin").string(), "--out", (inside / "detected").string(), "-q"});
    EXPECT_EQ(r.status, 0) << r.err;
}

TEST_F(CliTest, OutputIntoAnotherCommandsResultsNeedsOverwrite) {
    ASSERT_EQ(detect_result_.status, 0) << detect_result_.err;
    const std::string input = (sim_dir_ / "recording.bin").string();
    const fs::path detected = dir_ / "detected";
    fs::copy(detect_dir_, detected);
    const std::vector<char> detected_times = read_bytes(detected / "spike_times.npy");
    const fs::path sorted = dir_ / "sorted";
    ASSERT_EQ(run({"sort", input, "--out", sorted.string(), "-q"}).status, 0);
    const std::vector<char> sorted_times = read_bytes(sorted / "spike_times.npy");
    const fs::path streamed = dir_ / "streamed";
    ASSERT_EQ(run({"stream", "--source", input, "--out", streamed.string(), "--duration", "0.5", "--calibration-s", "0",
                   "-q"})
                  .status,
              0);
    const std::string stream_json = read_text(streamed / "stream.json");
    // What a killed stream leaves: the samples received so far under the writer's temporary name.
    const fs::path killed = dir_ / "killed";
    fs::create_directories(killed);
    write_text(killed / "recording.bin.tmp4242", std::string(64 * 2 * 10, '\1'));

    struct Case {
        std::vector<std::string> args;
        std::string marker;
    };
    const std::vector<Case> cases = {
        {{"sort", input, "--out", detected.string(), "-q"}, "detect_info.json"},
        {{"detect", input, "--out", sorted.string(), "-q"}, "spikeline_sort.json"},
        {{"simulate", "--out", detected.string(), "--channels", "8", "--duration", "0.2", "-q"}, "detect_info.json"},
        {{"detect", input, "--out", (sim_dir_ / "ground_truth").string(), "-q"}, "spike_units.npy"},
        {{"detect", input, "--out", streamed.string(), "-q"}, "stream.json"},
        {{"sort", input, "--out", streamed.string(), "-q"}, "stream.json"},
        {{"simulate", "--out", streamed.string(), "--channels", "8", "--duration", "0.2", "-q"}, "stream.json"},
        {{"stream", "--source", input, "--out", sorted.string(), "--duration", "0.5", "-q"}, "spikeline_sort.json"},
        // An earlier live stream cannot be repeated: even the same command needs --overwrite.
        {{"stream", "--source", input, "--out", streamed.string(), "--duration", "0.5", "-q"}, "stream.json"},
        {{"stream", "--source", input, "--out", killed.string(), "--duration", "0.5", "-q"}, "recording.bin.tmp4242"},
        {{"detect", input, "--out", killed.string(), "-q"}, "interrupted run"},
    };
    for (const Case& c : cases) {
        const RunResult r = run(c.args);
        EXPECT_EQ(r.status, 2) << describe(c.args) << "\nstderr: " << r.err;
        for (const std::string& expected : {c.marker, std::string("--overwrite"), std::string("choose another --out")})
            EXPECT_NE(r.err.find(expected), std::string::npos) << describe(c.args) << ": " << r.err;
    }
    EXPECT_TRUE(read_bytes(detected / "spike_times.npy") == detected_times);
    EXPECT_TRUE(read_bytes(sorted / "spike_times.npy") == sorted_times);
    EXPECT_FALSE(fs::exists(sorted / "detect_info.json"));
    EXPECT_EQ(read_text(streamed / "stream.json"), stream_json);
    EXPECT_FALSE(fs::exists(sim_dir_ / "ground_truth" / "detect_info.json"));
    EXPECT_EQ(fs::file_size(killed / "recording.bin.tmp4242"), 64u * 2 * 10);

    // Re-running a command into its own output is allowed; --overwrite lets another command write.
    EXPECT_EQ(run({"detect", input, "--out", detected.string(), "-q"}).status, 0);
    EXPECT_TRUE(read_bytes(detected / "spike_times.npy") == detected_times);
    EXPECT_EQ(run({"sort", input, "--out", sorted.string(), "-q"}).status, 0);
    const RunResult forced = run({"sort", input, "--out", detected.string(), "--overwrite", "-q"});
    EXPECT_EQ(forced.status, 0) << forced.err;
    EXPECT_TRUE(read_bytes(detected / "spike_times.npy") == sorted_times);
    const RunResult restream = run({"stream", "--source", input, "--out", streamed.string(), "--duration", "0.5",
                                    "--calibration-s", "0", "--overwrite", "-q"});
    EXPECT_EQ(restream.status, 0) << restream.err;
}

TEST_F(CliTest, MetaMissingKeysIsRejected) {
    for (const std::string key : {"nSavedChans", "imSampRate"}) {
        SCOPED_TRACE(key);
        const fs::path rec = dir_ / ("no_" + key);
        fs::create_directories(rec);
        fs::create_symlink(sim_dir_ / "recording.bin", rec / "recording.bin");
        copy_meta_without(sim_dir_ / "recording.meta", rec / "recording.meta", key);
        const fs::path out = dir_ / ("out_" + key);
        expect_detect_fails({"detect", (rec / "recording.bin").string(), "--out", out.string(), "-q"}, out,
                            {"missing key " + key});
    }
}

TEST_F(CliTest, MetaWithoutFileSizeIsReadByTheBinsSizeWithAWarning) {
    fs::create_directories(dir_ / "rec");
    fs::create_symlink(sim_dir_ / "recording.bin", dir_ / "rec" / "recording.bin");
    fs::copy_file(sim_dir_ / "probe.json", dir_ / "rec" / "probe.json");
    copy_meta_without(sim_dir_ / "recording.meta", dir_ / "rec" / "recording.meta", "fileSizeBytes");
    const RunResult r =
        run({"detect", (dir_ / "rec" / "recording.bin").string(), "--out", (dir_ / "O").string(), "-q"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("no fileSizeBytes"), std::string::npos) << r.err;
    EXPECT_EQ(read_bytes(dir_ / "O" / "spike_times.npy"), read_bytes(detect_dir_ / "spike_times.npy"));
}

TEST_F(CliTest, GeometryAndGainFallbacksAreLoudEvenWithQuietAndFlaggedInOutputs) {
    // The suite's recording has its probe.json and a stated gain: nothing fell back.
    const auto stated = nlohmann::json::parse(read_text(detect_dir_ / "detect_info.json"));
    EXPECT_EQ(stated.at("geometry_fallback"), false);
    EXPECT_EQ(stated.at("gain_fallback"), false);
    EXPECT_NE(stated.at("gain_source").get<std::string>().find("imChan0apGain"), std::string::npos) << stated;

    // No probe.json, no geometry in the .meta, and the gain unknown (imAiRangeMax=0).
    const fs::path rec = dir_ / "rec";
    fs::create_directories(rec);
    fs::create_symlink(sim_dir_ / "recording.bin", rec / "recording.bin");
    copy_meta_without(sim_dir_ / "recording.meta", dir_ / "no_geometry.meta", "~snsGeomMap");
    copy_meta_without(dir_ / "no_geometry.meta", rec / "recording.meta", "imAiRangeMax");
    std::ofstream(rec / "recording.meta", std::ios::app) << "imAiRangeMax=0\n";
    for (const std::string command : {"detect", "sort"}) {
        SCOPED_TRACE(command);
        const fs::path out = dir_ / command;
        const RunResult r = run({command, (rec / "recording.bin").string(), "--out", out.string(), "-q"});
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_TRUE(r.out.empty()) << r.out;
        EXPECT_NE(r.err.find("warning: " + (rec / "recording.bin").string() + " states no probe geometry"),
                  std::string::npos)
            << r.err;
        EXPECT_NE(r.err.find("warning: microvolts per bit: unknown"), std::string::npos) << r.err;
        const auto meta =
            nlohmann::json::parse(read_text(out / (command == "detect" ? "detect_info.json" : "spikeline_sort.json")));
        EXPECT_EQ(meta.at("geometry_fallback"), true);
        EXPECT_EQ(meta.at("gain_fallback"), true);
        EXPECT_NE(meta.at("gain_source").get<std::string>().find("unknown"), std::string::npos) << meta;
    }
}

TEST_F(CliTest, RawFileSizeNotWholeFramesIsRejected) {
    const fs::path raw = dir_ / "raw.dat";
    std::vector<char> bytes(1000, 0);
    std::ofstream(raw, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    const fs::path out = dir_ / "out";
    expect_detect_fails(
        {"detect", raw.string(), "--channels", "7", "--sample-rate", "30000", "--out", out.string(), "-q"}, out,
        {"not a whole number of frames", "--channels"});
}

TEST_F(CliTest, RawFileWithoutChannelsIsRejected) {
    const fs::path raw = dir_ / "raw.dat";
    std::vector<char> bytes(1024, 0);
    std::ofstream(raw, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    const fs::path out = dir_ / "out";
    expect_detect_fails({"detect", raw.string(), "--sample-rate", "30000", "--out", out.string(), "-q"}, out,
                        {"--channels"});
}

TEST_F(CliTest, ProbeThatIsNotJsonIsRejected) {
    const fs::path bad = dir_ / "bad.json";
    write_text(bad, "this is not json {\n");
    const fs::path out = dir_ / "out";
    expect_detect_fails(
        {"detect", (sim_dir_ / "recording.bin").string(), "--probe", bad.string(), "--out", out.string(), "-q"}, out,
        {"bad.json", "not valid JSON"});
}

TEST_F(CliTest, ProbeWithOtherChannelCountIsRejected) {
    const fs::path d2 = dir_ / "D2";
    const RunResult sim = run({"simulate", "--channels", "32", "--duration", "0.5", "--out", d2.string(), "-q"});
    ASSERT_EQ(sim.status, 0) << sim.err;
    const fs::path out = dir_ / "out";
    expect_detect_fails({"detect", (sim_dir_ / "recording.bin").string(), "--probe", (d2 / "probe.json").string(),
                         "--out", out.string(), "-q"},
                        out, {"32 channels", "64"});
}

TEST_F(CliTest, SortWritesAPhyFolderThatCompareScoresAsSorting) {
    const fs::path out = dir_ / "phy";
    const RunResult r = run({"sort", (sim_dir_ / "recording.bin").string(), "--out", out.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("units"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("calibration "), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("loaded from"), std::string::npos) << r.out;
    for (const char* name :
         {"spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "amplitudes.npy", "templates.npy",
          "template_ind.npy", "templates_ind.npy", "channel_map.npy", "channel_positions.npy", "pc_features.npy",
          "pc_feature_ind.npy", "cluster_group.tsv", "cluster_info.tsv", "params.py", "spikeline_sort.json"})
        EXPECT_TRUE(fs::is_regular_file(out / name)) << name;
    EXPECT_TRUE(temporary_files(out).empty());
    EXPECT_NE(read_text(out / "params.py").find("n_channels_dat = 64"), std::string::npos);

    const fs::path score_file = dir_ / "sorting.json";
    const RunResult c = run({"compare", "--ground-truth", (sim_dir_ / "ground_truth").string(), "--sorted",
                             out.string(), "--json", score_file.string()});
    ASSERT_EQ(c.status, 0) << c.err;
    EXPECT_NE(c.out.find("well detected"), std::string::npos) << c.out;
    const auto score = nlohmann::json::parse(read_text(score_file));
    EXPECT_EQ(score["kind"], "sorting");
    EXPECT_GT(score["n_sorted_units"].get<int>(), 0);
    const auto& all = score["bins"].back();
    EXPECT_EQ(all["snr"], "all");
    EXPECT_GT(all["mean_accuracy"].get<double>(), 0.3) << c.out;
}

TEST_F(CliTest, CompareRefusesSpikesOfARecordingWithAnotherChannelCount) {
    const fs::path other = dir_ / "other";
    ASSERT_EQ(run({"simulate", "--out", other.string(), "--channels", "32", "--duration", "0.5", "-q"}).status, 0);
    const fs::path detected = dir_ / "detected";
    ASSERT_EQ(run({"detect", (other / "recording.bin").string(), "--out", detected.string(), "-q"}).status, 0);
    const RunResult r = run({"compare", "--ground-truth", (sim_dir_ / "ground_truth").string(), "--sorted",
                             detected.string(), "--probe", (sim_dir_ / "probe.json").string()});
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    for (const std::string expected : {"32 channels", "64 channels", "detect_info.json"})
        EXPECT_NE(r.err.find(expected), std::string::npos) << expected << " in " << r.err;
}

TEST_F(CliTest, SortWithTheSorterOfAnEarlierSortReproducesItsLabels) {
    const fs::path first = dir_ / "first";
    const RunResult a = run({"sort", (sim_dir_ / "recording.bin").string(), "--out", first.string(), "-q"});
    ASSERT_EQ(a.status, 0) << a.err;
    ASSERT_TRUE(fs::is_regular_file(first / "sorter.json"));
    EXPECT_EQ(nlohmann::json::parse(read_text(first / "sorter.json"))["format"], "spikeline sorter");

    const fs::path second = dir_ / "second";
    const RunResult b = run({"sort", (sim_dir_ / "recording.bin").string(), "--out", second.string(), "--sorter",
                             (first / "sorter.json").string()});
    ASSERT_EQ(b.status, 0) << b.err;
    EXPECT_NE(b.out.find("loaded from " + (first / "sorter.json").string()), std::string::npos) << b.out;
    EXPECT_EQ(b.out.find("calibration "), std::string::npos) << b.out;
    for (const char* name : {"spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "sorter.json"})
        EXPECT_EQ(read_bytes(first / name), read_bytes(second / name)) << name;
    EXPECT_TRUE(temporary_files(second).empty());
}

TEST_F(CliTest, SortWithAMissingOrMismatchingSorterSaysWhyAndWritesNothing) {
    const fs::path out = dir_ / "out";
    expect_detect_fails({"sort", (sim_dir_ / "recording.bin").string(), "--out", out.string(), "--sorter",
                         (dir_ / "missing.json").string(), "-q"},
                        out, {"cannot open sorter file", "missing.json"});
    EXPECT_FALSE(fs::exists(out));

    const fs::path first = dir_ / "first";
    const RunResult a = run({"sort", (sim_dir_ / "recording.bin").string(), "--out", first.string(), "-q"});
    ASSERT_EQ(a.status, 0) << a.err;
    const std::string sorter = (first / "sorter.json").string();
    expect_detect_fails({"sort", (sim_dir_ / "recording.bin").string(), "--out", out.string(), "--sorter", sorter,
                         "--threshold", "6", "-q"},
                        out, {"detection settings differ", "threshold_sigma", "re-run `spikeline sort`"});
    expect_detect_fails({"sort", (sim_dir_ / "recording.bin").string(), "--out", out.string(), "--sorter", sorter,
                         "--recalibrate-every", "1", "-q"},
                        out, {"--sorter", "--recalibrate-every"});
    EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, SortRejectsAProbeWithAnotherChannelCount) {
    const fs::path d2 = dir_ / "D2";
    const RunResult sim = run({"simulate", "--channels", "32", "--duration", "0.5", "--out", d2.string(), "-q"});
    ASSERT_EQ(sim.status, 0) << sim.err;
    const fs::path out = dir_ / "out";
    expect_detect_fails({"sort", (sim_dir_ / "recording.bin").string(), "--probe", (d2 / "probe.json").string(),
                         "--out", out.string(), "-q"},
                        out, {"32 channels", "64"});
}

TEST_F(CliTest, SortOfARecordingWithoutSpikesSaysSoAndWritesNothing) {
    const fs::path flat = dir_ / "flat.raw";
    write_text(flat, std::string(64 * 2 * 30000, '\0')); // 1 s of zeros on 64 channels
    const fs::path out = dir_ / "out";
    // With its probe: a raw file has no geometry, and the built-in default's warning would precede the error.
    expect_detect_fails({"sort", flat.string(), "--channels", "64", "--sample-rate", "30000", "--probe",
                         (sim_dir_ / "probe.json").string(), "--out", out.string(), "-q"},
                        out, {"no spikes in the calibration window", "--calibration-s"});
}

TEST_F(CliTest, NonexistentInputIsRejected) {
    const fs::path out = dir_ / "out";
    expect_detect_fails({"detect", (dir_ / "nowhere" / "recording.bin").string(), "--out", out.string(), "-q"}, out,
                        {"does not exist"});
}

TEST_F(CliTest, UnknownBackendIsRejected) {
    const fs::path out = dir_ / "out";
    expect_detect_fails(
        {"detect", (sim_dir_ / "recording.bin").string(), "--backend", "gpu9", "--out", out.string(), "-q"}, out,
        {"unknown backend 'gpu9'"});
}

TEST_F(CliTest, XrtBackendNeedsAValidXclbin) {
    const std::string input = (sim_dir_ / "recording.bin").string();
    const fs::path out = dir_ / "out";
    expect_detect_fails({"detect", input, "--backend", "xrt", "--out", out.string(), "-q"}, out, {"--xclbin"});
    expect_detect_fails(
        {"detect", input, "--backend", "xrt", "--xclbin", (dir_ / "nope.xclbin").string(), "--out", out.string()}, out,
        {"not found"});
    std::ofstream(dir_ / "fake.xclbin") << "not an fpga image";
    expect_detect_fails(
        {"detect", input, "--backend", "xrt", "--xclbin", (dir_ / "fake.xclbin").string(), "--out", out.string()}, out,
        {"not an xclbin"});
}

TEST_F(CliTest, DevicesExplainsWhenXrtIsNotSetUpAndListsOpenclDevices) {
    // CTest runs this without XILINX_XRT (unless the machine has XRT set up, when devices may be listed).
    if (std::getenv("XILINX_XRT"))
        GTEST_SKIP() << "XILINX_XRT is set on this machine";
    const RunResult r = run({"devices"});
    EXPECT_NE(r.err.find("XILINX_XRT"), std::string::npos) << r.err;
    // pocl (scripts/setup.sh installs it) offers the CPU as an OpenCL device.
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("OpenCL devices"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("platform 0: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("device 0: "), std::string::npos) << r.out;
}

TEST_F(CliTest, DetectSortAndStreamWithTheOpenclBackendWriteTheCpuBackendsFiles) {
    ASSERT_EQ(detect_result_.status, 0) << detect_result_.err;
    ::setenv("XDG_CACHE_HOME", (dir_ / "cache").c_str(), 1); // built kernels (and pocl's) stay in the test's folder
    const std::string input = (sim_dir_ / "recording.bin").string();
    const fs::path detected = dir_ / "detected";
    RunResult r = run({"detect", input, "--out", detected.string(), "--backend", "opencl", "-q"});
    ASSERT_EQ(r.status, 0) << r.err;
    for (const char* name : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy"})
        EXPECT_TRUE(read_bytes(detected / name) == read_bytes(detect_dir_ / name)) << name << " differs from cpu";
    EXPECT_NE(read_text(detected / "detect_info.json").find("\"opencl\""), std::string::npos);

    for (const std::string backend : {"cpu", "opencl"}) {
        r = run({"sort", input, "--out", (dir_ / ("sorted_" + backend)).string(), "--backend", backend,
                 "--calibration-s", "1.5", "-q"});
        ASSERT_EQ(r.status, 0) << backend << ": " << r.err;
        r = run({"stream", "--source", input, "--out", (dir_ / ("streamed_" + backend)).string(), "--backend", backend,
                 "--calibration-s", "0", "--no-motion", "-q"});
        ASSERT_EQ(r.status, 0) << backend << ": " << r.err;
    }
    int compared = 0;
    for (const auto& entry : fs::directory_iterator(dir_ / "sorted_cpu")) {
        const auto name = entry.path().filename();
        // spikeline_sort.json names the backend and holds timings; manifest.json holds its hash
        if (name == "spikeline_sort.json" || name == "manifest.json")
            continue;
        EXPECT_TRUE(read_bytes(entry.path()) == read_bytes(dir_ / "sorted_opencl" / name))
            << name << " differs between cpu and opencl";
        ++compared;
    }
    EXPECT_GT(compared, 10) << "the Phy folder, sorter.json and the motion files";
    EXPECT_GT(fs::file_size(dir_ / "sorted_cpu" / "spike_clusters.npy"), 600u) << "dozens of sorted spikes";
    EXPECT_TRUE(read_bytes(dir_ / "streamed_cpu" / "spike_times.npy") ==
                read_bytes(dir_ / "streamed_opencl" / "spike_times.npy"));
    EXPECT_NE(read_text(dir_ / "streamed_opencl" / "stream.json").find("\"opencl\""), std::string::npos);

    r = run({"detect", input, "--out", (dir_ / "none").string(), "--backend", "opencl", "--opencl-device", "5", "-q"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("--opencl-device 5 does not exist"), std::string::npos) << r.err;
}

// detect and sort with several recordings: each (its own channel count, rate and probe) equals its run alone, byte for
// byte, on cpu (one after another) and opencl (detect: the same launches); a bad one is named, skipped and fails the
// run.
TEST_F(CliTest, DetectAndSortOfSeveralRecordingsEqualEachAloneAndSkipABadOne) {
    ::setenv("XDG_CACHE_HOME", (dir_ / "cache").c_str(), 1);
    const std::vector<std::vector<std::string>> made = {{"48", "30000", "1.5", "7"}, {"37", "25000", "2", "8"}};
    std::vector<std::string> inputs;
    for (std::size_t i = 0; i < made.size(); ++i) {
        const fs::path folder = dir_ / ("probe" + std::to_string(i));
        const RunResult r = run({"simulate", "--out", folder.string(), "--channels", made[i][0], "--sample-rate",
                                 made[i][1], "--duration", made[i][2], "--seed", made[i][3], "-q"});
        ASSERT_EQ(r.status, 0) << r.err;
        inputs.push_back((folder / "recording.bin").string());
    }
    const fs::path bad = dir_ / "broken.bin"; // a raw file without .meta, and no --channels
    write_text(bad, "not a recording");
    inputs.insert(inputs.begin() + 1, bad.string());
    for (std::size_t i : {0, 2}) {
        const RunResult alone =
            run({"detect", inputs[i], "--out", (dir_ / ("alone" + std::to_string(i))).string(), "-q"});
        ASSERT_EQ(alone.status, 0) << alone.err;
    }
    for (const std::string backend : {"cpu", "opencl"}) {
        SCOPED_TRACE(backend);
        const fs::path out = dir_ / ("all_" + backend);
        std::vector<std::string> args = {"detect"};
        args.insert(args.end(), inputs.begin(), inputs.end());
        args.insert(args.end(), {"--out", out.string(), "--backend", backend});
        const RunResult r = run(args);
        EXPECT_EQ(r.status, 2) << r.err;
        EXPECT_NE(r.err.find("1 of 3 recordings failed"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(bad.string() + ": "), std::string::npos) << "the error names the bad file: " << r.err;
        EXPECT_NE(r.out.find("total"), std::string::npos) << r.out;
        EXPECT_FALSE(fs::exists(out / "broken"));
        for (std::size_t i : {0, 2}) {
            const fs::path folder = out / (i == 0 ? "recording" : "recording_2"); // same file names: numbered
            for (const char* name : {"spike_times.npy", "spike_channels.npy", "spike_amplitudes.npy", "artifacts.npy"})
                EXPECT_TRUE(read_bytes(folder / name) == read_bytes(dir_ / ("alone" + std::to_string(i)) / name))
                    << folder / name << " differs from the recording's run alone";
            EXPECT_GT(fs::file_size(folder / "spike_times.npy"), 400u) << "dozens of spikes";
        }
        EXPECT_TRUE(temporary_files(out).empty());
        const auto summary = nlohmann::json::parse(read_text(out / "detect_batch.json"));
        EXPECT_EQ(summary["succeeded"], 2);
        EXPECT_EQ(summary["failed"], 1);
        EXPECT_EQ(summary["batched"], backend == "opencl");
        EXPECT_EQ(summary["recordings"][1]["status"], "failed");
        EXPECT_EQ(summary["recordings"][2]["n_channels"], 37);
        EXPECT_GT(summary["x_realtime_total"].get<double>(), 0.0);
    }

    // sort: one after another, each folder as its sort alone writes it.
    std::vector<std::string> args = {"sort"};
    args.insert(args.end(), inputs.begin(), inputs.end());
    args.insert(args.end(), {"--out", (dir_ / "sorted").string(), "--calibration-s", "1", "-q"});
    const RunResult r = run(args);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("1 of 3 recordings failed"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(bad.string() + ": "), std::string::npos) << r.err;
    const RunResult alone =
        run({"sort", inputs[2], "--out", (dir_ / "sorted_alone").string(), "--calibration-s", "1", "-q"});
    ASSERT_EQ(alone.status, 0) << alone.err;
    int compared = 0;
    for (const auto& entry : fs::directory_iterator(dir_ / "sorted_alone")) {
        const auto name = entry.path().filename();
        if (name == "spikeline_sort.json" || name == "manifest.json") // timings, and their hash
            continue;
        EXPECT_TRUE(read_bytes(entry.path()) == read_bytes(dir_ / "sorted" / "recording_2" / name))
            << name << " differs from the recording's sort alone";
        ++compared;
    }
    EXPECT_GT(compared, 10);
    EXPECT_TRUE(fs::is_regular_file(dir_ / "sorted" / "recording" / "spike_clusters.npy"));
}

TEST_F(CliTest, ExcludedChannelsYieldNoEventsAndAreRecorded) {
    const fs::path out = dir_ / "out";
    const RunResult r = run(
        {"detect", (sim_dir_ / "recording.bin").string(), "--out", out.string(), "--exclude-channels", "4:6,30", "-q"});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto channels = read_npy_vector<std::int32_t>(out / "spike_channels.npy");
    ASSERT_FALSE(channels.empty());
    for (std::int32_t c : channels)
        EXPECT_TRUE(c < 4 || (c > 6 && c != 30)) << "event on excluded channel " << c;
    const auto info = nlohmann::json::parse(read_text(out / "detect_info.json"));
    EXPECT_EQ(info["settings"]["excluded_channels"], nlohmann::json({4, 5, 6, 30}));
}

TEST_F(CliTest, BadDetectOptionValuesAreRejected) {
    const std::string input = (sim_dir_ / "recording.bin").string();
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--threads", "0"}, "--threads"},
        {{"--polarity", "sideways"}, "polarity"},
        {{"--chunk-ms", "0"}, "--chunk-ms"},
        {{"--band-high", "20000"}, "Nyquist frequency 15000 Hz"},
        {{"--threads", "two"}, "--threads"},
        {{"--band-low", "7000"}, "0 < --band-low < --band-high"},
        {{"--exclude-channels", "70"}, "names channel 70"},
        {{"--exclude-channels", "3:1"}, "'3:1' is not"},
    };
    for (const auto& [options, expected] : cases) {
        const fs::path out = dir_ / "out";
        std::vector<std::string> args = {"detect", input, "--out", out.string(), "-q"};
        args.insert(args.end(), options.begin(), options.end());
        SCOPED_TRACE(describe(args));
        expect_detect_fails(args, out, {expected});
    }
}

TEST_F(CliTest, BadSortOptionValuesAreRejected) {
    const std::string input = (sim_dir_ / "recording.bin").string();
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--calibration-s", "0"}, "--calibration-s"},
        {{"--snippet-post-ms", "5"}, "snippet"},
        {{"--min-cluster-spikes", "1"}, "--min-cluster-spikes"},
        {{"--recalibrate-every", "-3"}, "--recalibrate-every"},
    };
    for (const auto& [options, expected] : cases) {
        const fs::path out = dir_ / "out";
        std::vector<std::string> args = {"sort", input, "--out", out.string(), "-q"};
        args.insert(args.end(), options.begin(), options.end());
        SCOPED_TRACE(describe(args));
        expect_detect_fails(args, out, {expected});
    }
}

TEST_F(CliTest, UnknownSubcommandIsRejected) {
    const RunResult r = run({"frobnicate"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("usage:"), std::string::npos) << r.err;
}

TEST_F(CliTest, VersionPrintsTheVersionCommitAndCompiler) {
    for (const std::string flag : {"--version", "version"}) {
        const RunResult r = run({flag});
        EXPECT_EQ(r.status, 0) << r.err;
        EXPECT_TRUE(r.err.empty()) << r.err;
        std::istringstream lines(r.out);
        std::string name, version, commit_key, commit, compiler_key, compiler;
        lines >> name >> version >> commit_key >> commit >> compiler_key >> compiler;
        EXPECT_EQ(name, "spikeline") << r.out;
        EXPECT_EQ(std::count(version.begin(), version.end(), '.'), 2) << "a semantic version: " << r.out;
        EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(version.front()))) << r.out;
        EXPECT_EQ(commit_key, "commit") << r.out;
        EXPECT_FALSE(commit.empty()) << r.out;
        EXPECT_EQ(compiler_key, "compiler") << r.out;
        EXPECT_FALSE(compiler.empty()) << r.out;
    }
}

TEST_F(CliTest, NoArgumentsPrintsUsageAndFails) {
    const RunResult r = run({});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("usage: spikeline"), std::string::npos) << r.err;
}

TEST_F(CliTest, MissingOutIsRejected) {
    const RunResult detect = run({"detect", (sim_dir_ / "recording.bin").string(), "-q"});
    EXPECT_EQ(detect.status, 2);
    EXPECT_NE(detect.err.find("'--out' is required"), std::string::npos) << detect.err;
    EXPECT_TRUE(temporary_files(sim_dir_).empty());

    const RunResult simulate = run({"simulate", "--channels", "64", "--duration", "0.5", "-q"});
    EXPECT_EQ(simulate.status, 2);
    EXPECT_NE(simulate.err.find("'--out' is required"), std::string::npos) << simulate.err;
}

TEST_F(CliTest, UnknownOptionIsRejected) {
    const RunResult r =
        run({"detect", (sim_dir_ / "recording.bin").string(), "--out", (dir_ / "out").string(), "--no-such-option"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("no-such-option"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out" / "spike_times.npy"));
}

TEST_F(CliTest, CompareRejectsMissingFolders) {
    const RunResult no_sorted = run(
        {"compare", "--ground-truth", (sim_dir_ / "ground_truth").string(), "--sorted", (dir_ / "nowhere").string()});
    EXPECT_EQ(no_sorted.status, 2);
    EXPECT_NE(no_sorted.err.find("spikeline compare: error:"), std::string::npos) << no_sorted.err;
    EXPECT_NE(no_sorted.err.find("nowhere"), std::string::npos) << no_sorted.err;

    const RunResult no_truth = run({"compare", "--sorted", (sim_dir_).string()});
    EXPECT_EQ(no_truth.status, 2);
    EXPECT_NE(no_truth.err.find("--ground-truth"), std::string::npos) << no_truth.err;
}

TEST_F(CliTest, SimulateRejectsBadValues) {
    const RunResult channels = run({"simulate", "--channels", "0", "--out", (dir_ / "a").string(), "-q"});
    EXPECT_EQ(channels.status, 2);
    EXPECT_NE(channels.err.find("--channels"), std::string::npos) << channels.err;
    const RunResult duration = run({"simulate", "--duration", "-1", "--out", (dir_ / "b").string(), "-q"});
    EXPECT_EQ(duration.status, 2);
    EXPECT_NE(duration.err.find("duration"), std::string::npos) << duration.err;
    EXPECT_TRUE(temporary_files(dir_).empty());
    EXPECT_FALSE(fs::exists(dir_ / "a" / "recording.bin"));
    EXPECT_FALSE(fs::exists(dir_ / "b" / "recording.bin"));
}

TEST_F(CliTest, SimulateDriftOptions) {
    auto simulate = [&](const std::string& name, std::vector<std::string> options) {
        std::vector<std::string> args = {"simulate", "--channels", "32",    "--duration",
                                         "0.3",      "-q",         "--out", (dir_ / name).string()};
        args.insert(args.end(), options.begin(), options.end());
        return run(args);
    };
    const RunResult sine = simulate("sine", {"--drift-model", "sine", "--drift-um", "12", "--drift-period-s", "2"});
    ASSERT_EQ(sine.status, 0) << sine.err;
    for (const char* name : {"motion_times_s.npy", "motion_depths_um.npy", "motion_um.npy"})
        EXPECT_TRUE(fs::exists(dir_ / "sine" / "ground_truth" / name)) << name;
    // compare measures detections around where each unit was under the drift, or (asked) around its nominal place.
    const fs::path sine_dir = dir_ / "sine";
    ASSERT_EQ(run({"detect", (sine_dir / "recording.bin").string(), "--out", (sine_dir / "det").string(), "-q"}).status,
              0);
    for (const bool nominal : {false, true}) {
        std::vector<std::string> args = {"compare",
                                         "--ground-truth",
                                         (sine_dir / "ground_truth").string(),
                                         "--sorted",
                                         (sine_dir / "det").string(),
                                         "--json",
                                         (sine_dir / "score.json").string()};
        if (nominal)
            args.push_back("--nominal-positions");
        const RunResult compare = run(args);
        ASSERT_EQ(compare.status, 0) << compare.err;
        EXPECT_EQ(compare.out.find("under the ground truth's drift") == std::string::npos, nominal) << compare.out;
        EXPECT_EQ(nlohmann::json::parse(read_text(sine_dir / "score.json"))["radius_follows_motion"].get<bool>(),
                  !nominal);
    }
    const RunResult legacy = simulate("legacy", {"--drift", "15"});
    ASSERT_EQ(legacy.status, 0) << legacy.err;
    EXPECT_TRUE(fs::exists(dir_ / "legacy" / "ground_truth" / "motion_um.npy"));

    const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
        {{"--drift-model", "wobble"}, "unknown drift model 'wobble'"},
        {{"--drift", "10", "--drift-model", "sine"}, "--drift UM_PER_S"},
        {{"--drift-um", "5"}, "need a --drift-model"},
        {{"--drift-model", "sine", "--drift-step-s", "0.1"}, "--drift-step-s applies to --drift-model step"},
        {{"--drift-model", "step", "--drift-period-s", "3"}, "--drift-period-s applies"},
        {{"--drift-model", "step", "--drift-step-s", "5"}, "within the recording"},
        {{"--drift-model", "ramp", "--drift-um", "0"}, "amplitude"},
    };
    for (std::size_t i = 0; i < bad.size(); ++i) {
        const RunResult r = simulate("bad" + std::to_string(i), bad[i].first);
        EXPECT_EQ(r.status, 2) << bad[i].second;
        EXPECT_NE(r.err.find(bad[i].second), std::string::npos) << r.err;
        EXPECT_FALSE(fs::exists(dir_ / ("bad" + std::to_string(i)) / "recording.bin"));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// help

TEST_F(CliTest, HelpExitsZeroAndPrintsUsage) {
    const RunResult top = run({"--help"});
    EXPECT_EQ(top.status, 0) << top.err;
    EXPECT_NE(top.out.find("usage: spikeline <command>"), std::string::npos) << top.out;
    for (const char* command : {"simulate", "detect", "compare", "bench"})
        EXPECT_NE(top.out.find(command), std::string::npos) << command;

    const std::vector<std::pair<std::string, std::vector<std::string>>> commands = {
        {"detect", {"--out", "--probe", "--backend", "--threads", "--channels", "--sample-rate", "--threshold"}},
        {"simulate", {"--out", "--channels", "--duration", "--seed"}},
        {"compare", {"--ground-truth", "--sorted", "--json"}},
        {"bench", {"--channels", "--seconds", "--threads", "--repeats", "--json"}},
    };
    for (const auto& [command, options] : commands) {
        const RunResult r = run({command, "--help"});
        EXPECT_EQ(r.status, 0) << command << ": " << r.err;
        EXPECT_NE(r.out.find("spikeline " + command), std::string::npos) << r.out;
        for (const std::string& option : options)
            EXPECT_NE(r.out.find(option), std::string::npos) << command << " --help lacks " << option;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// bench

TEST_F(CliTest, BenchWritesJson) {
    const fs::path json_file = dir_ / "bench.json";
    const RunResult r = run({"bench", "--channels", "64", "--seconds", "1", "--repeats", "1", "--threads", "2",
                             "--json", json_file.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("real time"), std::string::npos) << r.out;
    ASSERT_TRUE(fs::is_regular_file(json_file));
    EXPECT_TRUE(temporary_files(dir_).empty());
    const auto report = nlohmann::json::parse(read_text(json_file));
    EXPECT_EQ(report["channels"].get<int>(), 64);
    EXPECT_FALSE(report["cpu"].get<std::string>().empty());
    for (const char* run_name : {"cpu_1_thread", "cpu_n_threads"}) {
        SCOPED_TRACE(run_name);
        ASSERT_TRUE(report.contains(run_name));
        const auto& j = report[run_name];
        ASSERT_TRUE(j["x_realtime"].is_number());
        EXPECT_GT(j["x_realtime"].get<double>(), 0.0);
        for (const auto& [stage, value] : j["stages_x_realtime"].items()) {
            ASSERT_TRUE(value.is_number()) << stage;
            EXPECT_GT(value.get<double>(), 0.0) << stage;
        }
        EXPECT_GT(j["spikes"].get<std::size_t>(), 0u);
    }
    EXPECT_EQ(report["cpu_n_threads"]["threads"].get<int>(), 2);
    ASSERT_TRUE(report["cpu_n_threads"]["events_identical_to_1_thread"].is_boolean());
    EXPECT_TRUE(report["cpu_n_threads"]["events_identical_to_1_thread"].get<bool>());
}

TEST_F(CliTest, BenchStreamReportsLatencyOfTheLivePath) {
    const fs::path json_file = dir_ / "bench_stream.json";
    const RunResult r = run({"bench", "--channels", "64", "--seconds", "3", "--repeats", "1", "--threads", "1",
                             "--stream", "--json", json_file.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("latency p50"), std::string::npos) << r.out;
    const auto stream = nlohmann::json::parse(read_text(json_file))["stream"];
    EXPECT_TRUE(stream["calibration"]["done"].get<bool>());
    const auto& latency = stream["latency"];
    EXPECT_GT(latency["count"].get<std::uint64_t>(), 0u);
    EXPECT_LE(latency["p50_us"].get<double>(), latency["p99_us"].get<double>());
    EXPECT_LE(latency["p99_us"].get<double>(), latency["max_us"].get<double>());
    EXPECT_EQ(stream["overrun_blocks"].get<std::uint64_t>(), 0u);
    // The temporary recording and stream folder are gone.
    for (const auto& entry : fs::directory_iterator(fs::temp_directory_path()))
        EXPECT_EQ(entry.path().filename().string().find("spikeline-bench-stream-"), std::string::npos) << entry.path();
}

TEST_F(CliTest, BenchRejectsBadSeconds) {
    const RunResult r = run({"bench", "--channels", "64", "--seconds", "0"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("--seconds"), std::string::npos) << r.err;
}

/// A short recording with the cursor task for the decode commands (few channels: fast).
class DecodeCliTest : public CliTest {
protected:
    void SetUp() override {
        CliTest::SetUp();
        sim_ = dir_ / "behavior";
        const RunResult r = run({"simulate", "--out", sim_.string(), "--channels", "16", "--units", "40", "--duration",
                                 "30", "--seed", "5", "--behavior", "-q"});
        ASSERT_EQ(r.status, 0) << r.err;
        truth_ = (sim_ / "ground_truth").string();
        kinematics_ = (sim_ / "ground_truth" / "kinematics.npy").string();
    }

    /// A decode command that must fail: exit status 2 and `expected` in the message.
    void expect_decode_fails(const std::vector<std::string>& args, const std::string& expected) const {
        const RunResult r = run(args);
        EXPECT_EQ(r.status, 2) << describe(args) << "\nstderr: " << r.err;
        EXPECT_EQ(r.err.rfind("spikeline decode: error: ", 0), 0u) << r.err;
        EXPECT_NE(r.err.find(expected), std::string::npos) << "expected '" << expected << "' in " << r.err;
    }

    fs::path sim_;
    std::string truth_, kinematics_;
};

TEST_F(DecodeCliTest, TrainThenEvalKalmanAndWiener) {
    for (const std::vector<std::string>& options :
         {std::vector<std::string>{"--decoder", "kalman", "--steady-state"},
          std::vector<std::string>{"--decoder", "wiener", "--lags", "3", "--smooth", "exponential", "--smooth-ms",
                                   "40"}}) {
        SCOPED_TRACE(options[1]);
        const fs::path model = dir_ / (options[1] + ".json");
        std::vector<std::string> train = {"decode", "train",        "--spikes", truth_, "--kinematics",     kinematics_,
                                          "--out",  model.string(), "--bin-ms", "25",   "--train-fraction", "0.75"};
        train.insert(train.end(), options.begin(), options.end());
        RunResult r = run(train);
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_NE(r.out.find("on 40 units, 25 ms bins, 900 training bins"), std::string::npos) << r.out;
        const auto stored = nlohmann::json::parse(read_text(model));
        EXPECT_EQ(stored["format"], "spikeline decoder");
        EXPECT_EQ(stored["kind"], options[1]);
        EXPECT_EQ(stored["unit_ids"].size(), 40u);
        EXPECT_EQ(stored["bin_samples"], 750);

        const fs::path scores = dir_ / (options[1] + "_scores.json");
        const fs::path predictions = dir_ / (options[1] + "_predictions.npy");
        r = run({"decode", "eval", "--model", model.string(), "--spikes", truth_, "--kinematics", kinematics_, "--json",
                 scores.string(), "--predictions", predictions.string()});
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_NE(r.out.find("held out 300 bins (7.5 s)"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("vx: R2 "), std::string::npos) << r.out;
        const auto score = nlohmann::json::parse(read_text(scores));
        EXPECT_EQ(score["test_bins"], 300);
        EXPECT_EQ(score["test_first_bin"], 900);
        for (const char* axis : {"vx", "vy"}) { // 24 tuned units: clearly above chance even on 22.5 s of training
            EXPECT_GT(score["correlation"][axis].get<double>(), 0.2) << axis;
            EXPECT_TRUE(score["r2"][axis].is_number()) << axis;
        }
        const spikeline::io::NpyArray rows = spikeline::io::read_npy(predictions);
        EXPECT_EQ(rows.shape, (std::vector<std::size_t>{300, 5}));
        r = run({"decode", "eval", "--model", model.string(), "--spikes", truth_, "--kinematics", kinematics_,
                 "--all-bins"});
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_NE(r.out.find("scored all 1200 bins (30.0 s)"), std::string::npos) << r.out;
        EXPECT_TRUE(temporary_files(dir_).empty());
    }
}

TEST_F(DecodeCliTest, BadModelFilesAreRejected) {
    const fs::path model = dir_ / "model.json";
    write_text(model, "{\"format\": \"spikeline decoder\", \"kind\": ");
    const std::vector<std::string> eval = {"decode",   "eval", "--model",      model.string(),
                                           "--spikes", truth_, "--kinematics", kinematics_};
    expect_decode_fails(eval, "is not valid JSON");
    ASSERT_EQ(
        run({"decode", "train", "--spikes", truth_, "--kinematics", kinematics_, "--out", model.string(), "-q"}).status,
        0);
    auto stored = nlohmann::json::parse(read_text(model));
    stored["kind"] = "lstm";
    write_text(model, stored.dump());
    expect_decode_fails(eval, "kind 'lstm' is unknown (kalman or wiener)");
    stored["kind"] = "kalman";
    stored["kalman"]["observation"]["rows"] = 39;
    write_text(model, stored.dump());
    expect_decode_fails(eval, "matrix 'observation' is 39 x 2 but 40 x 2 is expected for 40 inputs");
}

TEST_F(DecodeCliTest, KinematicsOfAnotherLengthAreRejected) {
    const fs::path model = dir_ / "model.json";
    ASSERT_EQ(
        run({"decode", "train", "--spikes", truth_, "--kinematics", kinematics_, "--out", model.string(), "-q"}).status,
        0);
    // The first two thirds of the session's kinematics: another, shorter session.
    const std::vector<double> rows = spikeline::io::read_npy(kinematics_).as<double>();
    ASSERT_EQ(rows.size() % 5, 0u);
    const std::size_t kept = rows.size() / 5 * 2 / 3;
    const fs::path shorter = dir_ / "shorter.npy";
    spikeline::io::write_npy(shorter, rows.data(), {kept, 5});
    expect_decode_fails(
        {"decode", "eval", "--model", model.string(), "--spikes", truth_, "--kinematics", shorter.string()},
        "recordings of different lengths");
    expect_decode_fails({"decode", "train", "--spikes", truth_, "--kinematics", shorter.string(), "--out",
                         (dir_ / "short_model.json").string()},
                        "the kinematics end at");
    EXPECT_FALSE(fs::exists(dir_ / "short_model.json"));
    // Writing the model over an input is refused as well.
    expect_decode_fails({"decode", "train", "--spikes", truth_, "--kinematics", kinematics_, "--out", kinematics_},
                        "is the input");
    EXPECT_EQ(spikeline::io::read_npy(kinematics_).as<double>(), rows);
}

TEST_F(DecodeCliTest, SpikesThatDoNotMatchTheModelAreRejected) {
    const fs::path model = dir_ / "model.json";
    ASSERT_EQ(
        run({"decode", "train", "--spikes", truth_, "--kinematics", kinematics_, "--out", model.string(), "-q"}).status,
        0);
    const fs::path detected = dir_ / "detected";
    ASSERT_EQ(run({"detect", (sim_ / "recording.bin").string(), "--out", detected.string(), "-q"}).status, 0);
    expect_decode_fails(
        {"decode", "eval", "--model", model.string(), "--spikes", detected.string(), "--kinematics", kinematics_},
        "the model decodes units but the spikes are labelled by channels");

    // Threshold crossings train and evaluate like units (the no-sorting baseline), one input per channel.
    const fs::path crossings = dir_ / "crossings.json";
    const RunResult r = run(
        {"decode", "train", "--spikes", detected.string(), "--kinematics", kinematics_, "--out", crossings.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("on 16 channels"), std::string::npos) << r.out;
    // A ground-truth folder with one unit fewer than the model.
    fs::copy(sim_ / "ground_truth", dir_ / "fewer");
    const std::string tsv = read_text(dir_ / "fewer" / "units.tsv");
    write_text(dir_ / "fewer" / "units.tsv", tsv.substr(0, tsv.rfind('\n', tsv.size() - 2) + 1));
    auto units = read_npy_vector<std::int32_t>(dir_ / "fewer" / "spike_units.npy");
    auto times = read_npy_vector<std::uint64_t>(dir_ / "fewer" / "spike_times.npy");
    std::vector<std::int32_t> kept_units;
    std::vector<std::uint64_t> kept_times;
    for (std::size_t i = 0; i < units.size(); ++i)
        if (units[i] != 39) {
            kept_units.push_back(units[i]);
            kept_times.push_back(times[i]);
        }
    spikeline::io::write_npy(dir_ / "fewer" / "spike_units.npy", kept_units);
    spikeline::io::write_npy(dir_ / "fewer" / "spike_times.npy", kept_times);
    expect_decode_fails({"decode", "eval", "--model", model.string(), "--spikes", (dir_ / "fewer").string(),
                         "--kinematics", kinematics_},
                        "the model was trained on 40 units but the spikes have 39");
    expect_decode_fails({"decode", "train", "--spikes", truth_, "--kinematics", kinematics_, "--out", model.string(),
                         "--units-from", "clusters"},
                        "spike_clusters.npy is missing");
}

TEST_F(CliTest, BenchDecoderTimesTrainingAndSteps) {
    const fs::path json_file = dir_ / "decoder_bench.json";
    const RunResult r = run({"bench", "--decoder", "--decoder-inputs", "64", "128", "--decoder-bins", "300",
                             "--repeats", "2", "--json", json_file.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("kalman_steady_state"), std::string::npos) << r.out;
    const auto report = nlohmann::json::parse(read_text(json_file))["decoder"];
    EXPECT_EQ(report["bins"], 300);
    ASSERT_EQ(report["runs"].size(), 6u); // 2 input counts x (kalman, kalman_steady_state, wiener)
    for (const auto& run_entry : report["runs"]) {
        EXPECT_GT(run_entry["train_seconds"].get<double>(), 0.0);
        EXPECT_GT(run_entry["step_us_median"].get<double>(), 0.0);
        EXPECT_LE(run_entry["step_us_median"].get<double>(), run_entry["step_us_p99"].get<double>());
        EXPECT_LE(run_entry["step_us_p99"].get<double>(), run_entry["step_us_max"].get<double>());
    }
    EXPECT_EQ(run({"bench", "--decoder", "--decoder-bins", "3"}).status, 2);
}

} // namespace
