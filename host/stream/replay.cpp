#include "stream/replay.hpp"

#include "stream/keys.hpp"
#include "stream/link_auth.hpp"
#include "stream/link_format.hpp"
#include "stream/udp.hpp"
#include "util/errors.hpp"

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <pthread.h>
#include <random>
#include <thread>

namespace spikeline::stream {
namespace {

void require_probability(double p, const char* option) {
    require(std::isfinite(p) && p >= 0 && p <= 1, std::string(option) + " must be a probability in [0, 1]");
}

struct Packet {
    std::vector<unsigned char> bytes;
    std::uint64_t first_sample = 0;
};

} // namespace

nlohmann::json run_replay(const ReplayOptions& options, const std::atomic<bool>& stop) {
    require_probability(options.loss, "--loss");
    require_probability(options.reorder, "--reorder");
    require_probability(options.duplicate, "--duplicate");
    require_probability(options.corrupt, "--corrupt");
    require(std::isfinite(options.speed) && options.speed >= 0, "--speed must be >= 0 (0: as fast as possible)");
    require(std::isfinite(options.packet_ms) && options.packet_ms > 0, "--packet-ms must be positive");
    require(options.input.source != "-" && !is_udp_url(options.input.source),
            "replay plays a recording file (SpikeGLX, raw or Open Ephys), not " + options.input.source);
    auto open_input = [&options]() -> std::unique_ptr<io::RecordingSource> {
        io::OpenOptions open;
        open.n_channels = options.input.n_channels;
        open.sample_rate = options.input.sample_rate;
        open.microvolts_per_bit = options.input.microvolts_per_bit;
        open.open_ephys_stream = options.input.open_ephys_stream;
        open.allow_truncated = options.input.allow_truncated;
        return io::open_recording(options.input.source, open);
    };
    std::unique_ptr<io::RecordingSource> recording = open_input();
    const io::RecordingInfo info = recording->info();
    const UdpAddress destination = parse_udp_address(options.to);
    require(!(options.insecure && !options.key_file.empty()), "give either --key FILE or --insecure, not both");
    require(options.insecure || !options.key_file.empty(),
            "replay needs --key FILE, the link key the receiver (stream --key FILE) holds (make one with spikeline "
            "keygen --out FILE), or --insecure for plain frames to a loopback address");
    require(!options.insecure || is_loopback(destination),
            "--insecure sends plain frames only to a loopback address (udp://127.0.0.1:PORT), not to " + options.to +
                ": use --key FILE");
    std::optional<LinkSealer> sealer;
    if (!options.key_file.empty()) // counters start at the wall clock: a later run continues above this one's
        sealer.emplace(read_link_key(options.key_file),
                       static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                      std::chrono::system_clock::now().time_since_epoch())
                                                      .count()));
    const std::size_t sealing_bytes = sealer ? kSealedOverheadBytes : 0;
    const auto samples_per_packet =
        static_cast<std::size_t>(std::max(1LL, std::llround(options.packet_ms * info.sample_rate / 1000.0)));
    require(info.n_channels <= 65535 && samples_per_packet <= 65535 &&
                link_packet_bytes(static_cast<std::size_t>(info.n_channels), samples_per_packet) + sealing_bytes <=
                    kMaxDatagramBytes,
            "a packet of " + std::to_string(samples_per_packet) + " samples x " + std::to_string(info.n_channels) +
                " channels does not fit one UDP datagram (65507 bytes): use a smaller --packet-ms");
    const UdpSocket socket = UdpSocket::connect_sender(destination);
    require(options.realtime_priority >= 0 && options.realtime_priority <= 99, "--rt-priority must be in 0..99");
    std::string priority_error;
    if (options.realtime_priority > 0) {
        sched_param parameters{};
        parameters.sched_priority = options.realtime_priority;
        if (const int error = ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &parameters); error != 0)
            priority_error = std::string("SCHED_FIFO refused: ") + std::strerror(error);
    }
    // Looping continues the link's sample count, as a long recording would (for soak runs with a short file).
    std::uint64_t max_frames =
        options.loops == 0 ? std::numeric_limits<std::uint64_t>::max() : info.n_frames * options.loops;
    std::uint64_t passes = 1;
    if (options.duration_s > 0)
        max_frames = std::min<std::uint64_t>(
            max_frames, static_cast<std::uint64_t>(std::llround(options.duration_s * info.sample_rate)));

    std::mt19937_64 random(options.seed);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::vector<std::int16_t> frames(samples_per_packet * static_cast<std::size_t>(info.n_channels));
    std::optional<Packet> delayed; // a packet held back to go out after the next one
    std::vector<unsigned char> sealed;
    std::uint64_t packets = 0, sent = 0, lost = 0, reordered = 0, duplicated = 0, corrupted = 0, late = 0, done = 0;
    std::uint64_t failed_sends = 0;
    nlohmann::json lost_first_samples = nlohmann::json::array();
    const auto start = std::chrono::steady_clock::now();

    auto transmit = [&](Packet& packet) {
        if (options.corrupt > 0 && uniform(random) < options.corrupt) {
            packet.bytes[static_cast<std::size_t>(uniform(random) * static_cast<double>(packet.bytes.size())) %
                         packet.bytes.size()] ^= 0x5A;
            ++corrupted;
        }
        const int copies = options.duplicate > 0 && uniform(random) < options.duplicate ? 2 : 1;
        duplicated += static_cast<std::uint64_t>(copies - 1);
        for (int i = 0; i < copies; ++i) {
            if (socket.send(packet.bytes.data(), packet.bytes.size()))
                ++sent;
            else
                ++failed_sends;
        }
    };

    while (done < max_frames && !stop.load()) {
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(samples_per_packet, max_frames - done));
        std::size_t n = recording->read(frames.data(), want);
        if (n == 0 && (options.loops == 0 || passes < options.loops)) {
            recording = open_input();
            ++passes;
            n = recording->read(frames.data(), want);
        }
        if (n == 0)
            break;
        LinkHeader header;
        header.stream_id = options.stream_id;
        header.n_channels = static_cast<std::uint16_t>(info.n_channels);
        header.samples_per_packet = static_cast<std::uint16_t>(n);
        header.sequence = packets;
        header.first_sample = options.first_sample + done;
        Packet packet;
        packet.first_sample = header.first_sample;
        encode_link_packet(header, frames.data(), packet.bytes);
        if (sealer) {
            sealer->seal(packet.bytes.data(), packet.bytes.size(), sealed);
            packet.bytes.swap(sealed);
        }
        ++packets;
        done += n;
        // A headstage sends a packet once its last sample exists.
        if (options.speed > 0) {
            const auto due = start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                         static_cast<double>(done) / info.sample_rate / options.speed * 1e9));
            const auto now = std::chrono::steady_clock::now();
            if (now > due + std::chrono::milliseconds(1))
                ++late;
            else
                std::this_thread::sleep_until(due);
        }
        if (options.loss > 0 && uniform(random) < options.loss) {
            ++lost;
            lost_first_samples.push_back(packet.first_sample);
            continue;
        }
        if (!delayed && options.reorder > 0 && uniform(random) < options.reorder) {
            delayed = std::move(packet);
            ++reordered;
            continue;
        }
        transmit(packet);
        if (delayed) {
            transmit(*delayed);
            delayed.reset();
        }
    }
    if (delayed)
        transmit(*delayed);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return {{"packets", packets},
            {"sent", sent},
            {"failed_sends", failed_sends},
            {"lost", lost},
            {"reordered", reordered},
            {"duplicated", duplicated},
            {"corrupted", corrupted},
            {"late_packets", late},
            {"frames", done},
            {"passes", passes},
            {"samples_per_packet", samples_per_packet},
            {"n_channels", info.n_channels},
            {"sample_rate", info.sample_rate},
            {"wall_seconds", wall},
            {"realtime_priority_error", priority_error},
            {"sealed", sealer.has_value()},
            {"lost_first_samples", lost_first_samples}};
}

} // namespace spikeline::stream
