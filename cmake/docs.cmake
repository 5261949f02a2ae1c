# cmake/docs.cmake — the `docs` target: the API reference (Doxygen) from the
# public headers, with docs/guide.md as its main page.
#
#   include(cmake/docs.cmake)                      # from the top CMakeLists.txt
#   cmake --build --preset release --target docs   # -> build/release/docs/html/index.html
#
# The build fails on any Doxygen warning, in particular on a public symbol
# (function, type, field, enumerator, macro) without a comment. Needs doxygen
# (Debian: apt-get install doxygen) and perl (always there on Debian);
# without doxygen the target is not defined and configuring says so once.
# Nothing here is part of `all`: documentation is built only when asked for.

set(PPOOL_DOCS_SRC "${CMAKE_CURRENT_LIST_DIR}/..")
get_filename_component(PPOOL_DOCS_SRC "${PPOOL_DOCS_SRC}" REALPATH)

find_package(Doxygen QUIET)
find_program(PPOOL_DOCS_PERL perl)

if(NOT DOXYGEN_FOUND OR NOT PPOOL_DOCS_PERL)
  message(STATUS "ppool: doxygen or perl not found; the `docs` target is not available")
  return()
endif()

set(PPOOL_DOCS_OUT "${PROJECT_BINARY_DIR}/docs")
# Doxygen 1.9.1+ can report every warning and then fail; older ones stop at
# the first warning. Either way the build fails on a warning.
if(DOXYGEN_VERSION VERSION_GREATER_EQUAL 1.9.1)
  set(PPOOL_DOCS_WARN_AS_ERROR FAIL_ON_WARNINGS)
else()
  set(PPOOL_DOCS_WARN_AS_ERROR YES)
endif()

configure_file("${PPOOL_DOCS_SRC}/docs/Doxyfile.in" "${PPOOL_DOCS_OUT}/Doxyfile" @ONLY)

file(GLOB PPOOL_DOCS_DEPS CONFIGURE_DEPENDS
  "${PPOOL_DOCS_SRC}/include/ppool.h"
  "${PPOOL_DOCS_SRC}/include/ppool/*.h"
  "${PPOOL_DOCS_SRC}/docs/guide.md"
  "${PPOOL_DOCS_SRC}/docs/api.dox"
  "${PPOOL_DOCS_SRC}/docs/doxygen-filter.pl"
  "${PPOOL_DOCS_SRC}/docs/images/*.png")

# A stamp file, so that `docs` reruns only when an input changed.
add_custom_command(
  OUTPUT "${PPOOL_DOCS_OUT}/html.stamp"
  COMMAND ${CMAKE_COMMAND} -E remove_directory "${PPOOL_DOCS_OUT}/html"
  COMMAND Doxygen::doxygen "${PPOOL_DOCS_OUT}/Doxyfile"
  COMMAND ${CMAKE_COMMAND} -E touch "${PPOOL_DOCS_OUT}/html.stamp"
  DEPENDS ${PPOOL_DOCS_DEPS} "${PPOOL_DOCS_OUT}/Doxyfile"
  WORKING_DIRECTORY "${PPOOL_DOCS_OUT}"
  COMMENT "Doxygen: API reference -> ${PPOOL_DOCS_OUT}/html/index.html"
  VERBATIM)
add_custom_target(docs DEPENDS "${PPOOL_DOCS_OUT}/html.stamp")
