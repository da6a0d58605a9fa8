#include "stream/udp.hpp"

#include "util/errors.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace spikeline::stream {

bool is_udp_url(const std::string& text) {
    return text.rfind("udp://", 0) == 0;
}

bool is_loopback(const UdpAddress& address) {
    return (ntohl(address.resolved.sin_addr.s_addr) >> 24) == 127;
}

UdpAddress parse_udp_address(const std::string& url) {
    const std::string form = " (expected udp://HOST:PORT, e.g. udp://127.0.0.1:5000)";
    require(is_udp_url(url), "'" + url + "' is not a UDP address" + form);
    const std::string rest = url.substr(6);
    const auto colon = rest.rfind(':');
    require(colon != std::string::npos, "'" + url + "' has no port" + form);
    UdpAddress address;
    address.host = rest.substr(0, colon);
    if (address.host.empty())
        address.host = "127.0.0.1";
    const std::string port_text = rest.substr(colon + 1);
    unsigned port = 0;
    const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    require(error == std::errc() && end == port_text.data() + port_text.size() && port >= 1 && port <= 65535,
            "'" + url + "': the port must be a number in 1..65535" + form);
    address.port = static_cast<std::uint16_t>(port);
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* found = nullptr;
    const int status = ::getaddrinfo(address.host.c_str(), nullptr, &hints, &found);
    require(status == 0 && found != nullptr,
            "'" + url + "': cannot resolve host '" + address.host + "' (" + ::gai_strerror(status) + ")");
    std::memcpy(&address.resolved, found->ai_addr, sizeof(sockaddr_in));
    ::freeaddrinfo(found);
    address.resolved.sin_port = htons(address.port);
    return address;
}

UdpSocket UdpSocket::bind_receiver(const UdpAddress& address, int receive_buffer_bytes) {
    UdpSocket socket(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    require(socket.fd_ >= 0, std::string("cannot create a UDP socket: ") + std::strerror(errno));
    // A burst of a few milliseconds must fit while the reader thread is descheduled.
    ::setsockopt(socket.fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes);
    // No SO_REUSEADDR / SO_REUSEPORT: a second listener on the port must fail, not silently share or steal the
    // datagrams (UDP has no TIME_WAIT, so a restarted stream can bind again at once).
    const std::string where = "udp://" + address.host + ":" + std::to_string(address.port);
    if (::bind(socket.fd_, reinterpret_cast<const sockaddr*>(&address.resolved), sizeof address.resolved) != 0) {
        const int error = errno;
        require(error != EADDRINUSE, "cannot listen on " + where + ": another process is listening on UDP port " +
                                         std::to_string(address.port) +
                                         " (stop it, or have the sender use another port)");
        throw InputError("cannot listen on " + where + ": " + std::strerror(error));
    }
    return socket;
}

UdpSocket UdpSocket::connect_sender(const UdpAddress& address) {
    UdpSocket socket(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    require(socket.fd_ >= 0, std::string("cannot create a UDP socket: ") + std::strerror(errno));
    const int buffer = 4 << 20;
    ::setsockopt(socket.fd_, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    require(::connect(socket.fd_, reinterpret_cast<const sockaddr*>(&address.resolved), sizeof address.resolved) == 0,
            "cannot send to udp://" + address.host + ":" + std::to_string(address.port) + ": " + std::strerror(errno));
    return socket;
}

UdpSocket::UdpSocket(UdpSocket&& other) noexcept : fd_(other.fd_) {
    other.fd_ = -1;
}

UdpSocket& UdpSocket::operator=(UdpSocket&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = other.fd_;
        other.fd_ = -1;
    }
    return *this;
}

UdpSocket::~UdpSocket() {
    if (fd_ >= 0)
        ::close(fd_);
}

bool UdpSocket::wait_readable(int timeout_ms) const {
    pollfd descriptor{fd_, POLLIN, 0};
    return ::poll(&descriptor, 1, timeout_ms) > 0 && (descriptor.revents & POLLIN) != 0;
}

long UdpSocket::receive(unsigned char* buffer, std::size_t capacity) const {
    const ssize_t n = ::recv(fd_, buffer, capacity, MSG_DONTWAIT);
    return n < 0 ? -1 : static_cast<long>(n);
}

bool UdpSocket::send(const unsigned char* bytes, std::size_t size) const {
    return ::send(fd_, bytes, size, 0) == static_cast<ssize_t>(size);
}

int UdpSocket::receive_buffer_bytes() const {
    int bytes = 0;
    socklen_t length = sizeof bytes;
    ::getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, &length);
    return bytes;
}

} // namespace spikeline::stream
