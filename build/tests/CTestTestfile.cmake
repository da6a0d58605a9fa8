# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/test_io[1]_include.cmake")
include("/work/main/build/tests/test_probe[1]_include.cmake")
include("/work/main/build/tests/test_sim[1]_include.cmake")
include("/work/main/build/tests/test_hw_detect[1]_include.cmake")
include("/work/main/build/tests/test_backend[1]_include.cmake")
include("/work/main/build/tests/test_compare[1]_include.cmake")
include("/work/main/build/tests/test_cli[1]_include.cmake")
