#pragma once
// The live view of `spikeline stream --http HOST:PORT`: an HTTP server (Boost.Beast) on its own thread serving one
// page (web/live.*) and a server-sent event stream of the stream's state at 10 Hz: recent spikes (a scrolling raster
// by depth), per-channel and per-unit spike counts, link health counters, a latency histogram and decoded
// velocities. It reads only what LiveFeed hands over and the source's thread-safe counters: it never blocks the
// pipeline.
#include "stream/live_feed.hpp"
#include "stream/source.hpp"

#include <atomic>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace spikeline::stream {

struct HttpViewSettings {
    std::string endpoint;   ///< HOST:PORT (port 0: any free port)
    bool allow_any = false; ///< serve on a non-loopback address
};

class HttpView {
public:
    /// Binds and starts serving. hello: what every client gets first (probe geometry, sample rate, source...).
    /// source_counters and overrun_blocks are read on the server thread (both are safe to read concurrently).
    /// Throws InputError when the endpoint is refused or cannot be bound.
    HttpView(const HttpViewSettings& settings, LiveFeed& feed, nlohmann::json hello, const LiveSource& source,
             const std::atomic<std::uint64_t>& overrun_blocks);
    /// Stops serving (finish() first to tell clients the stream ended).
    ~HttpView();
    HttpView(const HttpView&) = delete;
    HttpView& operator=(const HttpView&) = delete;

    /// The port it listens on (the chosen one for port 0).
    unsigned short port() const;
    /// The stream ended: the next update says so (with ended_by) and the clients stop reconnecting; waits until it
    /// has been sent to every connected client, at most timeout_ms.
    void finish(const std::string& ended_by, int timeout_ms = 1000);

private:
    class Server;
    std::unique_ptr<Server> server_;
};

} // namespace spikeline::stream
