# Sanitizer and fuzzer builds (clang only), each in its own build directory (`make sanitize`,
# `make fuzz`):
#   FERRY_SANITIZE=address  ASan + UBSan, every UB report fatal (build-asan/).
#   FERRY_SANITIZE=thread   TSan (build-tsan/).
#   FERRY_FUZZ=ON           libFuzzer targets in fuzz/; implies FERRY_SANITIZE=address, and every
#                           ferry library is compiled with coverage (-fsanitize=fuzzer-no-link),
#                           so the ASan build's tests and the fuzzers share one build.
# Debian's gRPC, protobuf, abseil and hiredis are not instrumented: their own bugs go unseen, and
# TSan cannot see their locks (cmake/sanitizers/tsan_absl_sync.cc makes abseil's visible).

set(FERRY_SANITIZE "" CACHE STRING "Sanitizer build: address (ASan+UBSan) or thread (TSan)")
option(FERRY_FUZZ "Build the libFuzzer targets in fuzz/ (needs clang)" OFF)

if(FERRY_FUZZ AND FERRY_SANITIZE STREQUAL "")
  set(FERRY_SANITIZE address)
endif()
if(FERRY_FUZZ AND NOT FERRY_SANITIZE STREQUAL "address")
  message(FATAL_ERROR "FERRY_FUZZ needs FERRY_SANITIZE=address (libFuzzer runs under ASan)")
endif()
if(NOT FERRY_SANITIZE MATCHES "^(|address|thread)$")
  message(FATAL_ERROR "FERRY_SANITIZE must be address or thread, not '${FERRY_SANITIZE}'")
endif()

if(NOT FERRY_SANITIZE STREQUAL "")
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "FERRY_SANITIZE needs clang: -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # -O1 keeps the tests' run time near a release build's; line tables are enough for the
  # reports' stack traces and cost little to compile.
  add_compile_options(-O1 -gline-tables-only -fno-omit-frame-pointer)
  if(FERRY_SANITIZE STREQUAL "address")
    set(FERRY_SANITIZE_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined)
  else()
    set(FERRY_SANITIZE_FLAGS -fsanitize=thread)
  endif()
  add_compile_options(${FERRY_SANITIZE_FLAGS})
  add_link_options(${FERRY_SANITIZE_FLAGS})
  if(FERRY_FUZZ)
    add_compile_options(-fsanitize=fuzzer-no-link)
  endif()
  # The sanitizers bring their own allocator; jemalloc would replace it.
  set_target_properties(PkgConfig::JEMALLOC PROPERTIES INTERFACE_LINK_LIBRARIES ""
    INTERFACE_LINK_OPTIONS "")
  if(FERRY_SANITIZE STREQUAL "thread")
    # Every executable defines (and exports, so gRPC's calls reach them too) abseil's lock
    # functions with TSan annotations; see the file.
    add_library(ferry_tsan_absl_sync OBJECT ${CMAKE_CURRENT_LIST_DIR}/sanitizers/tsan_absl_sync.cc)
    target_link_libraries(ferry_tsan_absl_sync PUBLIC absl::synchronization absl::time
      ${CMAKE_DL_LIBS})
    add_link_options(-rdynamic)
  endif()
endif()

# Called at the end of the top-level CMakeLists.txt: links the TSan lock annotations into every
# executable of the build.
function(ferry_sanitizer_link_executables)
  if(NOT FERRY_SANITIZE STREQUAL "thread")
    return()
  endif()
  set(dirs ${PROJECT_SOURCE_DIR})
  while(dirs)
    list(POP_FRONT dirs dir)
    get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
    list(APPEND dirs ${subdirs})
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(target IN LISTS targets)
      get_target_property(type ${target} TYPE)
      if(type STREQUAL "EXECUTABLE")
        target_link_libraries(${target} PRIVATE ferry_tsan_absl_sync)
      endif()
    endforeach()
  endwhile()
endfunction()
