set(  test_io_TESTS)
