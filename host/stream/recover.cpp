#include "stream/recover.hpp"

#include "io/npy.hpp"
#include "io/spikeglx.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <unistd.h>

namespace spikeline::stream {

namespace fs = std::filesystem;

namespace {

/// Arrays with one row per spike, which must keep one length: the Phy folder's (stream, sort) and detect's.
const std::set<std::string> kPerSpikeArrays = {"spike_times.npy",     "spike_clusters.npy", "spike_templates.npy",
                                               "amplitudes.npy",      "pc_features.npy",    "spike_channels.npy",
                                               "spike_amplitudes.npy"};
/// Arrays appended row by row on their own: each keeps its whole rows.
const std::set<std::string> kOwnLengthArrays = {"unit_updates.npy", "decoded_velocity.npy"};
/// Text logs appended line by line: each keeps its whole lines.
const std::set<std::string> kLineLogs = {"gaps.tsv"};

struct Temporary {
    fs::path path;
    long owner = 0;
};

std::string name_of(const fs::path& path) {
    return path.filename().string();
}

/// Keeps a text file's whole lines (up to its last newline) and renames it to destination.
std::uint64_t finish_line_log(const fs::path& file, const fs::path& destination) {
    std::ifstream in(file, std::ios::binary);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    in.close();
    const std::size_t end = text.rfind('\n');
    const std::size_t keep = end == std::string::npos ? 0 : end + 1;
    std::error_code ec;
    fs::resize_file(file, keep, ec);
    require(!ec, "cannot truncate " + file.string() + ": " + ec.message());
    fs::rename(file, destination, ec);
    require(!ec, "cannot rename " + file.string() + " to " + destination.string() + ": " + ec.message());
    return text.size() - keep;
}

/// The append file's header and rows; nothing (and the file removed, and said) when it has no complete header: its
/// process died before the header reached the disk, so it holds no rows either.
std::optional<io::NpyAppendFile> inspect_or_remove(const fs::path& file, RecoveryReport& report) {
    try {
        return io::inspect_npy_append_file(file);
    } catch (const InputError& e) {
        std::error_code ec;
        fs::remove(file, ec);
        report.removed.push_back(name_of(file));
        report.actions.push_back(name_of(file) + ": no complete .npy header (" + e.what() + "), removed");
        return std::nullopt;
    }
}

} // namespace

nlohmann::json RecoveryReport::to_json() const {
    return {{"format", "spikeline recover report"},
            {"actions", actions},
            {"frames_kept", frames_kept},
            {"bytes_dropped", bytes_dropped},
            {"spikes_kept", spikes_kept},
            {"spikes_dropped", spikes_dropped},
            {"spikes_after_recording", spikes_after_recording},
            {"removed", removed},
            {"note", "data still in the writer's memory when it died (its write buffers and queues, typically a few "
                     "ms to a few hundred ms) never reached the disk and is not counted"}};
}

RecoveryReport recover_folder(const fs::path& dir) {
    std::error_code ec;
    require(fs::is_directory(dir, ec), dir.string() + " is not a folder: give the output folder of the run to recover");

    // The newest temporary of each output whose writer is gone; a live writer's means the run is not over.
    std::map<std::string, Temporary> temporaries; // by final name
    std::vector<fs::path> superseded;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::optional<long> owner = temporary_owner(it->path());
        if (!owner || !it->is_regular_file(ec))
            continue;
        require(*owner == ::getpid() || !process_alive(*owner),
                "process " + std::to_string(*owner) + " is still writing " + it->path().string() +
                    ": stop it (it finalises its files itself) or wait until it ends, then run recover");
        const std::string name = name_of(it->path());
        const std::string final_name = name.substr(0, name.rfind(".tmp"));
        auto [slot, inserted] = temporaries.try_emplace(final_name, Temporary{it->path(), *owner});
        if (!inserted) {
            const bool newer = fs::last_write_time(it->path(), ec) > fs::last_write_time(slot->second.path, ec);
            superseded.push_back(newer ? slot->second.path : it->path());
            if (newer)
                slot->second = Temporary{it->path(), *owner};
        }
    }
    require(!ec, "cannot list " + dir.string() + ": " + ec.message());

    RecoveryReport report;
    const auto take = [&](const std::string& final_name) -> std::optional<fs::path> {
        auto it = temporaries.find(final_name);
        if (it == temporaries.end())
            return std::nullopt;
        fs::path path = it->second.path;
        temporaries.erase(it);
        return path;
    };

    // The SpikeGLX copy: its .meta temporary, written before any data, says what the data is.
    if (std::optional<fs::path> meta_source = take("recording.meta")) {
        std::optional<fs::path> data = take("recording.bin");
        if (!data && fs::exists(dir / "recording.bin", ec))
            data = dir / "recording.bin"; // renamed into place; only its .meta was missing
        if (data) {
            const io::SpikeGlxRecovery raw = io::recover_spikeglx(*data, *meta_source, dir / "recording.bin");
            report.frames_kept = raw.frames;
            report.bytes_dropped += raw.bytes_dropped;
            report.actions.push_back(
                "recording.bin: " + std::to_string(raw.frames) + " whole frames kept with a new recording.meta" +
                (raw.bytes_dropped > 0
                     ? ", the last frame cut short (" + std::to_string(raw.bytes_dropped) + " bytes) dropped"
                     : ""));
            report.recovered_anything = true;
        } else {
            temporaries.emplace("recording.meta", Temporary{*meta_source, 0}); // no data: removed below
        }
    } else if (!temporaries.count("recording.bin") && fs::exists(dir / "recording.bin", ec) &&
               fs::exists(dir / "recording.meta", ec)) {
        // A stale .meta (the .bin changed after it was written): its length keys follow the whole frames there are.
        try {
            io::read_spikeglx_info(dir / "recording.bin");
        } catch (const InputError&) {
            const io::SpikeGlxRecovery raw =
                io::recover_spikeglx(dir / "recording.bin", dir / "recording.meta", dir / "recording.bin");
            report.frames_kept = raw.frames;
            report.bytes_dropped += raw.bytes_dropped;
            report.actions.push_back("recording.bin: its .meta did not match it; rewritten for the " +
                                     std::to_string(raw.frames) + " whole frames there are");
            report.recovered_anything = true;
        }
    }
    if (temporaries.count("recording.bin"))
        throw InputError(temporaries.at("recording.bin").path.string() +
                         " has no recording.meta temporary beside it (it was written by an older spikeline), so its "
                         "channel count is unknown: delete it, or give it a .meta by hand");

    // The per-spike arrays: finished to the rows all of them hold (finished ones of the same run included).
    std::vector<std::pair<fs::path, fs::path>> per_spike; // {file, destination}
    for (const std::string& name : kPerSpikeArrays)
        if (std::optional<fs::path> file = take(name))
            per_spike.emplace_back(*file, dir / name);
    if (!per_spike.empty()) {
        for (const std::string& name : kPerSpikeArrays)
            if (std::none_of(per_spike.begin(), per_spike.end(),
                             [&](const auto& p) { return name_of(p.second) == name; }) &&
                fs::exists(dir / name, ec))
                per_spike.emplace_back(dir / name, dir / name);
        std::size_t common = static_cast<std::size_t>(-1), most = 0;
        std::vector<std::pair<fs::path, fs::path>> readable;
        for (const auto& [file, destination] : per_spike) {
            const std::optional<io::NpyAppendFile> found = inspect_or_remove(file, report);
            if (!found)
                continue;
            readable.emplace_back(file, destination);
            common = std::min(common, found->rows);
            most = std::max(most, found->rows);
        }
        per_spike = std::move(readable);
        if (per_spike.empty())
            common = 0;
        std::uint64_t bytes_before = 0, bytes_after = 0;
        for (const auto& [file, destination] : per_spike) {
            bytes_before += fs::file_size(file, ec);
            io::finish_npy_append_file(file, destination, common);
            bytes_after += fs::file_size(destination, ec);
        }
        report.spikes_kept = common;
        report.spikes_dropped = most - common;
        report.bytes_dropped += bytes_before - bytes_after;
        std::string names;
        for (const auto& [file, destination] : per_spike)
            names += (names.empty() ? "" : ", ") + name_of(destination);
        report.actions.push_back(
            std::to_string(common) + " spikes kept in " + names +
            (most > common ? " (" + std::to_string(most - common) + " that not every array held dropped)" : ""));
        if (fs::exists(dir / "spike_times.npy", ec) && fs::exists(dir / "recording.bin", ec) &&
            report.frames_kept > 0) {
            for (const std::uint64_t t : io::read_npy_vector<std::uint64_t>(dir / "spike_times.npy"))
                report.spikes_after_recording += t >= report.frames_kept;
        }
        report.recovered_anything = true;
    }
    for (const std::string& name : kOwnLengthArrays)
        if (std::optional<fs::path> file = take(name); file && inspect_or_remove(*file, report)) {
            const std::size_t rows = io::finish_npy_append_file(*file, dir / name, static_cast<std::size_t>(-1));
            report.actions.push_back(name + ": " + std::to_string(rows) + " rows kept");
            report.recovered_anything = true;
        }
    for (const std::string& name : kLineLogs)
        if (std::optional<fs::path> file = take(name)) {
            const std::uint64_t dropped = finish_line_log(*file, dir / name);
            report.bytes_dropped += dropped;
            report.actions.push_back(name + ": its whole lines kept");
            report.recovered_anything = true;
        }

    // What is left was being written when the process died (derived files of a run's end, a half-written JSON):
    // it cannot be trusted, and the run's inputs above are what matters.
    for (const auto& [final_name, temporary] : temporaries)
        superseded.push_back(temporary.path);
    for (const fs::path& path : superseded)
        if (fs::remove(path, ec))
            report.removed.push_back(name_of(path));
    if (!report.removed.empty())
        report.actions.push_back(std::to_string(report.removed.size()) +
                                 " half-written or superseded temporaries removed");
    if (report.recovered_anything)
        write_text_file(dir / "recover.json", report.to_json().dump(2) + "\n");
    return report;
}

} // namespace spikeline::stream
