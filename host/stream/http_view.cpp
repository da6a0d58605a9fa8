#include "stream/http_view.hpp"

#include "util/errors.hpp"
#include "util/threads.hpp"
#include "web_assets.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <thread>

namespace spikeline::stream {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr auto kTick = std::chrono::milliseconds(100); // 10 updates per second
constexpr double kRecentSeconds = 10;                  // what a (re)connecting client is sent to fill its raster
constexpr std::size_t kMaxSpikesPerUpdate = 20000;     // more in 100 ms are thinned evenly for the raster
constexpr std::size_t kMaxRecentSpikes = 200000;
constexpr std::size_t kMaxQueuedMessages = 64; // a client that falls this far behind is dropped (it reconnects)

struct Endpoint {
    net::ip::address address;
    unsigned short port = 0;
};

Endpoint parse_endpoint(const HttpViewSettings& settings) {
    const std::string& text = settings.endpoint;
    const std::size_t colon = text.rfind(':');
    require(colon != std::string::npos && colon > 0 && colon + 1 < text.size(),
            "--http " + text + " is not HOST:PORT (for example 127.0.0.1:8080)");
    std::string host = text.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host == "localhost")
        host = "127.0.0.1";
    const std::string port_text = text.substr(colon + 1);
    require(port_text.find_first_not_of("0123456789") == std::string::npos && port_text.size() <= 5 &&
                std::stoul(port_text) <= 65535,
            "--http " + text + ": the port must be a number in 0..65535 (0: any free port)");
    Endpoint endpoint;
    boost::system::error_code ec;
    endpoint.address = net::ip::make_address(host, ec);
    require(!ec, "--http " + text + ": " + host +
                     " is not an IP address; use 127.0.0.1 (this machine only) or, with --http-any, 0.0.0.0");
    endpoint.port = static_cast<unsigned short>(std::stoul(port_text));
    require(endpoint.address.is_loopback() || settings.allow_any,
            "--http " + text +
                " would serve the live view, without any authentication, to other machines; use 127.0.0.1:PORT "
                "(and an SSH tunnel), or add --http-any to allow it");
    return endpoint;
}

std::string live_page() {
    std::string page(web::live_html);
    const std::pair<std::string_view, std::string_view> parts[] = {
        {"/*@STYLE@*/", web::common_css}, {"/*@PLOT@*/", web::plot_js}, {"/*@SCRIPT@*/", web::live_js}};
    for (const auto& [placeholder, value] : parts) {
        const std::size_t at = page.find(placeholder);
        if (at == std::string::npos)
            throw std::logic_error("web/live.html lacks the placeholder " + std::string(placeholder));
        page.replace(at, placeholder.size(), value);
    }
    return page;
}

std::string event(const char* name, const nlohmann::json& data) {
    return std::string("event: ") + name +
           "\ndata: " + data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

} // namespace

class HttpView::Server {
public:
    class EventClient;
    class Connection;

    Server(const HttpViewSettings& settings, LiveFeed& feed, nlohmann::json hello, const LiveSource& source,
           const std::atomic<std::uint64_t>& overrun_blocks)
        : acceptor_(ioc_), timer_(ioc_), feed_(feed), hello_(std::move(hello)), source_(source),
          overrun_blocks_(overrun_blocks), page_(live_page()) {
        const Endpoint endpoint = parse_endpoint(settings);
        sample_rate_ = hello_.value("sample_rate", 30000.0);
        channel_counts_.assign(hello_.value("n_channels", std::size_t{0}), 0);
        boost::system::error_code ec;
        const tcp::endpoint bind_to(endpoint.address, endpoint.port);
        acceptor_.open(bind_to.protocol(), ec);
        if (!ec)
            acceptor_.set_option(net::socket_base::reuse_address(true), ec);
        if (!ec)
            acceptor_.bind(bind_to, ec);
        if (!ec)
            acceptor_.listen(net::socket_base::max_listen_connections, ec);
        require(!ec, "--http " + settings.endpoint + ": cannot listen there (" + ec.message() +
                         "); choose another port, or 0 for any free one");
        port_ = acceptor_.local_endpoint().port();
        accept();
        arm_timer();
        thread_ = std::thread([this] {
            name_this_thread("spikeline-http"); // its CPU time is measured by this name
            ioc_.run();
        });
    }

    ~Server() {
        ioc_.stop();
        if (thread_.joinable())
            thread_.join();
    }

    unsigned short port() const { return port_; }

    void finish(const std::string& ended_by, int timeout_ms) {
        {
            std::lock_guard lock(end_mutex_);
            ended_by_ = ended_by;
            ending_ = true;
        }
        std::unique_lock lock(end_mutex_);
        end_done_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                           [this] { return end_sent_ && queued_messages_.load() == 0; });
    }

    // Server thread only below.
    const std::string& page() const { return page_; }
    void add_client(const std::shared_ptr<EventClient>& client);
    void message_done() {
        if (queued_messages_.fetch_sub(1) == 1 && end_sent_) {
            std::lock_guard lock(end_mutex_);
            end_done_.notify_all();
        }
    }
    void message_queued() { ++queued_messages_; }
    nlohmann::json state_json(bool backfill);

private:
    void accept();
    void arm_timer() {
        timer_.expires_after(kTick);
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec)
                tick();
        });
    }
    void tick();
    nlohmann::json spikes_json(const std::deque<LiveSpike>& spikes, std::size_t first) const;

    net::io_context ioc_; // first: destroyed last, after every socket and handler
    tcp::acceptor acceptor_;
    net::steady_timer timer_;
    std::thread thread_;
    LiveFeed& feed_;
    nlohmann::json hello_;
    const LiveSource& source_;
    const std::atomic<std::uint64_t>& overrun_blocks_;
    std::string page_;
    unsigned short port_ = 0;
    double sample_rate_ = 30000;

    // The stream's state as the view knows it (server thread).
    std::deque<LiveSpike> recent_;
    std::size_t new_from_ = 0; ///< index in recent_ of the first spike not yet sent in an update
    std::vector<std::uint64_t> channel_counts_;
    std::map<int, std::uint64_t> unit_counts_;
    std::vector<std::uint64_t> latency_bins_;
    std::deque<decode::BinEstimate> decoded_;
    std::size_t decoded_new_from_ = 0;
    std::uint64_t frames_ = 0, spikes_total_ = 0, dropped_ = 0;
    std::uint64_t updates_ = 0;
    std::vector<std::shared_ptr<EventClient>> clients_; ///< the server owns its event streams until they close

    std::mutex end_mutex_;
    std::condition_variable end_done_;
    bool ending_ = false;
    std::atomic<bool> end_sent_{false};
    std::string ended_by_;
    std::atomic<std::size_t> queued_messages_{0};
};

/// A server-sent event stream: messages are written one at a time in order; a client too slow to keep up is closed.
class HttpView::Server::EventClient : public std::enable_shared_from_this<EventClient> {
public:
    EventClient(tcp::socket socket, Server& server) : socket_(std::move(socket)), server_(server) {}
    void send(std::shared_ptr<const std::string> message) {
        if (closed_)
            return;
        if (outbox_.size() >= kMaxQueuedMessages) {
            close();
            return;
        }
        server_.message_queued();
        outbox_.push_back(std::move(message));
        if (!writing_)
            write_next();
    }
    bool closed() const { return closed_; }

private:
    void write_next() {
        writing_ = true;
        net::async_write(socket_, net::buffer(*outbox_.front()),
                         [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                             self->outbox_.pop_front();
                             self->writing_ = false;
                             self->server_.message_done();
                             if (ec) {
                                 self->close();
                                 return;
                             }
                             if (!self->outbox_.empty())
                                 self->write_next();
                         });
    }
    void close() {
        closed_ = true;
        boost::system::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        // Messages never to be written no longer hold finish() up.
        while (outbox_.size() > (writing_ ? 1u : 0u)) {
            outbox_.pop_back();
            server_.message_done();
        }
    }

    tcp::socket socket_;
    Server& server_;
    std::deque<std::shared_ptr<const std::string>> outbox_;
    bool writing_ = false, closed_ = false;
};

/// One HTTP connection: GET / (the page), /state.json (the current state), /events (becomes an EventClient).
class HttpView::Server::Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(tcp::socket socket, Server& server) : socket_(std::move(socket)), server_(server) {}
    void read() {
        request_ = {};
        http::async_read(socket_, buffer_, request_,
                         [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                             if (!ec)
                                 self->respond();
                         });
    }

private:
    void respond() {
        const std::string target(request_.target());
        const std::string path = target.substr(0, target.find('?'));
        if (request_.method() != http::verb::get && request_.method() != http::verb::head)
            return reply(http::status::method_not_allowed, "text/plain", "only GET is served here\n");
        if (path == "/events") {
            auto client = std::make_shared<EventClient>(std::move(socket_), server_);
            client->send(std::make_shared<const std::string>(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                "Connection: keep-alive\r\nAccess-Control-Allow-Origin: *\r\n\r\nretry: 1000\n\n"));
            server_.add_client(client);
            return;
        }
        if (path == "/" || path == "/index.html")
            return reply(http::status::ok, "text/html; charset=utf-8", server_.page());
        if (path == "/state.json")
            return reply(http::status::ok, "application/json", server_.state_json(true).dump() + "\n"); // as a backfill
        reply(http::status::not_found, "text/plain", "not found: the live view is at /\n");
    }
    void reply(http::status status, const char* type, std::string body) {
        auto response = std::make_shared<http::response<http::string_body>>(status, request_.version());
        response->set(http::field::content_type, type);
        response->set(http::field::cache_control, "no-store");
        response->keep_alive(request_.keep_alive());
        response->body() = request_.method() == http::verb::head ? std::string() : std::move(body);
        response->prepare_payload();
        http::async_write(socket_, *response,
                          [self = shared_from_this(), response](const boost::system::error_code& ec, std::size_t) {
                              if (!ec && response->keep_alive())
                                  self->read();
                              else {
                                  boost::system::error_code ignored;
                                  self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                              }
                          });
    }

    tcp::socket socket_;
    Server& server_;
    beast::flat_buffer buffer_;
    http::request<http::string_body> request_;
};

void HttpView::Server::accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted)
            return;
        if (!ec)
            std::make_shared<Connection>(std::move(socket), *this)->read();
        accept();
    });
}

void HttpView::Server::add_client(const std::shared_ptr<EventClient>& client) {
    nlohmann::json hello = hello_;
    hello["server_updates"] = updates_;
    client->send(std::make_shared<const std::string>(event("hello", hello)));
    client->send(std::make_shared<const std::string>(event("update", state_json(true))));
    clients_.push_back(client);
}

nlohmann::json HttpView::Server::spikes_json(const std::deque<LiveSpike>& spikes, std::size_t first) const {
    const std::size_t n = spikes.size() - std::min(first, spikes.size());
    const std::size_t step = (n + kMaxSpikesPerUpdate - 1) / kMaxSpikesPerUpdate;
    nlohmann::json sample = nlohmann::json::array(), channel = nlohmann::json::array(), unit = nlohmann::json::array();
    for (std::size_t i = first; i < spikes.size(); i += std::max<std::size_t>(1, step)) {
        sample.push_back(spikes[i].sample);
        channel.push_back(spikes[i].channel);
        unit.push_back(spikes[i].unit);
    }
    return {{"sample", std::move(sample)},
            {"channel", std::move(channel)},
            {"unit", std::move(unit)},
            {"thinned", step > 1}};
}

nlohmann::json HttpView::Server::state_json(bool backfill) {
    const nlohmann::json counters = source_.counters();
    nlohmann::json link = nlohmann::json::object();
    for (const char* key : {"datagrams", "gaps", "gap_frames", "bad_crc", "malformed", "reordered", "duplicates",
                            "late", "resyncs", "injected_lost_blocks"})
        if (counters.contains(key))
            link[key] = counters[key];
    nlohmann::json units = nlohmann::json::object();
    for (const auto& [unit, count] : unit_counts_)
        units[std::to_string(unit)] = count;
    nlohmann::json decoded = nlohmann::json::array();
    for (std::size_t i = backfill ? 0 : decoded_new_from_; i < decoded_.size(); ++i)
        decoded.push_back({decoded_[i].end_sample, decoded_[i].vx, decoded_[i].vy});
    bool ending;
    std::string ended_by;
    {
        std::lock_guard lock(end_mutex_);
        ending = ending_;
        ended_by = ended_by_;
    }
    return {{"backfill", backfill},
            {"frames", frames_},
            {"seconds", static_cast<double>(frames_) / sample_rate_},
            {"spikes_total", spikes_total_},
            {"spikes_dropped", dropped_},
            {"spikes", spikes_json(recent_, backfill ? 0 : new_from_)},
            {"channel_counts", channel_counts_},
            {"unit_counts", units},
            {"link", link},
            {"overrun_blocks", overrun_blocks_.load()},
            {"latency", {{"bin_us", LiveFeed::kLatencyBinUs}, {"bins", latency_bins_}}},
            {"decoded", decoded},
            {"ended", ending},
            {"ended_by", ended_by}};
}

void HttpView::Server::tick() {
    bool ending;
    {
        std::lock_guard lock(end_mutex_);
        ending = ending_;
    }
    LiveBatch batch = feed_.take(); // after reading ending_: a finished stream has flushed its last batch before
    for (const LiveSpike& spike : batch.spikes) {
        recent_.push_back(spike);
        if (spike.channel >= 0 && static_cast<std::size_t>(spike.channel) < channel_counts_.size())
            ++channel_counts_[static_cast<std::size_t>(spike.channel)];
        ++unit_counts_[spike.unit];
    }
    spikes_total_ += batch.spikes.size();
    dropped_ = batch.dropped_spikes;
    if (!batch.latency_bins.empty())
        latency_bins_ = std::move(batch.latency_bins);
    frames_ = std::max(frames_, batch.frames);
    decoded_.insert(decoded_.end(), batch.decoded.begin(), batch.decoded.end());

    const std::string message = event("update", state_json(false));
    auto shared = std::make_shared<const std::string>(message);
    std::erase_if(clients_, [](const std::shared_ptr<EventClient>& client) { return client->closed(); });
    for (const std::shared_ptr<EventClient>& client : clients_)
        client->send(shared);
    ++updates_;

    // Keep kRecentSeconds of spikes (and decoded bins) for clients that connect later.
    const auto keep_from =
        static_cast<std::uint64_t>(std::max(0.0, static_cast<double>(frames_) - kRecentSeconds * sample_rate_));
    while (!recent_.empty() && (recent_.front().sample < keep_from || recent_.size() > kMaxRecentSpikes))
        recent_.pop_front();
    new_from_ = recent_.size();
    while (!decoded_.empty() && (decoded_.front().end_sample < keep_from || decoded_.size() > 2000))
        decoded_.pop_front();
    decoded_new_from_ = decoded_.size();

    if (ending) {
        std::lock_guard lock(end_mutex_);
        end_sent_ = true;
        end_done_.notify_all();
        return; // no more updates: the clients have the final state
    }
    arm_timer();
}

HttpView::HttpView(const HttpViewSettings& settings, LiveFeed& feed, nlohmann::json hello, const LiveSource& source,
                   const std::atomic<std::uint64_t>& overrun_blocks)
    : server_(std::make_unique<Server>(settings, feed, std::move(hello), source, overrun_blocks)) {}

HttpView::~HttpView() = default;

unsigned short HttpView::port() const {
    return server_->port();
}

void HttpView::finish(const std::string& ended_by, int timeout_ms) {
    server_->finish(ended_by, timeout_ms);
}

} // namespace spikeline::stream
