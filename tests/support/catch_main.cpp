// The one translation unit that builds Catch2's runner; every tests/test_*.cpp only adds cases.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
