#pragma once
// The real acquisition headers of ../shared/fixtures (SPIKELINE_FIXTURES_DIR, set by tests/CMakeLists.txt). A test
// executable that reads them registers skip_without_real_headers(): without the folder (a checkout away from
// ../shared) its tests are skipped, saying why, instead of failing.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#ifndef SPIKELINE_FIXTURES_DIR
#error "SPIKELINE_FIXTURES_DIR must name the folder of real headers (../shared/fixtures)"
#endif

namespace spikeline::testing {

/// A subfolder of the real headers, e.g. "spikeglx".
inline std::filesystem::path real_headers(const std::string& kind) {
    return std::filesystem::path(SPIKELINE_FIXTURES_DIR) / kind;
}

class RealHeadersPresent : public ::testing::Environment {
public:
    explicit RealHeadersPresent(std::filesystem::path folder) : folder_(std::move(folder)) {}
    void SetUp() override {
        if (!std::filesystem::is_directory(folder_))
            GTEST_SKIP() << folder_.string()
                         << " is missing (see ../shared/fixtures/README.md): real-header tests skipped";
    }

private:
    std::filesystem::path folder_;
};

/// Registers the check for folder; call once per test executable, at namespace scope.
inline const ::testing::Environment* skip_without_real_headers(const std::filesystem::path& folder) {
    return ::testing::AddGlobalTestEnvironment(new RealHeadersPresent(folder));
}

} // namespace spikeline::testing
