#include "stream/publisher.hpp"

#include "util/errors.hpp"

#include <chrono>
#include <vector>

namespace spikeline::stream {

std::int64_t realtime_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Publisher::Publisher(const std::string& endpoint) : socket_(context_, zmq::socket_type::pub) {
    // Room for minutes of spikes for a subscriber that stalls; beyond it ZeroMQ drops for that subscriber only.
    socket_.set(zmq::sockopt::sndhwm, 1'000'000);
    socket_.set(zmq::sockopt::linger, 2000);
    try {
        socket_.bind(endpoint);
    } catch (const zmq::error_t& e) {
        throw InputError("cannot publish on '" + endpoint + "': " + e.what() +
                         " (expected e.g. tcp://127.0.0.1:5556, on a free port)");
    }
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
