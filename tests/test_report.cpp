// spikeline report (data, page, CLI) and the live view's parts that run without a browser (LiveFeed, HttpView over
// a socket). The pages themselves are tested in headless chromium: tests/browser/test_pages.py.
#include "eval/compare.hpp"
#include "io/npy.hpp"
#include "report/html_report.hpp"
#include "report/report_data.hpp"
#include "stream/http_view.hpp"
#include "stream/live_feed.hpp"
#include "stream/source.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace spikeline {
namespace {

namespace fs = std::filesystem;
using spikeline::testing::TempDirTest;

struct RunResult {
    int status = -1;
    std::string err;
};

/// Runs `spikeline args...` (stderr captured to a file in dir), never through a shell.
RunResult run_cli(const std::vector<std::string>& args, const fs::path& dir) {
    std::vector<std::string> storage{SPIKELINE_CLI};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : storage)
        argv.push_back(s.data());
    argv.push_back(nullptr);
    const fs::path err_file = dir / "cli_stderr.txt";
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int err_fd = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int null_fd = ::open("/dev/null", O_WRONLY);
        if (err_fd < 0 || null_fd < 0 || ::dup2(null_fd, STDOUT_FILENO) < 0 || ::dup2(err_fd, STDERR_FILENO) < 0)
            ::_exit(126);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    RunResult result;
    int wstatus = 0;
    ::waitpid(pid, &wstatus, 0);
    result.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    std::ifstream in(err_file);
    result.err.assign(std::istreambuf_iterator<char>(in), {});
    return result;
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<std::uint32_t> decode_u32(const std::string& b64) {
    // The inverse of base64 for the tests: 4 characters -> 3 bytes.
    static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::vector<unsigned char> bytes;
    for (std::size_t i = 0; i + 3 < b64.size(); i += 4) {
        unsigned v = 0;
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = b64[i + static_cast<std::size_t>(k)];
            v <<= 6;
            if (c == '=')
                ++pad;
            else
                v |= static_cast<unsigned>(alphabet.find(c));
        }
        bytes.push_back(static_cast<unsigned char>(v >> 16));
        if (pad < 2)
            bytes.push_back(static_cast<unsigned char>(v >> 8));
        if (pad < 1)
            bytes.push_back(static_cast<unsigned char>(v));
    }
    std::vector<std::uint32_t> values(bytes.size() / 4);
    std::memcpy(values.data(), bytes.data(), values.size() * 4);
    return values;
}

std::vector<float> decode_f32(const std::string& b64) {
    const std::vector<std::uint32_t> words = decode_u32(b64);
    std::vector<float> values(words.size());
    std::memcpy(values.data(), words.data(), words.size() * 4);
    return values;
}

TEST(Base64, MatchesTheRfc4648Vectors) {
    const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                           {"f", "Zg=="},
                                                           {"fo", "Zm8="},
                                                           {"foo", "Zm9v"},
                                                           {"foob", "Zm9vYg=="},
                                                           {"fooba", "Zm9vYmE="},
                                                           {"foobar", "Zm9vYmFy"}};
    for (const auto& [text, encoded] : vectors)
        EXPECT_EQ(report::base64(text.data(), text.size()), encoded) << text;
    const std::vector<std::uint32_t> values = {0, 1, 0xdeadbeef, 0xffffffff, 12345};
    EXPECT_EQ(decode_u32(report::base64(values)), values);
}

/// One simulated 64-channel recording with drift, sorted once for the whole suite.
class ReportTest : public TempDirTest {
protected:
    static void SetUpTestSuite() {
        shared_ = fs::temp_directory_path() / ("spikeline_report_suite_" + std::to_string(::getpid()));
        fs::remove_all(shared_);
        fs::create_directories(shared_);
        const RunResult simulated = run_cli({"simulate", "-q", "--out", (shared_ / "sim").string(), "--channels", "64",
                                             "--duration", "12", "--drift-model", "sine", "--seed", "7"},
                                            shared_);
        ASSERT_EQ(simulated.status, 0) << simulated.err;
        const RunResult sorted = run_cli({"sort", (shared_ / "sim" / "recording.bin").string(), "--out",
                                          (shared_ / "sort").string(), "--calibration-s", "5"},
                                         shared_);
        ASSERT_EQ(sorted.status, 0) << sorted.err;
    }
    static void TearDownTestSuite() { fs::remove_all(shared_); }
    static fs::path sort_dir() { return shared_ / "sort"; }
    static fs::path truth_dir() { return shared_ / "sim" / "ground_truth"; }
    /// A copy of the sort folder this test may damage.
    fs::path copy_sort() const {
        const fs::path copy = dir_ / "sort";
        fs::copy(sort_dir(), copy, fs::copy_options::recursive);
        return copy;
    }

    static fs::path shared_;
};
fs::path ReportTest::shared_;

TEST_F(ReportTest, DataAgreesWithTheSortFolder) {
    const nlohmann::json data = report::build_report_data(sort_dir(), {});
    const auto times = io::read_npy(sort_dir() / "spike_times.npy").as<std::uint64_t>();
    const auto clusters = io::read_npy(sort_dir() / "spike_clusters.npy").as<std::int32_t>();
    const double sample_rate = data["run"]["sample_rate"].get<double>();
    std::map<int, std::vector<std::uint64_t>> members;
    std::size_t unsorted = 0;
    for (std::size_t i = 0; i < times.size(); ++i) {
        if (clusters[i] > 0)
            members[clusters[i]].push_back(times[i]);
        else
            ++unsorted;
    }
    ASSERT_GT(members.size(), 3u);
    ASSERT_EQ(data["units"].size(), members.size());
    EXPECT_EQ(data["n_spikes"].get<std::size_t>(), times.size());
    EXPECT_EQ(data["n_unsorted"].get<std::size_t>(), unsorted);
    EXPECT_NEAR(data["duration_s"].get<double>(), 12.0, 1e-9);
    const std::size_t samples = data["template_samples"].get<std::size_t>();
    for (const nlohmann::json& unit : data["units"]) {
        const int cluster = unit["cluster_id"].get<int>();
        const std::vector<std::uint64_t>& spikes = members.at(cluster);
        EXPECT_EQ(unit["n_spikes"].get<std::size_t>(), spikes.size());
        // ISI histogram: every interval below 50 ms counted once, in its 0.5 ms bin.
        std::vector<std::uint32_t> isi(100, 0);
        for (std::size_t j = 1; j < spikes.size(); ++j) {
            const double ms = static_cast<double>(spikes[j] - spikes[j - 1]) / sample_rate * 1000.0;
            if (ms < 50.0)
                ++isi[static_cast<std::size_t>(ms / 0.5)];
        }
        EXPECT_EQ(decode_u32(unit["isi"].get<std::string>()), isi) << cluster;
        // Rate over time integrates to the spike count.
        const std::vector<float> rate = decode_f32(unit["rate"].get<std::string>());
        double integral = 0;
        for (float r : rate)
            integral += r * 12.0 / static_cast<double>(rate.size());
        EXPECT_NEAR(integral, static_cast<double>(spikes.size()), 1e-3 * static_cast<double>(spikes.size()));
        // Waveform: one trace per listed contact; amplitude points in time order, at most 300.
        EXPECT_EQ(decode_f32(unit["waveform"].get<std::string>()).size(), unit["channels"].size() * samples);
        const std::vector<float> points = decode_f32(unit["amplitudes"].get<std::string>());
        EXPECT_LE(points.size(), 600u);
        for (std::size_t k = 2; k < points.size(); k += 2)
            EXPECT_GE(points[k], points[k - 2]);
        EXPECT_TRUE(unit.contains("snr") && unit.contains("group")) << "cluster_info.tsv metrics";
    }
    // Drift map: every spike (fewer than the limit), depths within the probe; the motion estimate is there.
    EXPECT_EQ(data["drift"]["n"].get<std::size_t>(), times.size());
    const std::vector<float> positions = decode_f32(data["channel_positions"].get<std::string>());
    float low = 1e9f, high = -1e9f;
    for (std::size_t c = 1; c < positions.size(); c += 2) {
        low = std::min(low, positions[c]);
        high = std::max(high, positions[c]);
    }
    for (float depth : decode_f32(data["drift"]["depth_um"].get<std::string>())) {
        EXPECT_GE(depth, low);
        EXPECT_LE(depth, high);
    }
    ASSERT_TRUE(data["motion"].is_object());
    const auto motion = io::read_npy(sort_dir() / "motion.npy").as<double>();
    const std::vector<float> displacement = decode_f32(data["motion"]["displacement_um"].get<std::string>());
    ASSERT_EQ(displacement.size(), motion.size());
    for (std::size_t i = 0; i < motion.size(); ++i)
        EXPECT_FLOAT_EQ(displacement[i], static_cast<float>(motion[i]));
}

TEST_F(ReportTest, DriftMapIsSubsampledEvenly) {
    report::ReportOptions options;
    options.max_drift_spikes = 100;
    const nlohmann::json data = report::build_report_data(sort_dir(), options);
    const std::size_t n = data["n_spikes"].get<std::size_t>(), step = data["drift"]["step"].get<std::size_t>();
    EXPECT_EQ(step, (n + 99) / 100);
    EXPECT_EQ(data["drift"]["n"].get<std::size_t>(), (n + step - 1) / step);
    EXPECT_LE(data["drift"]["n"].get<std::size_t>(), 100u);
}

TEST_F(ReportTest, GroundTruthAddsTheScoreOfCompare) {
    report::ReportOptions options;
    options.ground_truth_dir = truth_dir();
    nlohmann::json score = report::build_report_data(sort_dir(), options)["ground_truth"];
    ASSERT_TRUE(score.is_object());
    score.erase("dir");
    const nlohmann::json expected =
        eval::to_json(eval::compare_sorting(eval::read_ground_truth(truth_dir()), eval::read_sorted(sort_dir())));
    EXPECT_EQ(score, expected);
}

TEST_F(ReportTest, PageInlinesAssetsAndDataThatCannotCloseItsScript) {
    nlohmann::json data = report::build_report_data(sort_dir(), {});
    const std::string hostile = "</script><script>alert(1)</script>";
    data["run"]["recording"] = hostile;
    const std::string page = report::render_report_html(data);
    EXPECT_EQ(page.find("/*@"), std::string::npos) << "a placeholder was left";
    EXPECT_EQ(page.find("@DATA@"), std::string::npos);
    EXPECT_EQ(page.find(hostile), std::string::npos);
    const std::string open = "<script type=\"application/json\" id=\"report-data\">";
    const std::size_t begin = page.find(open) + open.size(), end = page.find("</script>", begin);
    ASSERT_NE(end, std::string::npos);
    const nlohmann::json back = nlohmann::json::parse(page.substr(begin, end - begin));
    EXPECT_EQ(back["run"]["recording"], hostile);
    EXPECT_EQ(back["units"].size(), data["units"].size());
}

TEST_F(ReportTest, CliWritesTheReportAndRefusesBadInput) {
    const fs::path out = dir_ / "report.html";
    const RunResult ok =
        run_cli({"report", sort_dir().string(), "--out", out.string(), "--ground-truth", truth_dir().string()}, dir_);
    ASSERT_EQ(ok.status, 0) << ok.err;
    EXPECT_NE(read_text(out).find("spikeline report data"), std::string::npos);
    for (const auto& entry : fs::directory_iterator(dir_))
        EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << entry.path();

    auto expect_refused = [&](const std::vector<std::string>& args, const std::string& says) {
        const RunResult refused = run_cli(args, dir_);
        EXPECT_EQ(refused.status, 2) << refused.err;
        EXPECT_NE(refused.err.find(says), std::string::npos) << refused.err;
    };
    expect_refused({"report", (dir_ / "nowhere").string()}, "does not exist");
    expect_refused({"report", sort_dir().string(), "--out", (dir_ / "report.txt").string()}, "does not end in .html");
    expect_refused({"report", sort_dir().string(), "--out", (sort_dir() / "spikeline_sort.json").string()}, "--out");
    const fs::path damaged = copy_sort();
    const auto amplitudes = io::read_npy(damaged / "amplitudes.npy").as<double>();
    io::write_npy(damaged / "amplitudes.npy", std::vector<double>(amplitudes.begin(), amplitudes.end() - 1));
    expect_refused({"report", damaged.string(), "--out", out.string()}, "mixes two runs");
    fs::remove(damaged / "spike_clusters.npy");
    expect_refused({"report", damaged.string(), "--out", out.string()}, "has no spike_clusters.npy");
    std::ofstream(damaged / "spikeline_sort.json") << "{ not json";
    expect_refused({"report", damaged.string(), "--out", out.string()}, "not valid JSON");
    std::ofstream(damaged / "spikeline_sort.json") << R"({"sample_rate": "fast"})"; // was an internal error
    expect_refused({"report", damaged.string(), "--out", out.string()}, "has no positive sample_rate");
    // A cluster id that is not a whole number in int range (1e20 once reached an int conversion).
    for (const char* id : {"1e20", "2.5", "seven"}) {
        fs::remove_all(dir_ / "sort");
        const fs::path edited = copy_sort();
        std::string table = read_text(edited / "cluster_info.tsv");
        const std::size_t row = table.find('\n') + 1;
        table.replace(row, table.find('\t', row) - row, id);
        std::ofstream(edited / "cluster_info.tsv") << table;
        expect_refused({"report", edited.string(), "--out", out.string()}, "cluster_id must be a whole number");
    }
}

// --- The live view's parts ------------------------------------------------------------------------------------

TEST(LiveFeed, HandsOverEverySpikeInOrderWhileTheViewTakesConcurrently) {
    stream::LiveFeed feed;
    constexpr std::uint64_t kSpikes = 200000;
    std::atomic<bool> done{false};
    std::vector<std::uint64_t> taken;
    std::thread view([&] {
        while (!done.load()) {
            for (const stream::LiveSpike& spike : feed.take().spikes)
                taken.push_back(spike.sample);
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        for (const stream::LiveSpike& spike : feed.take().spikes)
            taken.push_back(spike.sample);
    });
    for (std::uint64_t i = 0; i < kSpikes; ++i) {
        feed.add_spike({i, static_cast<std::int32_t>(i % 64), 0, 1.0f}, static_cast<std::int64_t>(i % 7) * 100000);
        if (i % 100 == 99)
            feed.block_done(i + 1);
    }
    feed.flush(kSpikes);
    done.store(true);
    view.join();
    ASSERT_EQ(taken.size(), kSpikes);
    for (std::uint64_t i = 0; i < kSpikes; ++i)
        ASSERT_EQ(taken[i], i);
    const stream::LiveBatch last = feed.take();
    EXPECT_EQ(last.frames, kSpikes);
    EXPECT_EQ(last.dropped_spikes, 0u);
    // Latencies of 0, 100, ..., 600 us fall in 100 us bins 0..6, one seventh each.
    ASSERT_EQ(last.latency_bins.size(), static_cast<std::size_t>(stream::LiveFeed::kLatencyBins) + 1);
    for (int b = 0; b < 7; ++b)
        EXPECT_NEAR(static_cast<double>(last.latency_bins[static_cast<std::size_t>(b)]), kSpikes / 7.0, 1.0) << b;
}

TEST(LiveFeed, HoldsItsBatchUntilTheHandOffIsDue) {
    stream::LiveFeed feed;
    feed.block_done(0); // starts the 25 ms period
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    feed.block_done(10);
    feed.add_spike({5, 1, 2, 3.0f}, -1);
    feed.block_done(30); // within 25 ms of the last hand-off: kept
    EXPECT_TRUE(feed.take().spikes.empty());
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    feed.block_done(60);
    const stream::LiveBatch batch = feed.take();
    ASSERT_EQ(batch.spikes.size(), 1u);
    EXPECT_EQ(batch.spikes[0].unit, 2);
    EXPECT_EQ(batch.frames, 60u);
    std::uint64_t latencies = 0;
    for (std::uint64_t count : batch.latency_bins)
        latencies += count;
    EXPECT_EQ(latencies, 0u) << "a spike released at the end has no latency";
}

/// A blocking HTTP/1.1 GET on loopback; returns the raw response (read until close or `until` appears).
std::string http_get(unsigned short port, const std::string& path, const std::string& until = "") {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return "";
    }
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
        ::close(fd);
        return "";
    }
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string response;
    char buffer[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0)
            break;
        response.append(buffer, static_cast<std::size_t>(n));
        if (!until.empty() && response.find(until) != std::string::npos)
            break;
    }
    ::close(fd);
    return response;
}

class HttpViewTest : public ReportTest {
protected:
    void SetUp() override {
        ReportTest::SetUp();
        stream::SourceOptions options;
        options.source = (shared_ / "sim" / "recording.bin").string();
        source_ = stream::open_live_source(options);
    }
    nlohmann::json hello() const {
        return {{"n_channels", 64}, {"sample_rate", 30000.0}, {"positions", std::vector<double>(128, 0.0)}};
    }
    std::unique_ptr<stream::LiveSource> source_;
    std::atomic<std::uint64_t> overrun_{0};
};

TEST_F(HttpViewTest, ServesThePageAndAnEventStreamThatEndsWithTheStream) {
    stream::LiveFeed feed;
    stream::HttpView view({"127.0.0.1:0", false}, feed, hello(), *source_, overrun_);
    ASSERT_GT(view.port(), 0);
    const std::string page = http_get(view.port(), "/");
    EXPECT_NE(page.find("200 OK"), std::string::npos);
    EXPECT_NE(page.find("new EventSource(\"events\")"), std::string::npos);
    EXPECT_EQ(page.find("/*@"), std::string::npos) << "a placeholder was left";
    EXPECT_NE(http_get(view.port(), "/nothing").find("404"), std::string::npos);

    for (std::uint64_t i = 0; i < 50; ++i)
        feed.add_spike({i * 100, static_cast<std::int32_t>(i % 64), static_cast<std::int32_t>(i % 3), 50.0f}, 200000);
    feed.add_decoded({{1, 600, 1.5, -2.0}});
    feed.flush(6000);
    std::this_thread::sleep_for(std::chrono::milliseconds(250)); // two updates
    const nlohmann::json state = nlohmann::json::parse(
        http_get(view.port(), "/state.json").substr(http_get(view.port(), "/state.json").find("\r\n\r\n") + 4));
    EXPECT_EQ(state["spikes_total"].get<int>(), 50);
    EXPECT_EQ(state["frames"].get<int>(), 6000);
    EXPECT_EQ(state["unit_counts"]["0"].get<int>(), 17);
    EXPECT_EQ(state["latency"]["bins"][2].get<int>(), 50);
    EXPECT_FALSE(state["ended"].get<bool>());
    EXPECT_EQ(state["spikes"]["sample"].size(), 50u) << "the last 10 s of spikes";
    EXPECT_EQ(state["decoded"], nlohmann::json::parse("[[600, 1.5, -2.0]]"));

    // A client connecting now gets the hello and a backfill of the recent spikes; the end reaches it.
    std::string events;
    std::thread client([&] { events = http_get(view.port(), "/events", "\"ended\":true"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    view.finish("end_of_source");
    client.join();
    EXPECT_NE(events.find("text/event-stream"), std::string::npos);
    const std::size_t hello_at = events.find("event: hello"), backfill_at = events.find("\"backfill\":true");
    ASSERT_NE(hello_at, std::string::npos);
    ASSERT_NE(backfill_at, std::string::npos);
    EXPECT_LT(hello_at, backfill_at);
    EXPECT_NE(events.find("\"ended_by\":\"end_of_source\""), std::string::npos);
}

TEST_F(HttpViewTest, RefusesOtherMachinesUnlessAllowedAndABusyPort) {
    stream::LiveFeed feed;
    auto refused = [&](const stream::HttpViewSettings& settings, const std::string& says) {
        try {
            stream::HttpView view(settings, feed, hello(), *source_, overrun_);
            ADD_FAILURE() << settings.endpoint << " was accepted";
        } catch (const InputError& e) {
            EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
        }
    };
    refused({"0.0.0.0:0", false}, "--http-any");
    refused({"192.168.1.1:8080", false}, "--http-any");
    refused({"127.0.0.1", false}, "HOST:PORT");
    refused({"127.0.0.1:70000", false}, "0..65535");
    refused({"example.org:8080", false}, "not an IP address");
    stream::HttpView first({"127.0.0.1:0", false}, feed, hello(), *source_, overrun_);
    refused({"127.0.0.1:" + std::to_string(first.port()), false}, "cannot listen there");
    stream::HttpView any({"0.0.0.0:0", true}, feed, hello(), *source_, overrun_);
    EXPECT_GT(any.port(), 0);
}

TEST_F(HttpViewTest, StreamRefusesABusyPortBeforeWritingAnything) {
    stream::LiveFeed feed;
    stream::HttpView busy({"127.0.0.1:0", false}, feed, hello(), *source_, overrun_);
    const fs::path out = dir_ / "stream";
    const RunResult refused = run_cli({"stream", "--source", (shared_ / "sim" / "recording.bin").string(), "--out",
                                       out.string(), "--http", "127.0.0.1:" + std::to_string(busy.port())},
                                      dir_);
    EXPECT_EQ(refused.status, 2) << refused.err;
    EXPECT_NE(refused.err.find("cannot listen there"), std::string::npos) << refused.err;
    EXPECT_FALSE(fs::exists(out)) << "no output folder for a run that never started";
}

} // namespace
} // namespace spikeline
