#include "util/channel_list.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <charconv>
#include <sstream>

namespace spikeline {
namespace {

bool parse_channel(std::string text, int& value) {
    text.erase(0, text.find_first_not_of(" \t"));
    text.erase(text.find_last_not_of(" \t") + 1);
    const char* end = text.data() + text.size();
    const auto [stop, error] = std::from_chars(text.data(), end, value);
    return !text.empty() && error == std::errc() && stop == end && value >= 0;
}

} // namespace

std::vector<int> parse_channel_list(const std::string& text, const std::string& what) {
    std::vector<int> channels;
    if (text.find_first_not_of(" \t") == std::string::npos)
        return channels;
    std::istringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
        const auto colon = item.find(':');
        int first = 0, last = 0;
        const bool valid =
            parse_channel(item.substr(0, colon), first) &&
            (colon == std::string::npos ? (last = first, true) : parse_channel(item.substr(colon + 1), last)) &&
            first <= last;
        require(valid,
                what + "=" + text + " should be channels and ranges such as 0:5,8,12:15 ('" + item + "' is not)");
        for (int c = first; c <= last; ++c)
            channels.push_back(c);
    }
    std::sort(channels.begin(), channels.end());
    channels.erase(std::unique(channels.begin(), channels.end()), channels.end());
    return channels;
}

} // namespace spikeline
