#include "stream/publisher.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <vector>

namespace spikeline::stream {

std::int64_t realtime_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Publisher::Publisher(const std::string& endpoint, std::optional<PublisherSecurity> security) {
    require(security || endpoint_is_local(endpoint),
            "--publish " + endpoint +
                " listens beyond this machine: anyone who reaches it would read every spike. Bind a loopback "
                "address (tcp://127.0.0.1:PORT), or turn on CURVE with --curve-secret FILE --curve-clients DIR");
    if (security) {
        for (const std::string& key : security->allowed_clients) {
            std::string binary(32, '\0');
            require(zmq_z85_decode(reinterpret_cast<std::uint8_t*>(binary.data()), key.c_str()) != nullptr,
                    "not a CURVE public key: " + key);
            allowed_.push_back(binary);
        }
        // The handler must be bound before the server socket, or libzmq admits clients without asking.
        zmq::socket_t handler(context_, zmq::socket_type::rep);
        handler.set(zmq::sockopt::linger, 0);
        handler.bind("inproc://zeromq.zap.01");
        zap_thread_ = std::thread([this, h = std::move(handler)]() mutable { run_zap_handler(std::move(h)); });
        curve_ = true;
    }
    try {
        socket_ = zmq::socket_t(context_, zmq::socket_type::pub);
        // Room for minutes of spikes for a subscriber that stalls; beyond it ZeroMQ drops for that subscriber only.
        socket_.set(zmq::sockopt::sndhwm, 1'000'000);
        socket_.set(zmq::sockopt::linger, 2000);
        if (security) {
            socket_.set(zmq::sockopt::curve_server, true);
            socket_.set(zmq::sockopt::curve_secretkey, security->server.secret_key);
            socket_.set(zmq::sockopt::zap_domain, "spikeline");
        }
        socket_.bind(endpoint);
    } catch (const zmq::error_t& e) { // the ZAP thread must not outlive a publisher that never was
        stop_zap_.store(true);
        if (zap_thread_.joinable())
            zap_thread_.join();
        throw InputError("cannot publish on '" + endpoint + "': " + e.what() +
                         " (expected e.g. tcp://127.0.0.1:5556, on a free port)");
    }
}

Publisher::~Publisher() {
    socket_.close(); // lingers up to 2 s for subscribers still receiving the last messages
    stop_zap_.store(true);
    if (zap_thread_.joinable())
        zap_thread_.join();
}

void Publisher::run_zap_handler(zmq::socket_t handler) {
    // A request: version, request id, domain, address, identity, mechanism, credentials (CURVE: the client's 32-byte
    // public key). The reply: version, request id, status code, status text, user id, metadata.
    while (!stop_zap_.load()) {
        zmq::pollitem_t item{handler.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) <= 0)
            continue;
        std::vector<zmq::message_t> request;
        do {
            zmq::message_t part;
            if (!handler.recv(part, zmq::recv_flags::none))
                break;
            request.push_back(std::move(part));
        } while (handler.get(zmq::sockopt::rcvmore));
        const bool well_formed = request.size() >= 7 && request[0].to_string() == "1.0" &&
                                 request[5].to_string() == "CURVE" && request[6].size() == 32;
        const bool allowed =
            well_formed && std::find(allowed_.begin(), allowed_.end(), request[6].to_string()) != allowed_.end();
        (allowed ? admitted_ : denied_).fetch_add(1);
        const std::string request_id = request.size() >= 2 ? request[1].to_string() : "";
        const std::array<std::string, 6> reply = {
            "1.0", request_id, allowed ? "200" : "400", allowed ? "OK" : "client key not allowed", "", ""};
        for (std::size_t i = 0; i < reply.size(); ++i)
            handler.send(zmq::buffer(reply[i]),
                         i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
}

nlohmann::json Publisher::to_json() const {
    return {{"curve", curve_},
            {"clients_allowed", allowed_.size()},
            {"handshakes_admitted", admitted_.load()},
            {"handshakes_denied", denied_.load()}};
}

void Publisher::send(const SpikeMessage& message) {
    unsigned char bytes[kSpikeMessageBytes];
    encode_spike_message(message, bytes);
    send_bytes(bytes, sizeof bytes);
}

void Publisher::send(const VelocityMessage& message) {
    unsigned char bytes[kVelocityMessageBytes];
    encode_velocity_message(message, bytes);
    send_bytes(bytes, sizeof bytes);
}

void Publisher::send(const MotionMessage& message) {
    std::vector<unsigned char> bytes(motion_message_bytes(message.displacement_um.size()));
    encode_motion_message(message, bytes.data());
    send_bytes(bytes.data(), bytes.size());
}

void Publisher::send(const EndMessage& message) {
    unsigned char bytes[kEndMessageBytes];
    encode_end_message(message, bytes);
    send_bytes(bytes, sizeof bytes);
}

void Publisher::send_bytes(const unsigned char* bytes, std::size_t size) {
    socket_.send(zmq::const_buffer(bytes, size), zmq::send_flags::dontwait);
}

} // namespace spikeline::stream
