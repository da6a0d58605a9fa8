#include "cli/several_recordings.hpp"

#include "backend/opencl_backend.hpp"
#include "cli/commands.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "util/output_folder.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

namespace spikeline::cli {

namespace {

namespace fs = std::filesystem;

/// One input of the run: opened before any is processed, so that a bad one is named before work starts.
struct Job {
    std::string input;
    fs::path out_dir;
    SelectedInput selected;
    DetectRunOptions options;
    std::shared_ptr<const HwParams> params;
    std::optional<DetectRunResult> result;
    std::string error; ///< why it failed (empty: it did not)
    bool internal_error = false;
};

std::string output_name(const std::string& input, std::map<std::string, int>& used) {
    fs::path path = fs::path(input).lexically_normal();
    if (path.filename().empty())
        path = path.parent_path();
    std::string name = fs::is_directory(path) ? path.filename().string() : path.stem().string();
    if (name.empty() || name == "." || name == "..")
        name = "recording";
    const int seen = ++used[name];
    return seen == 1 ? name : name + "_" + std::to_string(seen);
}

void run_one(Job& job) {
    try {
        job.result = run_detection(*job.selected.source, job.selected.probe, job.options, job.out_dir);
    } catch (const InputError& e) {
        job.error = e.what();
    } catch (const std::exception& e) {
        job.error = std::string("internal error: ") + e.what();
        job.internal_error = true;
    }
}

// Every job through one OpenclStreams: its stream is the job's backend, driven by its own thread.
// start: set once the device is set up and the kernels are built, as a run alone times only its processing.
void run_batched(std::vector<Job*>& jobs, const DetectRunOptions& options, std::string& device,
                 std::chrono::steady_clock::time_point& start) {
    std::vector<std::shared_ptr<const HwParams>> params;
    for (const Job* job : jobs)
        params.push_back(job->params);
    OpenclOptions opencl;
    opencl.platform = options.backend.opencl_platform;
    opencl.device = options.backend.opencl_device;
    OpenclStreams streams(params, opencl);
    device = streams.device_description();
    std::vector<std::unique_ptr<Backend>> backends;
    for (std::size_t i = 0; i < jobs.size(); ++i)
        backends.push_back(streams.stream(i));
    std::vector<std::thread> threads;
    start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < jobs.size(); ++i)
        threads.emplace_back([&jobs, &backends, i] {
            // Owned here, so that the stream leaves the batch whenever this thread ends, whether or not the run got
            // as far as taking it.
            std::shared_ptr<std::unique_ptr<Backend>> backend =
                std::make_shared<std::unique_ptr<Backend>>(std::move(backends[i]));
            jobs[i]->options.make_backend = [backend](const HwParams&) { return std::move(*backend); };
            run_one(*jobs[i]);
            jobs[i]->options.make_backend = nullptr;
        });
    for (std::thread& thread : threads)
        thread.join();
}

} // namespace

std::vector<std::string> output_names(const std::vector<std::string>& inputs) {
    std::map<std::string, int> used;
    std::vector<std::string> names;
    for (const std::string& input : inputs)
        names.push_back(output_name(input, used));
    return names;
}

int sort_recordings(int argc, char** argv, const boost::program_options::options_description& all,
                    const boost::program_options::positional_options_description& positional,
                    const boost::program_options::variables_map& vm, const std::vector<std::string>& inputs,
                    const std::string& out_dir, bool quiet) {
    for (const char* option : {"sorter", "units-from", "nwb"})
        require(!vm.count(option), std::string("--") + option +
                                       " names one recording's file: with several INPUTs, sort them one at a time");
    // Every token of the command line but the inputs and --out, for each recording's own sort.
    std::vector<std::string> common;
    for (const auto& option :
         boost::program_options::command_line_parser(argc, argv).options(all).positional(positional).run().options)
        if (option.string_key != "input" && option.string_key != "out")
            common.insert(common.end(), option.original_tokens.begin(), option.original_tokens.end());
    const std::vector<std::string> names = output_names(inputs);
    std::string failures;
    int failed = 0;
    double seconds_wall = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        std::vector<std::string> args = {argv[0], inputs[i], "--out", (fs::path(out_dir) / names[i]).string()};
        args.insert(args.end(), common.begin(), common.end());
        std::vector<char*> pointers;
        for (std::string& arg : args)
            pointers.push_back(arg.data());
        pointers.push_back(nullptr);
        const auto start = std::chrono::steady_clock::now();
        try {
            cmd_sort(static_cast<int>(args.size()), pointers.data());
        } catch (const InputError& e) {
            std::fprintf(stderr, "spikeline sort: %s: error: %s (skipped; the other recordings go on)\n",
                         inputs[i].c_str(), e.what());
            failures += "\n  " + inputs[i] + ": " + e.what();
            ++failed;
        }
        seconds_wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (!quiet)
        std::printf("spikeline sort: %zu recordings one after another into %s/<name>/, %d failed, %.2f s wall\n",
                    inputs.size(), out_dir.c_str(), failed, seconds_wall);
    if (failed == 0)
        return 0;
    throw InputError(std::to_string(failed) + " of " + std::to_string(inputs.size()) +
                     " recordings failed (the others were written to " + out_dir + "):" + failures);
}

int detect_recordings(const std::vector<std::string>& inputs, const InputOptionValues& in,
                      const boost::program_options::variables_map& vm, const DetectRunOptions& options,
                      const std::string& out_dir, bool overwrite, bool quiet) {
    const bool batched = options.backend.name == "opencl";
    std::vector<Job> jobs(inputs.size());
    std::map<std::string, int> used_names;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        Job& job = jobs[i];
        job.input = inputs[i];
        job.out_dir = fs::path(out_dir) / output_name(inputs[i], used_names);
        try {
            InputOptionValues values = in;
            values.input = inputs[i];
            job.selected = open_selected_input(values, vm, "spikeline detect INPUT... --out DIR");
            check_output_folder({"detect", job.out_dir, input_files(values, job.selected.source->info()), overwrite});
            job.options = options;
            job.options.progress = options.progress && !batched; // one line cannot show several threads
            exclude_within_selection(job.options.settings, job.selected.channels);
            job.params =
                make_detect_params(job.options.settings, job.selected.probe, job.selected.source->info().sample_rate);
        } catch (const InputError& e) {
            job.error = e.what();
        }
    }
    std::vector<Job*> ready;
    for (Job& job : jobs)
        if (job.error.empty())
            ready.push_back(&job);

    std::string device;
    auto start = std::chrono::steady_clock::now();
    if (batched && !ready.empty())
        run_batched(ready, options, device, start);
    else
        for (Job* job : ready)
            run_one(*job);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    double seconds = 0;
    std::uint64_t spikes = 0;
    int done = 0;
    nlohmann::json listed = nlohmann::json::array();
    for (const Job& job : jobs) {
        nlohmann::json entry = {{"input", job.input}, {"output", job.out_dir.string()}};
        if (job.result) {
            const DetectRunResult& r = *job.result;
            const io::RecordingInfo& info = job.selected.source->info();
            seconds += r.recording_seconds;
            spikes += r.events;
            ++done;
            entry.update({{"status", "ok"},
                          {"n_channels", info.n_channels},
                          {"sample_rate", info.sample_rate},
                          {"recording_seconds", r.recording_seconds},
                          {"n_spikes", r.events},
                          {"lost_events", r.lost_events},
                          {"wall_seconds", r.wall_seconds},
                          {"x_realtime", r.realtime_factor}});
        } else {
            entry.update({{"status", "failed"}, {"error", job.error}});
        }
        listed.push_back(entry);
    }
    const double total_x = wall > 0 ? seconds / wall : 0;
    if (done > 0) {
        nlohmann::json summary = {{"format", "spikeline detect batch"},
                                  {"backend", options.backend.name},
                                  {"batched", batched},
                                  {"recordings", listed},
                                  {"succeeded", done},
                                  {"failed", static_cast<int>(jobs.size()) - done},
                                  {"recording_seconds", seconds},
                                  {"wall_seconds", wall},
                                  {"x_realtime_total", total_x}};
        if (!device.empty())
            summary["device"] = device;
        write_text_file(fs::path(out_dir) / "detect_batch.json", summary.dump(2) + "\n");
    }

    if (!quiet) {
        std::printf("spikeline detect: %zu recordings, backend %s%s\n", jobs.size(), options.backend.name.c_str(),
                    batched ? (", all in the same kernel launches on " + device).c_str() : ", one after another");
        for (const Job& job : jobs) {
            if (!job.result) {
                std::printf("  %-24s FAILED (see below)\n", job.out_dir.filename().string().c_str());
                continue;
            }
            const DetectRunResult& r = *job.result;
            const io::RecordingInfo& info = job.selected.source->info();
            std::printf("  %-24s %4d ch  %6.0f Hz  %8.2f s  %9llu spikes  %7.1fx real time%s\n",
                        job.out_dir.filename().string().c_str(), info.n_channels, info.sample_rate, r.recording_seconds,
                        static_cast<unsigned long long>(r.events), r.realtime_factor,
                        r.lost_events > 0 ? "  (spikes lost: see detect_info.json)" : "");
        }
        std::printf("  total                    %d recording(s), %.2f s of data, %llu spikes in %.2f s wall: %.1fx "
                    "real time in total\n",
                    done, seconds, static_cast<unsigned long long>(spikes), wall, total_x);
        if (done > 0)
            std::printf("  output     %s/<name>/ per recording, %s/detect_batch.json\n", out_dir.c_str(),
                        out_dir.c_str());
    }

    std::string failures;
    bool internal = false;
    for (const Job& job : jobs)
        if (!job.result) {
            failures += "\n  " + job.input + ": " + job.error;
            internal = internal || job.internal_error;
        }
    if (failures.empty())
        return 0;
    const std::string message = std::to_string(static_cast<int>(jobs.size()) - done) + " of " +
                                std::to_string(jobs.size()) + " recordings failed (the others were written" +
                                (done > 0 ? " to " + out_dir : std::string()) + "):" + failures;
    if (internal)
        throw std::runtime_error(message);
    throw InputError(message);
}

} // namespace spikeline::cli
