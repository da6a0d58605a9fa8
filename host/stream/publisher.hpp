#pragma once
// The ZeroMQ PUB socket of `spikeline stream --publish`: one message per spike (SPK1), decoded bin (VEL1), motion
// estimate (MOT1) and the end of the stream (END1), framed as spike_message.hpp says. Sends never block: a stalled
// subscriber loses messages, the stream does not wait for it.
#include "stream/spike_message.hpp"

#include <cstdint>
#include <memory>
#include <string>

#include <zmq.hpp>

namespace spikeline::stream {

/// CLOCK_REALTIME in ns: the host time stamp of published messages (comparable across machines with synced clocks).
std::int64_t realtime_ns();

class Publisher {
public:
    /// Binds a PUB socket to endpoint (e.g. tcp://127.0.0.1:5556); throws InputError when it cannot.
    explicit Publisher(const std::string& endpoint);

    void send(const SpikeMessage& message);
    void send(const VelocityMessage& message);
    void send(const MotionMessage& message);
    void send(const EndMessage& message);

private:
    void send_bytes(const unsigned char* bytes, std::size_t size);

    zmq::context_t context_{1};
    zmq::socket_t socket_;
};

} // namespace spikeline::stream
