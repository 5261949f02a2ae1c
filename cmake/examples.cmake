# cmake/examples.cmake — build examples/ex_*.c and run each as a smoke test.
#
#   include(cmake/examples.cmake)          # from the top CMakeLists.txt (PPOOL_EXAMPLES=ON)
#   ctest --preset release -R example      # run them
#
# Every examples/ex_<name>.c becomes the program ex_<name>, linked to the
# shared libppool as a user's program would be, and the CTest test
# example_<name>, which runs it through examples/run_example.sh: exit status
# 0, standard output equal to examples/expected/ex_<name>.txt (lines starting
# with "~ " are regular expressions), no process left behind; and again as
# example_<name>@spawn and example_<name>@forkserver under those start
# methods (not in sanitizer builds). An example without an expected file is built but not run (CMake
# warns).
# ex_word_hash.c needs libcrypto (SHA-512); without it that one is skipped.

set(PPOOL_EXAMPLES_DIR "${CMAKE_CURRENT_LIST_DIR}/../examples")
get_filename_component(PPOOL_EXAMPLES_DIR "${PPOOL_EXAMPLES_DIR}" REALPATH)

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND AND NOT TARGET PkgConfig::PPOOL_EX_CRYPTO)
  pkg_check_modules(PPOOL_EX_CRYPTO QUIET IMPORTED_TARGET libcrypto)
endif()

enable_testing()
file(GLOB PPOOL_EXAMPLE_SRC CONFIGURE_DEPENDS "${PPOOL_EXAMPLES_DIR}/ex_*.c")
foreach(src ${PPOOL_EXAMPLE_SRC})
  get_filename_component(name "${src}" NAME_WE)
  string(REGEX REPLACE "^ex_" "" short "${name}")
  if(name MATCHES "^ex_mpi_")
    continue() # built and run by cmake/mpi.cmake (they need libppool_mpi and mpirun)
  endif()
  if(name STREQUAL "ex_word_hash" AND NOT PPOOL_EX_CRYPTO_FOUND)
    message(STATUS "ppool: libcrypto not found; example ${name} is not built")
    continue()
  endif()
  add_executable(${name} "${src}")
  target_link_libraries(${name} PRIVATE ppool)
  if(DEFINED PP_WARN)
    target_compile_options(${name} PRIVATE ${PP_WARN})
  endif()
  if(name STREQUAL "ex_word_hash")
    target_link_libraries(${name} PRIVATE PkgConfig::PPOOL_EX_CRYPTO)
  endif()
  set(expected "${PPOOL_EXAMPLES_DIR}/expected/${name}.txt")
  if(NOT EXISTS "${expected}")
    message(WARNING "ppool: ${expected} missing; example ${name} is built, not tested")
    continue()
  endif()
  add_test(NAME example_${short}
    COMMAND bash "${PPOOL_EXAMPLES_DIR}/run_example.sh" $<TARGET_FILE:${name}> "${expected}" 60)
  set_tests_properties(example_${short} PROPERTIES TIMEOUT 90 LABELS example)
  # The same program, output and checks under the other start methods
  # (pp_config_init reads PPOOL_START_METHOD), as the test suites do: an
  # example must not depend on fork's inheritance. Release-type builds only,
  # like the suites' variants (the sanitizer legs run each example once).
  if(PPOOL_SANITIZE)
    continue()
  endif()
  foreach(method spawn forkserver)
    add_test(NAME example_${short}@${method}
      COMMAND bash "${PPOOL_EXAMPLES_DIR}/run_example.sh" $<TARGET_FILE:${name}> "${expected}" 60)
    set_tests_properties(example_${short}@${method} PROPERTIES TIMEOUT 90 LABELS example
      ENVIRONMENT "PPOOL_START_METHOD=${method}")
  endforeach()
endforeach()
