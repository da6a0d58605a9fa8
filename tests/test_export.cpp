// The lab tools' view of spikeline's outputs: the Phy folder as phylib's loader sees it, and the NWB export read
// back with h5py (tests/python/*.py, run with Debian's python3-numpy and python3-h5py). Runs the built binary.
#include "temp_dir_test.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

struct RunResult {
    int status = -1;
    std::string output; ///< stdout and stderr
};

/// Runs program with args, never through a shell; output captured in a file under capture_dir.
RunResult run(const std::string& program, const std::vector<std::string>& args, const fs::path& capture_dir) {
    const fs::path capture = capture_dir / "output.txt";
    std::vector<std::string> storage{program};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : storage)
        argv.push_back(s.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int fd = ::open(capture.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ::dup2(fd, STDOUT_FILENO) < 0 || ::dup2(fd, STDERR_FILENO) < 0)
            ::_exit(126);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    RunResult result;
    int wstatus = 0;
    while (pid > 0 && ::waitpid(pid, &wstatus, 0) < 0) {
    }
    if (pid > 0 && WIFEXITED(wstatus))
        result.status = WEXITSTATUS(wstatus);
    std::ifstream in(capture);
    std::stringstream text;
    text << in.rdbuf();
    result.output = text.str();
    return result;
}

RunResult spikeline(const std::vector<std::string>& args, const fs::path& capture_dir) {
    return run(SPIKELINE_CLI, args, capture_dir);
}

/// The python checks need Debian's python3 with numpy and h5py (scripts/setup.sh installs them).
bool python_ready() {
    return std::string(SPIKELINE_PYTHON).size() > 0;
}

RunResult python(const std::string& script, const std::vector<std::string>& args, const fs::path& capture_dir) {
    std::vector<std::string> all{std::string(SPIKELINE_PYTHON_TESTS) + "/" + script};
    all.insert(all.end(), args.begin(), args.end());
    return run(SPIKELINE_PYTHON, all, capture_dir);
}

class ExportTest : public spikeline::testing::TempDirTest {
protected:
    /// Simulates a recording of n_channels (the default probe: shanks of 128) and sorts it with extra sort options.
    void simulate_and_sort(int n_channels, double seconds, const std::vector<std::string>& sort_options) {
        const RunResult simulated =
            spikeline({"simulate", "--out", (dir_ / "rec").string(), "--channels", std::to_string(n_channels),
                       "--duration", std::to_string(seconds), "--seed", "5"},
                      dir_);
        ASSERT_EQ(simulated.status, 0) << simulated.output;
        std::vector<std::string> args{"sort", (dir_ / "rec").string(), "--out", (dir_ / "phy").string(), "-q"};
        args.insert(args.end(), sort_options.begin(), sort_options.end());
        const RunResult sorted = spikeline(args, dir_);
        ASSERT_EQ(sorted.status, 0) << sorted.output;
    }
};

// One sort of two shanks, looked at by phylib's loader checks and as NWB (sort --nwb --nwb-raw, and export-nwb).
TEST_F(ExportTest, PhyFolderAndNwbFilesReadBackAsTheLabsToolsReadThem) {
    simulate_and_sort(256, 8.0,
                      {"--nwb", (dir_ / "sort.nwb").string(), "--nwb-raw", "--session-description", "export test"});
    const fs::path phy = dir_ / "phy", out = dir_ / "units.nwb";
    const RunResult exported = spikeline({"export-nwb", phy.string(), "--out", out.string(), "--session-start",
                                          "2026-12-06T09:00:00+00:00", "--location", "CA1"},
                                         dir_);
    ASSERT_EQ(exported.status, 0) << exported.output;
    EXPECT_NE(exported.output.find("256 electrodes on 2 shank(s)"), std::string::npos) << exported.output;
    EXPECT_LT(fs::file_size(out), fs::file_size(dir_ / "sort.nwb") / 10) << "no raw data";
    const RunResult again = spikeline({"export-nwb", phy.string(), "--out", out.string()}, dir_);
    EXPECT_EQ(again.status, 2) << "an existing file is kept without --overwrite";
    EXPECT_NE(again.output.find("--overwrite"), std::string::npos) << again.output;

    if (!python_ready())
        GTEST_SKIP() << "python3 with numpy and h5py not found at configure time: run scripts/setup.sh";
    const RunResult phy_checked = python("check_phy_folder.py", {phy.string()}, dir_);
    EXPECT_EQ(phy_checked.status, 0) << phy_checked.output;
    const RunResult raw_checked = python(
        "check_nwb.py", {(dir_ / "sort.nwb").string(), phy.string(), (dir_ / "rec" / "recording.bin").string()}, dir_);
    EXPECT_EQ(raw_checked.status, 0) << raw_checked.output;
    const RunResult units_checked = python("check_nwb.py", {out.string(), phy.string()}, dir_);
    EXPECT_EQ(units_checked.status, 0) << units_checked.output;
}

TEST_F(ExportTest, StreamWritesItsNwbWhenItEnds) {
    simulate_and_sort(64, 4.0, {});
    const fs::path out = dir_ / "stream", nwb = dir_ / "stream.nwb";
    const RunResult streamed = spikeline({"stream", "--source", (dir_ / "rec" / "recording.bin").string(), "--out",
                                          out.string(), "--calibration-s", "1", "--nwb", nwb.string(), "--nwb-raw"},
                                         dir_);
    ASSERT_EQ(streamed.status, 0) << streamed.output;
    EXPECT_NE(streamed.output.find("raw data 120000 frames"), std::string::npos) << streamed.output;
    const RunResult refused = spikeline({"stream", "--source", (dir_ / "rec" / "recording.bin").string(), "--out",
                                         (dir_ / "again").string(), "--nwb-raw", "--no-raw-copy"},
                                        dir_);
    EXPECT_EQ(refused.status, 2) << "--nwb-raw without --nwb";
    if (!python_ready())
        GTEST_SKIP() << "python3 with numpy and h5py not found at configure time: run scripts/setup.sh";
    const RunResult checked =
        python("check_nwb.py", {nwb.string(), out.string(), (out / "recording.bin").string()}, dir_);
    EXPECT_EQ(checked.status, 0) << checked.output;
}

TEST_F(ExportTest, AFolderThatIsNotASortIsRefusedAndNoFileIsLeft) {
    simulate_and_sort(64, 3.0, {});
    const fs::path out = dir_ / "bad.nwb";
    const RunResult refused = spikeline({"export-nwb", (dir_ / "rec").string(), "--out", out.string()}, dir_);
    EXPECT_EQ(refused.status, 2) << refused.output;
    EXPECT_NE(refused.output.find("params.py"), std::string::npos) << refused.output;
    // A damaged sort folder: spike_clusters.npy shorter than the other per-spike arrays.
    fs::copy_file(dir_ / "phy" / "channel_map.npy", dir_ / "phy" / "spike_clusters.npy",
                  fs::copy_options::overwrite_existing);
    const RunResult inconsistent = spikeline({"export-nwb", (dir_ / "phy").string(), "--out", out.string()}, dir_);
    EXPECT_EQ(inconsistent.status, 2) << inconsistent.output;
    EXPECT_NE(inconsistent.output.find("differ in length"), std::string::npos) << inconsistent.output;
    // params.py is a file users edit: a sample rate that is not a number (an internal error before).
    std::string params;
    {
        std::ifstream in(dir_ / "phy" / "params.py");
        std::stringstream text;
        text << in.rdbuf();
        params = text.str();
    }
    const std::size_t line = params.find("sample_rate");
    ASSERT_NE(line, std::string::npos);
    params.replace(line, params.find('\n', line) - line, "sample_rate = fast");
    std::ofstream(dir_ / "phy" / "params.py") << params;
    const RunResult edited = spikeline({"export-nwb", (dir_ / "phy").string(), "--out", out.string()}, dir_);
    EXPECT_EQ(edited.status, 2) << edited.output;
    EXPECT_NE(edited.output.find("sample_rate = fast is not a number"), std::string::npos) << edited.output;
    EXPECT_FALSE(fs::exists(out));
    for (const auto& entry : fs::directory_iterator(dir_))
        EXPECT_EQ(entry.path().filename().string().find("bad.nwb.tmp"), std::string::npos) << "temporary left";
}

} // namespace
