# libppool_mpi (include/ppool/mpi.h): the multi-node layer over MPI, built
# when MPI is found (PPOOL_MPI=AUTO, the default), required with ON, never
# with OFF. The core libppool never links MPI: libppool_mpi links it and the
# shared libppool (whose pp_ext_* functions, runtime/ext_worker.h, it uses).
set(PPOOL_MPI AUTO CACHE STRING "Build libppool_mpi: AUTO (if MPI is found) | ON | OFF")
set_property(CACHE PPOOL_MPI PROPERTY STRINGS AUTO ON OFF)
set(PPOOL_HAVE_MPI FALSE)
if(NOT PPOOL_MPI STREQUAL "OFF")
  if(PPOOL_MPI STREQUAL "ON")
    find_package(MPI COMPONENTS C REQUIRED)
  else()
    find_package(MPI COMPONENTS C QUIET)
  endif()
  if(MPI_C_FOUND)
    set(PPOOL_HAVE_MPI TRUE)
  else()
    message(STATUS "ppool: MPI not found: libppool_mpi and the mpi tests are not built "
      "(Debian: apt-get install libopenmpi-dev openmpi-bin)")
  endif()
endif()

# ULFM (MPIX_ERR_PROC_FAILED and the MPIX_Comm_failure_* calls: Open MPI 5
# built with its ftmpi extension, MPICH): a process failure reported by MPI
# declares that rank lost at once (runtime/mpi/mpi_ulfm.c). Debian's Open
# MPI 4.1 has none: heartbeats are then the only detector.
set(PPOOL_HAVE_ULFM FALSE)
if(PPOOL_HAVE_MPI)
  include(CheckSymbolExists)
  include(CheckIncludeFiles)
  set(CMAKE_REQUIRED_INCLUDES ${MPI_C_INCLUDE_DIRS})
  set(CMAKE_REQUIRED_LIBRARIES MPI::MPI_C)
  check_include_files("mpi.h;mpi-ext.h" PPOOL_HAVE_MPI_EXT_H)
  if(PPOOL_HAVE_MPI_EXT_H)
    check_symbol_exists(MPIX_ERR_PROC_FAILED "mpi.h;mpi-ext.h" PPOOL_MPI_HAS_ULFM)
  else()
    check_symbol_exists(MPIX_ERR_PROC_FAILED "mpi.h" PPOOL_MPI_HAS_ULFM)
  endif()
  unset(CMAKE_REQUIRED_INCLUDES)
  unset(CMAKE_REQUIRED_LIBRARIES)
  if(PPOOL_MPI_HAS_ULFM)
    set(PPOOL_HAVE_ULFM TRUE)
  endif()
  message(STATUS "ppool: ULFM failure reports (MPIX_ERR_PROC_FAILED): ${PPOOL_HAVE_ULFM}")
endif()

if(PPOOL_HAVE_MPI)
  file(GLOB PP_MPI_SRC CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/runtime/mpi/*.c)
  add_library(ppool_mpi SHARED ${PP_MPI_SRC})
  target_include_directories(ppool_mpi
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/runtime ${PROJECT_SOURCE_DIR}/runtime/mpi)
  target_compile_definitions(ppool_mpi PRIVATE PPOOL_BUILDING _GNU_SOURCE)
  target_compile_options(ppool_mpi PRIVATE ${PP_WARN})
  target_link_libraries(ppool_mpi PUBLIC ppool MPI::MPI_C PRIVATE Threads::Threads)
  if(PPOOL_HAVE_ULFM)
    target_compile_definitions(ppool_mpi PRIVATE PPOOL_HAVE_ULFM)
    if(NOT PPOOL_HAVE_MPI_EXT_H)
      # mpi_ulfm.c includes mpi-ext.h under PPOOL_HAVE_ULFM: MPICH has
      # MPIX_* in mpi.h only, so give it an empty one.
      file(WRITE ${PROJECT_BINARY_DIR}/ulfm_include/mpi-ext.h "/* MPIX_* are in mpi.h */\n")
      target_include_directories(ppool_mpi PRIVATE ${PROJECT_BINARY_DIR}/ulfm_include)
    endif()
  endif()
  # Without ULFM the PPOOL_HAVE_ULFM path cannot run here; compile it at
  # least, against tests/mpi/ulfm_stub/mpi-ext.h (the MPIX_* declarations
  # with their real signatures), so that it does not rot.
  if(NOT PPOOL_HAVE_ULFM AND PPOOL_TESTS)
    add_library(ppool_mpi_ulfm_compile_check OBJECT ${PROJECT_SOURCE_DIR}/runtime/mpi/mpi_ulfm.c)
    target_include_directories(ppool_mpi_ulfm_compile_check BEFORE PRIVATE
      ${PROJECT_SOURCE_DIR}/tests/mpi/ulfm_stub)
    target_include_directories(ppool_mpi_ulfm_compile_check PRIVATE
      ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/runtime ${PROJECT_SOURCE_DIR}/runtime/mpi)
    target_compile_definitions(ppool_mpi_ulfm_compile_check PRIVATE PPOOL_HAVE_ULFM _GNU_SOURCE)
    target_compile_options(ppool_mpi_ulfm_compile_check PRIVATE ${PP_WARN} -Werror)
    target_link_libraries(ppool_mpi_ulfm_compile_check PRIVATE MPI::MPI_C)
  endif()
  set_target_properties(ppool_mpi PROPERTIES OUTPUT_NAME ppool_mpi EXPORT_NAME mpi
    VERSION ${PROJECT_VERSION} SOVERSION ${PPOOL_SOVERSION})
  add_library(ppool::mpi ALIAS ppool_mpi)
  if(PPOOL_INSTALL)
    install(TARGETS ppool_mpi EXPORT ppoolMpiTargets
      LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
      INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
    install(EXPORT ppoolMpiTargets NAMESPACE ppool:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ppool)
    configure_file(cmake/ppool-mpi.pc.in ${PROJECT_BINARY_DIR}/ppool-mpi.pc @ONLY)
    install(FILES ${PROJECT_BINARY_DIR}/ppool-mpi.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
  endif()
endif()

# ---- bench_mpi: ppool over MPI beside one node and mpi4py.futures ----
if(PPOOL_HAVE_MPI AND PPOOL_BENCH)
  add_executable(bench_mpi ${PROJECT_SOURCE_DIR}/bench/bench_mpi.c)
  target_link_libraries(bench_mpi PRIVATE ppool_mpi)
  target_compile_definitions(bench_mpi PRIVATE _GNU_SOURCE PPOOL_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_compile_options(bench_mpi PRIVATE ${PP_WARN})
  target_include_directories(bench_mpi PRIVATE ${PROJECT_SOURCE_DIR}/tests/mpi)
endif()

# Under ASan the mpi tests run without LeakSanitizer: Open MPI's components
# leave allocations at exit from modules already unloaded, which no
# suppression can name. Memory errors and UBSan still abort them.
set(PP_MPI_TEST_ENV "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")

# ---- tests (label mpi): tests/mpi/test_mpi_<name>.c, each run under mpirun ----
# Each program is one test; tests/mpi/run_mpi.sh runs it with mpirun -np 3
# (root-safe, oversubscribed), checks that no process of it outlives mpirun.
if(PPOOL_TESTS)
  if(PPOOL_HAVE_MPI)
    file(GLOB PP_MPI_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/mpi/test_mpi_*.c)
    file(GLOB PP_MPI_PEERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/mpi/peer_mpi_*.c)
    foreach(src ${PP_MPI_TESTS} ${PP_MPI_PEERS})
      get_filename_component(name ${src} NAME_WE)
      add_executable(${name} ${src})
      target_link_libraries(${name} PRIVATE ppool_mpi m)
      target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/mpi)
      target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
      target_compile_options(${name} PRIVATE ${PP_WARN})
    endforeach()
    foreach(src ${PP_MPI_TESTS})
      get_filename_component(name ${src} NAME_WE)
      set(mode "")
      if(name STREQUAL "test_mpi_mpmd")
        set(mode mpmd)        # rank 2 runs peer_mpi_other
      elseif(name MATCHES "^test_mpi_(rankloss|datastall)$")
        set(mode recovery)    # mpirun --enable-recovery
      elseif(name STREQUAL "test_mpi_rootloss")
        set(mode rootloss)    # the same; the root dies
      endif()
      add_test(NAME ${name} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/mpi/run_mpi.sh
        ${MPIEXEC_EXECUTABLE} ${PROJECT_BINARY_DIR} ${name} ${mode})
      set_tests_properties(${name} PROPERTIES LABELS mpi TIMEOUT 60
        ENVIRONMENT "${PP_MPI_TEST_ENV}")
    endforeach()
    # The root's death over TCP, the transport between nodes: a serving rank
    # blocked in a send to the dead root is ended by its watchdog
    # (runtime/mpi/mpi_watchdog.c; without it this run hangs).
    add_test(NAME test_mpi_rootloss@tcp COMMAND bash ${PROJECT_SOURCE_DIR}/tests/mpi/run_mpi.sh
      ${MPIEXEC_EXECUTABLE} ${PROJECT_BINARY_DIR} test_mpi_rootloss rootloss-tcp)
    set_tests_properties(test_mpi_rootloss@tcp PROPERTIES LABELS mpi TIMEOUT 60
      ENVIRONMENT "${PP_MPI_TEST_ENV}")
    # The MPI examples run unchanged on one rank and on three.
    if(PPOOL_EXAMPLES)
      file(GLOB PP_MPI_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/ex_mpi_*.c)
      foreach(src ${PP_MPI_EXAMPLES})
        get_filename_component(name ${src} NAME_WE)
        add_executable(${name} ${src})
        target_link_libraries(${name} PRIVATE ppool_mpi)
        target_compile_options(${name} PRIVATE ${PP_WARN})
        foreach(np 1 3)
          add_test(NAME example_${name}@np${np} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/mpi/run_mpi.sh
            ${MPIEXEC_EXECUTABLE} ${PROJECT_BINARY_DIR} ${name} np${np}
            ${PROJECT_SOURCE_DIR}/examples/expected/${name}.txt)
          set_tests_properties(example_${name}@np${np} PROPERTIES LABELS mpi TIMEOUT 60
            ENVIRONMENT "${PP_MPI_TEST_ENV}")
        endforeach()
      endforeach()
    endif()
  else()
    add_test(NAME mpi_skipped COMMAND ${CMAKE_COMMAND} -E echo
      "SKIPPED: libppool_mpi not built (PPOOL_MPI=OFF, or MPI not found): no mpi tests")
    set_tests_properties(mpi_skipped PROPERTIES LABELS mpi)
  endif()
endif()
