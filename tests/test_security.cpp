// Security of what comes in and goes out: sealed link frames (ChaCha20-Poly1305) and their replay window, key files
// and their permissions, a secure UDP source on loopback refusing a wrong key, replayed and plain frames, the CURVE
// publisher admitting only listed subscribers, listening sockets that stay on loopback without authentication, and
// manifest.json with `verify`'s check.
#include "stream/keys.hpp"
#include "stream/link_auth.hpp"
#include "stream/link_format.hpp"
#include "stream/publisher.hpp"
#include "stream/source.hpp"
#include "stream/udp.hpp"
#include "temp_dir_test.hpp"
#include "util/errors.hpp"
#include "util/manifest.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

namespace spikeline::stream {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Verdict = ReplayWindow::Verdict;

constexpr std::uint16_t kChannels = 4;
constexpr std::uint16_t kSamples = 30;

LinkKey key_of(unsigned char fill) {
    LinkKey key{};
    key.fill(fill);
    return key;
}

/// A link packet whose samples count up from first_sample (sequence k).
std::vector<unsigned char> plain_packet(std::uint64_t k) {
    LinkHeader header;
    header.stream_id = 1;
    header.n_channels = kChannels;
    header.samples_per_packet = kSamples;
    header.sequence = k;
    header.first_sample = k * kSamples;
    std::vector<std::int16_t> frames(kChannels * kSamples);
    for (std::size_t i = 0; i < frames.size(); ++i)
        frames[i] = static_cast<std::int16_t>(k * 7 + i);
    std::vector<unsigned char> packet;
    encode_link_packet(header, frames.data(), packet);
    return packet;
}

// ---------------------------------------------------------------------------------------------------------------
// Sealed frames and the replay window

TEST(SealedFrame, OpensToTheSamePacketAndAnyChangedByteIsForged) {
    const std::vector<unsigned char> packet = plain_packet(3);
    std::vector<unsigned char> sealed;
    seal_link_frame(key_of(1), 0xABCD, 1000, packet.data(), packet.size(), sealed);
    ASSERT_EQ(sealed.size(), packet.size() + kSealedOverheadBytes);
    // The samples do not appear in clear.
    EXPECT_EQ(std::search(sealed.begin(), sealed.end(), packet.begin() + 32, packet.begin() + 48), sealed.end());

    const unsigned char* opened = nullptr;
    std::size_t opened_bytes = 0;
    {
        LinkOpener opener(key_of(1));
        ASSERT_EQ(opener.open(sealed.data(), sealed.size(), opened, opened_bytes), SealedCheck::ok);
        ASSERT_EQ(opened_bytes, packet.size());
        EXPECT_TRUE(std::equal(packet.begin(), packet.end(), opened));
    }
    // Every byte matters: the magic and version are checked, the salt, counter, ciphertext and tag authenticated.
    for (std::size_t i = 0; i < sealed.size(); ++i) {
        std::vector<unsigned char> damaged = sealed;
        damaged[i] ^= 0x01;
        LinkOpener opener(key_of(1));
        const SealedCheck check = opener.open(damaged.data(), damaged.size(), opened, opened_bytes);
        const SealedCheck expected = i < 4   ? SealedCheck::not_sealed
                                     : i < 8 ? SealedCheck::bad_version
                                             : SealedCheck::forged;
        EXPECT_EQ(check, expected) << "byte " << i;
        EXPECT_EQ(opener.counters().authentic, 0u);
        EXPECT_EQ(opener.counters().rejected(), 1u);
    }
    LinkOpener other_key(key_of(2));
    EXPECT_EQ(other_key.open(sealed.data(), sealed.size(), opened, opened_bytes), SealedCheck::forged);
    EXPECT_EQ(other_key.open(packet.data(), packet.size(), opened, opened_bytes), SealedCheck::not_sealed);
    EXPECT_EQ(other_key.open(sealed.data(), kSealedOverheadBytes - 1, opened, opened_bytes), SealedCheck::too_short);
    EXPECT_EQ(other_key.counters().frames, 3u);
    EXPECT_EQ(other_key.counters().rejected(), 3u);
}

TEST(ReplayWindow, AcceptsEachCounterOnceInAnyOrderWithinTheWindowAndNothingOlder) {
    ReplayWindow window;
    EXPECT_EQ(window.accept(5000), Verdict::fresh);
    EXPECT_EQ(window.accept(5000), Verdict::repeated);
    EXPECT_EQ(window.accept(5002), Verdict::fresh);
    EXPECT_EQ(window.accept(5001), Verdict::fresh); // reordered, once
    EXPECT_EQ(window.accept(5001), Verdict::repeated);
    EXPECT_EQ(window.accept(4999), Verdict::fresh); // below the first, within the window
    EXPECT_EQ(window.accept(5002 - ReplayWindow::kWindow), Verdict::stale);
    EXPECT_EQ(window.check(5003), Verdict::fresh);
    EXPECT_EQ(window.check(5003), Verdict::fresh); // check() records nothing
    // A jump far ahead forgets the old window: everything before the new one is stale, its slots reusable.
    EXPECT_EQ(window.accept(5002 + 3 * ReplayWindow::kWindow), Verdict::fresh);
    EXPECT_EQ(window.accept(5002), Verdict::stale);
    const std::uint64_t top = 5002 + 3 * ReplayWindow::kWindow;
    EXPECT_EQ(window.accept(top - ReplayWindow::kWindow + 1), Verdict::fresh);
    EXPECT_EQ(window.accept(top - ReplayWindow::kWindow), Verdict::stale);
    // Moving ahead step by step clears the slots it reuses: a counter one window later is fresh.
    ReplayWindow stepping;
    for (std::uint64_t c = 0; c < 3 * ReplayWindow::kWindow; ++c)
        ASSERT_EQ(stepping.accept(c), Verdict::fresh) << c;
    for (std::uint64_t c = 2 * ReplayWindow::kWindow; c < 3 * ReplayWindow::kWindow; ++c)
        ASSERT_EQ(stepping.accept(c), Verdict::repeated) << c;
}

TEST(SealedFrame, AForgeryCarryingAFutureCounterDoesNotMoveTheWindow) {
    LinkOpener opener(key_of(1));
    const std::vector<unsigned char> packet = plain_packet(0);
    std::vector<unsigned char> sealed;
    const unsigned char* opened = nullptr;
    std::size_t n = 0;
    seal_link_frame(key_of(9), 1, 1'000'000, packet.data(), packet.size(), sealed); // the attacker's key
    EXPECT_EQ(opener.open(sealed.data(), sealed.size(), opened, n), SealedCheck::forged);
    seal_link_frame(key_of(1), 1, 10, packet.data(), packet.size(), sealed);
    EXPECT_EQ(opener.open(sealed.data(), sealed.size(), opened, n), SealedCheck::ok);
}

// ---------------------------------------------------------------------------------------------------------------
// Key files

class KeyFileTest : public spikeline::testing::TempDirTest {};

TEST_F(KeyFileTest, LinkKeyIsPrivateAndRefusedOnceOthersMayReadIt) {
    const fs::path path = dir_ / "link.key";
    write_private_file(path, new_link_key_text());
    struct stat status {};
    ASSERT_EQ(::stat(path.c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 0777, 0600u);
    const LinkKey key = read_link_key(path);
    EXPECT_NE(key, LinkKey{});
    EXPECT_THROW(write_private_file(path, new_link_key_text()), InputError); // never replaced
    EXPECT_EQ(read_link_key(path), key);
    for (const mode_t mode : {0640, 0604, 0620, 0660}) {
        ::chmod(path.c_str(), mode);
        try {
            read_link_key(path);
            ADD_FAILURE() << "mode " << std::oct << mode << " accepted";
        } catch (const InputError& error) {
            EXPECT_NE(std::string(error.what()).find("chmod 600"), std::string::npos) << error.what();
        }
    }
    const fs::path short_key = dir_ / "short.key";
    write_private_file(short_key, "00ff\n");
    EXPECT_THROW(read_link_key(short_key), InputError);
    EXPECT_THROW(read_link_key(dir_ / "absent.key"), InputError);
}

TEST_F(KeyFileTest, CurveFilesRoundTripAndTheClientsFolderNeedsPublicKeys) {
    const CurveKeyPair keys = new_curve_key_pair();
    write_private_file(dir_ / "server", curve_secret_file_text(keys));
    const CurveKeyPair read = read_curve_secret(dir_ / "server");
    EXPECT_EQ(read.public_key, keys.public_key);
    EXPECT_EQ(read.secret_key, keys.secret_key);
    CurveKeyPair mismatched = keys;
    mismatched.public_key = new_curve_key_pair().public_key;
    write_private_file(dir_ / "mismatched", curve_secret_file_text(mismatched));
    EXPECT_THROW(read_curve_secret(dir_ / "mismatched"), InputError);

    fs::create_directories(dir_ / "clients");
    EXPECT_THROW(read_curve_clients(dir_ / "clients"), InputError); // empty
    write_private_file(dir_ / "clients" / "a.pub", curve_public_file_text(keys.public_key));
    std::ofstream(dir_ / "clients" / "b.pub") << mismatched.public_key << "\n"; // a bare Z85 line
    std::ofstream(dir_ / "clients" / "notes.txt") << "not a key\n";             // ignored: not .pub
    const std::vector<std::string> clients = read_curve_clients(dir_ / "clients");
    EXPECT_EQ(clients.size(), 2u);
    std::ofstream(dir_ / "clients" / "c.pub") << "garbage\n";
    EXPECT_THROW(read_curve_clients(dir_ / "clients"), InputError);

    // '{' is a Z85 character too (one key in 85 starts with it): a bare key starting with it is still a key.
    std::string brace_key;
    for (int attempt = 0; attempt < 100000 && brace_key.empty(); ++attempt) {
        const std::string candidate = new_curve_key_pair().public_key;
        if (candidate.front() == '{')
            brace_key = candidate;
    }
    ASSERT_FALSE(brace_key.empty());
    std::ofstream(dir_ / "brace.pub") << brace_key << "\n";
    EXPECT_EQ(read_curve_public(dir_ / "brace.pub"), brace_key);
}

TEST(ListeningSockets, OnlyLoopbackCountsAsLocal) {
    EXPECT_TRUE(endpoint_is_local("tcp://127.0.0.1:5556"));
    EXPECT_TRUE(endpoint_is_local("tcp://127.5.0.1:5556"));
    EXPECT_TRUE(endpoint_is_local("tcp://localhost:5556"));
    EXPECT_TRUE(endpoint_is_local("tcp://[::1]:5556"));
    EXPECT_TRUE(endpoint_is_local("ipc:///tmp/spikes"));
    EXPECT_FALSE(endpoint_is_local("tcp://*:5556"));
    EXPECT_FALSE(endpoint_is_local("tcp://0.0.0.0:5556"));
    EXPECT_FALSE(endpoint_is_local("tcp://10.1.2.3:5556"));
    EXPECT_FALSE(endpoint_is_local("tcp://eth0:5556"));
    EXPECT_FALSE(endpoint_is_local("pgm://239.0.0.1:5556"));
    EXPECT_TRUE(is_loopback(parse_udp_address("udp://127.0.0.1:5000")));
    EXPECT_TRUE(is_loopback(parse_udp_address("udp://:5000")));
    EXPECT_FALSE(is_loopback(parse_udp_address("udp://0.0.0.0:5000")));
}

TEST(ListeningSockets, PublisherBeyondLoopbackNeedsCurve) {
    try {
        Publisher publisher("tcp://0.0.0.0:5556");
        FAIL() << "bound beyond loopback without CURVE";
    } catch (const InputError& error) {
        EXPECT_NE(std::string(error.what()).find("--curve-secret"), std::string::npos) << error.what();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A secure UDP source on loopback

int test_port(int offset) {
    return 21000 + static_cast<int>(::getpid() % 19000) * 2 % 38000 + offset;
}

class SecureLinkTest : public spikeline::testing::TempDirTest {
protected:
    void SetUp() override {
        TempDirTest::SetUp();
        key_file_ = dir_ / "link.key";
        write_private_file(key_file_, new_link_key_text());
        key_ = read_link_key(key_file_);
    }

    SourceOptions options(int port) const {
        SourceOptions o;
        o.source = "udp://127.0.0.1:" + std::to_string(port);
        o.n_channels = kChannels;
        o.sample_rate = 30000;
        o.key_file = key_file_;
        return o;
    }

    /// Runs the source while send() sends datagrams, then stops it; returns its counters and the frames it delivered
    /// (gaps excluded).
    static std::pair<nlohmann::json, std::uint64_t> receive(LiveSource& source, const std::function<void()>& send) {
        std::atomic<bool> stop{false};
        std::atomic<std::uint64_t> frames{0};
        std::thread reader([&]() {
            source.run(stop, [&](SourceBlock&& block) {
                if (!block.gap)
                    frames += block.n_frames;
            });
        });
        send();
        std::this_thread::sleep_for(200ms);
        stop.store(true);
        reader.join();
        return {source.counters(), frames.load()};
    }

    fs::path key_file_;
    LinkKey key_{};
};

TEST_F(SecureLinkTest, WrongKeyGetsNoSampleAcceptedAndEveryFrameCountedAsRejected) {
    const int port = test_port(0);
    std::unique_ptr<LiveSource> source = open_live_source(options(port));
    const UdpSocket sender = UdpSocket::connect_sender(parse_udp_address("udp://127.0.0.1:" + std::to_string(port)));
    LinkKey wrong = key_;
    wrong[0] ^= 1;
    constexpr std::uint64_t kPackets = 200;
    const auto [counters, frames] = receive(*source, [&]() {
        LinkSealer sealer(wrong, 1'000'000);
        std::vector<unsigned char> sealed;
        for (std::uint64_t k = 0; k < kPackets; ++k) {
            const std::vector<unsigned char> packet = plain_packet(k);
            sealer.seal(packet.data(), packet.size(), sealed);
            ASSERT_TRUE(sender.send(sealed.data(), sealed.size()));
        }
        for (std::uint64_t k = 0; k < 10; ++k) { // plain packets: not sealed, as rejected
            const std::vector<unsigned char> packet = plain_packet(kPackets + k);
            ASSERT_TRUE(sender.send(packet.data(), packet.size()));
        }
    });
    EXPECT_EQ(frames, 0u);
    EXPECT_EQ(counters["frames"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(counters["datagrams"].get<std::uint64_t>(), 0u); // nothing reached the decoder
    EXPECT_TRUE(counters["secure"].get<bool>());
    const nlohmann::json& sealed = counters["authentication"];
    EXPECT_EQ(sealed["frames"].get<std::uint64_t>(), kPackets + 10);
    EXPECT_EQ(sealed["forged"].get<std::uint64_t>(), kPackets);
    EXPECT_EQ(sealed["not_sealed"].get<std::uint64_t>(), 10u);
    EXPECT_EQ(sealed["authentic"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(counters["rejected"].get<std::uint64_t>(), kPackets + 10);
}

TEST_F(SecureLinkTest, ReplayedAndStaleFramesAddNoSampleAndAreEachCountedAsRejected) {
    const int port = test_port(2);
    std::unique_ptr<LiveSource> source = open_live_source(options(port));
    const UdpSocket sender = UdpSocket::connect_sender(parse_udp_address("udp://127.0.0.1:" + std::to_string(port)));
    constexpr std::uint64_t kPackets = 100;
    const auto [counters, frames] = receive(*source, [&]() {
        LinkSealer sealer(key_, 50'000);
        std::vector<std::vector<unsigned char>> captured;
        for (std::uint64_t k = 0; k < kPackets; ++k) {
            const std::vector<unsigned char> packet = plain_packet(k);
            captured.emplace_back();
            sealer.seal(packet.data(), packet.size(), captured.back());
            ASSERT_TRUE(sender.send(captured.back().data(), captured.back().size()));
        }
        std::this_thread::sleep_for(100ms);
        for (const auto& frame : captured) // an attacker replays what it captured
            ASSERT_TRUE(sender.send(frame.data(), frame.size()));
        // An authentic frame older than the window (e.g. from an earlier session): stale.
        std::vector<unsigned char> old;
        const std::vector<unsigned char> packet = plain_packet(kPackets);
        seal_link_frame(key_, 7, 50'000 + kPackets - ReplayWindow::kWindow - 1, packet.data(), packet.size(), old);
        ASSERT_TRUE(sender.send(old.data(), old.size()));
    });
    EXPECT_EQ(frames, kPackets * kSamples); // the originals only
    EXPECT_EQ(counters["frames"].get<std::uint64_t>(), kPackets * kSamples);
    EXPECT_EQ(counters["datagrams"].get<std::uint64_t>(), kPackets);
    EXPECT_EQ(counters["duplicates"].get<std::uint64_t>(), 0u); // stopped before the decoder
    const nlohmann::json& sealed = counters["authentication"];
    EXPECT_EQ(sealed["authentic"].get<std::uint64_t>(), kPackets);
    EXPECT_EQ(sealed["repeated"].get<std::uint64_t>(), kPackets);
    EXPECT_EQ(sealed["stale"].get<std::uint64_t>(), 1u);
    EXPECT_EQ(counters["rejected"].get<std::uint64_t>(), kPackets + 1);
}

TEST_F(SecureLinkTest, PlainFramesNeedInsecureAndInsecureNeedsLoopback) {
    SourceOptions o = options(test_port(4));
    o.key_file.clear();
    try {
        open_live_source(o);
        FAIL() << "a UDP source opened without --key or --insecure";
    } catch (const InputError& error) {
        EXPECT_NE(std::string(error.what()).find("--key FILE"), std::string::npos) << error.what();
    }
    o.insecure = true;
    o.source = "udp://0.0.0.0:" + std::to_string(test_port(4));
    EXPECT_THROW(open_live_source(o), InputError);
    o.key_file = key_file_; // both
    o.source = "udp://127.0.0.1:" + std::to_string(test_port(4));
    EXPECT_THROW(open_live_source(o), InputError);
    ::chmod(key_file_.c_str(), 0644);
    o.insecure = false;
    EXPECT_THROW(open_live_source(o), InputError);
}

// ---------------------------------------------------------------------------------------------------------------
// The CURVE publisher

struct CurveSubscriber {
    CurveSubscriber(const std::string& endpoint, const std::string& server_key, const CurveKeyPair* own)
        : socket(context, zmq::socket_type::sub) {
        if (own) {
            socket.set(zmq::sockopt::curve_serverkey, server_key);
            socket.set(zmq::sockopt::curve_publickey, own->public_key);
            socket.set(zmq::sockopt::curve_secretkey, own->secret_key);
        }
        socket.set(zmq::sockopt::subscribe, "");
        socket.set(zmq::sockopt::rcvtimeo, 100);
        socket.connect(endpoint);
        thread = std::thread([this]() {
            const auto give_up = std::chrono::steady_clock::now() + 5s;
            while (!done && std::chrono::steady_clock::now() < give_up) {
                zmq::message_t message;
                if (!socket.recv(message))
                    continue;
                const auto* bytes = static_cast<const unsigned char*>(message.data());
                SpikeMessage spike;
                EndMessage end;
                if (decode_spike_message(bytes, message.size(), spike))
                    spikes.push_back(spike);
                else if (decode_end_message(bytes, message.size(), end))
                    ended = true;
            }
        });
    }
    void join() { thread.join(); }

    zmq::context_t context{1};
    zmq::socket_t socket;
    std::thread thread;
    std::vector<SpikeMessage> spikes;
    bool ended = false;
    std::atomic<bool> done{false};
};

TEST(CurvePublisher, OnlyAnAllowedSubscriberReceivesAndItReceivesEveryEvent) {
    const CurveKeyPair server = new_curve_key_pair(), allowed = new_curve_key_pair(), other = new_curve_key_pair();
    const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(test_port(6));
    constexpr std::uint64_t kSpikes = 500;
    std::optional<Publisher> publisher;
    publisher.emplace(endpoint, PublisherSecurity{server, {allowed.public_key}});
    CurveSubscriber admitted(endpoint, server.public_key, &allowed);
    CurveSubscriber unlisted(endpoint, server.public_key, &other);
    CurveSubscriber plain(endpoint, server.public_key, nullptr);
    std::this_thread::sleep_for(700ms); // handshakes done, the subscription reaches the publisher
    for (std::uint64_t i = 0; i < kSpikes; ++i) {
        SpikeMessage spike;
        spike.sample = 100 * i;
        spike.channel = static_cast<std::int32_t>(i % 64);
        spike.unit = static_cast<std::int32_t>(i % 5);
        publisher->send(spike);
    }
    EndMessage end;
    end.spikes = kSpikes;
    publisher->send(end);
    std::this_thread::sleep_for(500ms);
    const nlohmann::json stats = publisher->to_json();
    for (CurveSubscriber* s : {&admitted, &unlisted, &plain})
        s->done = true;
    for (CurveSubscriber* s : {&admitted, &unlisted, &plain})
        s->join();
    publisher.reset();

    ASSERT_EQ(admitted.spikes.size(), kSpikes);
    for (std::uint64_t i = 0; i < kSpikes; ++i)
        EXPECT_EQ(admitted.spikes[i].sample, 100 * i);
    EXPECT_TRUE(admitted.ended);
    EXPECT_TRUE(unlisted.spikes.empty());
    EXPECT_FALSE(unlisted.ended);
    EXPECT_TRUE(plain.spikes.empty());
    EXPECT_FALSE(plain.ended);
    EXPECT_TRUE(stats["curve"].get<bool>());
    EXPECT_GE(stats["handshakes_admitted"].get<std::uint64_t>(), 1u);
    EXPECT_GE(stats["handshakes_denied"].get<std::uint64_t>(), 1u); // the unlisted key (plain ones fail earlier)
}

// ---------------------------------------------------------------------------------------------------------------
// manifest.json

class ManifestTest : public spikeline::testing::TempDirTest {};

void write_file(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
}

TEST_F(ManifestTest, Sha256OfKnownInputs) {
    write_file(dir_ / "empty", "");
    write_file(dir_ / "abc", "abc");
    EXPECT_EQ(sha256_file(dir_ / "empty"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_file(dir_ / "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    write_file(dir_ / "three_megabytes", std::string(3'000'000, 'a')); // read in three pieces
    EXPECT_EQ(sha256_file(dir_ / "three_megabytes"), "2a152c894398719c0570f83fac34ac03a0f6e8e474b995c2403aa5434f7b9dd4");
}

TEST_F(ManifestTest, ListsWhatTheRunWroteAndVerifyNamesChangedAndMissingFiles) {
    const fs::path out = dir_ / "out";
    write_file(out / "left_by_an_earlier_run.txt", "old");
    const OutputManifest manifest(out);
    write_file(out / "spike_times.npy", "times");
    write_file(out / "sub" / "more.bin", std::string(3 << 20, 'x')); // several read buffers
    write_file(out / "info.json.tmp99999999", "a temporary is no output");
    EXPECT_EQ(manifest.write("detect"), 2u);
    const nlohmann::json json = nlohmann::json::parse(std::ifstream(out / kManifestName));
    EXPECT_EQ(json["command"], "detect");
    ASSERT_EQ(json["files"].size(), 2u);
    EXPECT_EQ(json["files"][0]["path"], "spike_times.npy");
    EXPECT_EQ(json["files"][1]["path"], "sub/more.bin");
    EXPECT_EQ(json["files"][1]["bytes"], 3u << 20);

    ManifestCheck check = verify_manifest(out);
    EXPECT_TRUE(check.ok());
    EXPECT_EQ(check.unchanged.size(), 2u);
    EXPECT_EQ(check.unlisted.size(), 1u); // the earlier run's file: reported, not vouched for

    write_file(out / "sub" / "more.bin", std::string(3 << 20, 'x').replace(2 << 20, 1, "y")); // same size
    check = verify_manifest(out);
    EXPECT_FALSE(check.ok());
    EXPECT_EQ(check.changed, std::vector<std::string>{"sub/more.bin"});
    fs::remove(out / "spike_times.npy");
    check = verify_manifest(out);
    EXPECT_EQ(check.missing, std::vector<std::string>{"spike_times.npy"});
}

TEST_F(ManifestTest, AManifestPointingOutsideItsFolderOrDamagedIsRefused) {
    EXPECT_THROW(verify_manifest(dir_), InputError); // none
    write_file(dir_ / kManifestName, R"({"format": "spikeline manifest", "files": [
        {"path": "../secret", "bytes": 1, "sha256": "00"}]})");
    EXPECT_THROW(verify_manifest(dir_), InputError);
    write_file(dir_ / kManifestName, R"({"format": "spikeline manifest", "files": [{"path": "a"}]})");
    EXPECT_THROW(verify_manifest(dir_), InputError);
    write_file(dir_ / kManifestName, "{ not json");
    EXPECT_THROW(verify_manifest(dir_), InputError);
}

} // namespace
} // namespace spikeline::stream
