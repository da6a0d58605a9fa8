// libFuzzer target: a sorter.json (`sort --sorter`, `stream --sorter`). The run's context is taken from the input's own
// valid_for when it has one, so that inputs get past the context check into the classifier, units and noise.
#include "fuzz_input_file.hpp"
#include "sort/sorter_file.hpp"

#include <nlohmann/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
    using namespace spikeline;
    const std::filesystem::path file = fuzz::write_input("sorter.json", data, size);
    sort::SorterFileContext context;
    context.n_channels = 64;
    context.sample_rate = 30000;
    const nlohmann::json root = nlohmann::json::parse(data, data + size, nullptr, false);
    if (root.is_object() && root.contains("valid_for") && root["valid_for"].is_object()) {
        const nlohmann::json& valid_for = root["valid_for"];
        if (valid_for.contains("n_channels") && valid_for["n_channels"].is_number_integer())
            context.n_channels = valid_for["n_channels"].get<int>();
        if (valid_for.contains("sample_rate") && valid_for["sample_rate"].is_number())
            context.sample_rate = valid_for["sample_rate"].get<double>();
        if (valid_for.contains("probe") && valid_for["probe"].is_string())
            context.probe_name = valid_for["probe"].get<std::string>();
        if (valid_for.contains("detect_settings"))
            context.detect_settings = valid_for["detect_settings"];
        if (valid_for.contains("sort_settings"))
            context.sort_settings = valid_for["sort_settings"];
    }
    fuzz::expect_only_input_errors([&] { sort::read_sorter_file(file, context); });
    return 0;
}
