#pragma once
// UDP endpoints for the implant link: udp://HOST:PORT addresses, a receiving socket and a sending one.
#include <cstddef>
#include <cstdint>
#include <string>

#include <netinet/in.h>

namespace spikeline::stream {

/// An IPv4 address and port parsed from udp://HOST:PORT (HOST: a dotted address or a name; empty: 127.0.0.1).
struct UdpAddress {
    std::string host;
    std::uint16_t port = 0;
    sockaddr_in resolved{};
};

/// Parses and resolves udp://HOST:PORT; throws InputError naming the address and the expected form.
UdpAddress parse_udp_address(const std::string& url);

/// True when text starts with udp://.
bool is_udp_url(const std::string& text);

/// Whether the address is on the loopback network (127.0.0.0/8): datagrams to or from it never leave this machine.
bool is_loopback(const UdpAddress& address);

class UdpSocket {
public:
    /// Receiver bound to address, with a receive buffer of up to receive_buffer_bytes (what the kernel allows). The
    /// port is bound exclusively: when another process listens on it, throws InputError saying so.
    static UdpSocket bind_receiver(const UdpAddress& address, int receive_buffer_bytes);
    /// Sender connected to address.
    static UdpSocket connect_sender(const UdpAddress& address);

    UdpSocket(UdpSocket&& other) noexcept;
    UdpSocket& operator=(UdpSocket&& other) noexcept;
    UdpSocket(const UdpSocket&) = delete;
    UdpSocket& operator=(const UdpSocket&) = delete;
    ~UdpSocket();

    /// Waits up to timeout_ms for a datagram; false on timeout or interruption by a signal.
    bool wait_readable(int timeout_ms) const;
    /// Receives one datagram without waiting; returns its size, or -1 when none is queued.
    long receive(unsigned char* buffer, std::size_t capacity) const;
    /// Sends one datagram; false when the kernel refused it (e.g. no receiver on loopback yet).
    bool send(const unsigned char* bytes, std::size_t size) const;
    /// The receive buffer the kernel granted, in bytes.
    int receive_buffer_bytes() const;

private:
    explicit UdpSocket(int fd) : fd_(fd) {}
    int fd_ = -1;
};

} // namespace spikeline::stream
