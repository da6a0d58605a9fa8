#pragma once
// The ZeroMQ PUB socket of `spikeline stream --publish`: one message per spike (SPK1), decoded bin (VEL1), motion
// estimate (MOT1) and the end of the stream (END1), framed as spike_message.hpp says. Sends never block: a stalled
// subscriber loses messages, the stream does not wait for it. With CURVE keys, the socket is a CURVE server and a ZAP
// handler (libzmq's ZAP protocol, RFC 27, on inproc://zeromq.zap.01) admits only the listed client public keys: any
// other subscriber's handshake fails and it receives nothing.
#include "stream/keys.hpp"
#include "stream/spike_message.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

namespace spikeline::stream {

/// CLOCK_REALTIME in ns: the host time stamp of published messages (comparable across machines with synced clocks).
std::int64_t realtime_ns();

struct PublisherSecurity {
    CurveKeyPair server;                      ///< the publisher's key pair (subscribers hold its public key)
    std::vector<std::string> allowed_clients; ///< Z85 public keys of the subscribers admitted
};

class Publisher {
public:
    /// Binds a PUB socket to endpoint (e.g. tcp://127.0.0.1:5556); throws InputError when it cannot. Without
    /// security the endpoint must stay on this machine (endpoint_is_local), else InputError.
    explicit Publisher(const std::string& endpoint, std::optional<PublisherSecurity> security = std::nullopt);
    ~Publisher();
    Publisher(const Publisher&) = delete;
    Publisher& operator=(const Publisher&) = delete;

    void send(const SpikeMessage& message);
    void send(const VelocityMessage& message);
    void send(const MotionMessage& message);
    void send(const EndMessage& message);

    /// {curve, clients_allowed, handshakes_admitted, handshakes_denied}
    nlohmann::json to_json() const;

private:
    void send_bytes(const unsigned char* bytes, std::size_t size);
    void run_zap_handler(zmq::socket_t handler);

    zmq::context_t context_{1};
    std::vector<std::string> allowed_; ///< 32-byte binary keys
    std::atomic<bool> stop_zap_{false};
    std::atomic<std::uint64_t> admitted_{0}, denied_{0};
    std::thread zap_thread_;
    zmq::socket_t socket_;
    bool curve_ = false;
};

} // namespace spikeline::stream
