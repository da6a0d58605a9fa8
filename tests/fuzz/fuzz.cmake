# libFuzzer targets, built with clang when it is installed (scripts/setup.sh installs it) and each run for a few
# seconds in the default suite from its seed corpus (tests/fuzz/corpus/TARGET: real headers and generated inputs);
# the inputs a run discovers go to build/tests/fuzz_corpus/TARGET, never into the sources. Longer runs: docs
# (README, "Fuzzing"). The host sources a target parses with are compiled once with the same instrumentation into one
# archive, so that each target links only what it uses.
find_program(SPIKELINE_CLANGXX NAMES clang++ clang++-14)
if(NOT SPIKELINE_CLANGXX)
    message(STATUS "clang++ not found: the fuzz targets are not built (test_stream still mutates link packets)")
    return()
endif()

set(fuzz_flags -std=c++20 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined
               -I${PROJECT_SOURCE_DIR}/host -I${PROJECT_SOURCE_DIR}/hls/include -I${CMAKE_CURRENT_SOURCE_DIR}
               -isystem /usr/include/eigen3)
set(fuzz_host_sources
    util/errors.cpp util/atomic_file.cpp util/channel_list.cpp
    io/npy.cpp io/spikeglx.cpp io/open_ephys.cpp io/open_ephys_settings.cpp io/recording.cpp io/raw.cpp io/mtscomp.cpp
    io/channel_selection.cpp probe/probe.cpp probe/neuropixels.cpp
    sort/sorter_file.cpp sort/sort_settings.cpp backend/detect_settings.cpp dsp/filter_design.cpp
    decode/model_file.cpp decode/binning.cpp decode/spike_input.cpp
    stream/crc32c.cpp stream/link_format.cpp stream/link_decoder.cpp stream/link_auth.cpp)
set(fuzz_objects "")
foreach(source ${fuzz_host_sources})
    string(REPLACE "/" "_" object_name ${source})
    set(object ${CMAKE_CURRENT_BINARY_DIR}/fuzz_objects/${object_name}.o)
    add_custom_command(OUTPUT ${object}
                       COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/fuzz_objects
                       COMMAND ${SPIKELINE_CLANGXX} ${fuzz_flags} -fsanitize=fuzzer-no-link -MD -MF ${object}.d
                               -c ${PROJECT_SOURCE_DIR}/host/${source} -o ${object}
                       DEPENDS ${PROJECT_SOURCE_DIR}/host/${source}
                       DEPFILE ${object}.d
                       COMMENT "Compiling ${source} for the fuzz targets (clang, ASan, UBSan)")
    list(APPEND fuzz_objects ${object})
endforeach()
set(fuzz_archive ${CMAKE_CURRENT_BINARY_DIR}/libspikeline_fuzz.a)
add_custom_command(OUTPUT ${fuzz_archive}
                   COMMAND ${CMAKE_COMMAND} -E rm -f ${fuzz_archive}
                   COMMAND ar rcs ${fuzz_archive} ${fuzz_objects}
                   DEPENDS ${fuzz_objects})

# name: the target (tests/fuzz/NAME.cpp, tests/fuzz/corpus/NAME); seconds: the most its run in the default suite takes.
function(spikeline_fuzz_target name seconds)
    set(binary ${CMAKE_CURRENT_BINARY_DIR}/${name})
    add_custom_command(OUTPUT ${binary}
                       COMMAND ${SPIKELINE_CLANGXX} ${fuzz_flags} -fsanitize=fuzzer -MD -MF ${binary}.d
                               ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${name}.cpp ${fuzz_archive}
                               -lexpat -lz -lsodium -o ${binary}
                       DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${name}.cpp ${fuzz_archive}
                       DEPFILE ${binary}.d
                       COMMENT "Building the fuzz target ${name} with clang")
    add_custom_target(build_${name} ALL DEPENDS ${binary})
    set(work_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz_corpus/${name})
    file(MAKE_DIRECTORY ${work_corpus})
    set(seeds "")
    if(IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name})
        set(seeds ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name})
    endif()
    # A fixed seed and number of runs (a fresh build's corpus is empty): the same inputs on every CI machine, so the
    # default suite passes or fails alike everywhere; the time cap only shortens it on a slow machine (a prefix of
    # the same sequence). Longer, open-ended runs: README.md ("Tests").
    add_test(NAME ${name} COMMAND ${binary} ${work_corpus} ${seeds} -runs=5000 -max_total_time=${seconds} -seed=1
                                  -timeout=10 -rss_limit_mb=1024 -print_final_stats=1)
    set_tests_properties(${name} PROPERTIES LABELS default)
    # Inputs that once crashed the target, each run once (-runs=0 runs the corpus without mutating it).
    set(regressions ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/regressions/${name})
    if(IS_DIRECTORY ${regressions})
        add_test(NAME ${name}_regressions COMMAND ${binary} -runs=0 ${regressions})
        set_tests_properties(${name}_regressions PROPERTIES LABELS default)
    endif()
endfunction()

spikeline_fuzz_target(fuzz_link_decoder 6)
spikeline_fuzz_target(fuzz_sealed_frames 6)
spikeline_fuzz_target(fuzz_spikeglx_meta 6)
spikeline_fuzz_target(fuzz_open_ephys_oebin 6)
spikeline_fuzz_target(fuzz_open_ephys_settings 6)
spikeline_fuzz_target(fuzz_probe_json 6)
spikeline_fuzz_target(fuzz_npy 6)
spikeline_fuzz_target(fuzz_sorter_file 6)
spikeline_fuzz_target(fuzz_decoder_model 6)
spikeline_fuzz_target(fuzz_mtscomp 6)
