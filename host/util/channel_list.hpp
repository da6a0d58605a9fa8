#pragma once
// Channel lists as people write them: "5,10,100:110" (ranges inclusive).
#include <string>
#include <vector>

namespace spikeline {

/// The channels `text` lists, ascending and without repeats (empty text: none). Throws InputError naming `what`
/// (e.g. the option or metadata key) when an item is not a channel or an ascending range of channels.
std::vector<int> parse_channel_list(const std::string& text, const std::string& what);

} // namespace spikeline
