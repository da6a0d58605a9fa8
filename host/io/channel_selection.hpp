#pragma once
// Channel selection: a recording source delivering a subset of another's channels, for recordings with more
// channels than the detector takes at once (a quad-base Neuropixels 2.0 recording has 1536) or to process some shanks.
#include "io/recording.hpp"
#include "probe/probe.hpp"

#include <memory>
#include <string>
#include <vector>

namespace spikeline::io {

/// Wraps source so that it delivers only `channels` (distinct, ascending indices of source's channels). Its info()
/// has n_channels = channels.size(), channel_ids = the global ids of the selected channels, probe = their contacts
/// when source's info has a probe, and keeps file_channels() (the data file is unchanged). Throws InputError on an
/// empty, unsorted, repeated or out-of-range selection.
std::unique_ptr<RecordingSource> select_channels(std::unique_ptr<RecordingSource> source, std::vector<int> channels);

/// The channels of probe on `shanks` (shank ids as in the probe), ascending. Throws InputError naming a shank the
/// probe does not have, and the shanks it has.
std::vector<int> channels_on_shanks(const probe::Probe& probe, const std::vector<int>& shanks);

/// The contacts of probe wired to `channels`, in that order (the probe of a selection).
probe::Probe probe_subset(const probe::Probe& probe, const std::vector<int>& channels);

/// How to split probe into groups of whole shanks of at most max_channels channels each, e.g. "--shanks 0,1 and
/// --shanks 2,3 (768 channels each)", or "--channels-subset 0:1023 and --channels-subset 1024:1535" when one shank
/// is larger: what an error asking for a selection suggests.
std::string suggest_selection(const probe::Probe& probe, int max_channels);

} // namespace spikeline::io
