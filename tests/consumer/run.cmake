# The library as users and packagers get it. cmake -P this file with -DMODE=... and
#   -DSOURCE_DIR  the repository          -DBUILD_DIR  the main build (already built)
#   -DWORK_DIR    scratch for this mode   -DCXX, -DLAUNCHER, -DGENERATOR  the main build's
#   -DVERSION     the project version     -DSONAME  the shared library's expected SONAME
#   -DWITH_CLI    whether the main build has the CLI (then it must be installed and packed)
# MODE:
#   install       cmake --install the main build into WORK_DIR/prefix; no private header leaks
#   find_package  a consumer project built against that prefix with find_package()
#   pkg_config    the same main.cc compiled by hand with `pkg-config --cflags --libs`
#   subproject    add_subdirectory() with BUILD_SHARED_LIBS=ON and no C++ standard: builds the
#                 library alone (no tests, CLI, examples; no GTest/CLI11), the consumer runs,
#                 the .so has the SONAME and exports the API but not the private helpers
#   deb           cpack -G DEB on the main build: the .deb holds library, headers, CLI, LICENSE
cmake_minimum_required(VERSION 3.20)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

# The consumer prints "consumer ok: ... version <VERSION>" (the installed version.h).
function(run_consumer exe)
  run(${exe})
  message("${out}")
  if(NOT out MATCHES "consumer ok: .* version ${VERSION}\n")
    message(FATAL_ERROR "consumer output is not the expected one (version ${VERSION}): ${out}")
  endif()
endfunction()

set(prefix ${WORK_DIR}/../prefix)  # shared by install, find_package and pkg_config
set(cmake_args -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX})
if(LAUNCHER)
  list(APPEND cmake_args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

if(MODE STREQUAL "install")
  file(REMOVE_RECURSE ${prefix})
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
  if(EXISTS ${prefix}/include/dynamodb_cache/../../src)
    message(FATAL_ERROR "private sources were installed")
  endif()
  # Fails when a line of one of `files` matches `regex`; `what` says what that means.
  function(refuse_lines files regex what)
    foreach(f ${files})
      file(STRINGS ${f} bad REGEX "${regex}")
      if(bad)
        message(FATAL_ERROR "${f} ${what}: ${bad}")
      endif()
    endforeach()
  endfunction()
  file(GLOB_RECURSE leaked ${prefix}/include/*.h)
  refuse_lines("${leaked}" "#include <(curl|openssl|simdjson|zstd|zlib)" "leaks a private dependency")
  # libcurl is loaded at run time (dlopen): neither the CMake package nor pkg-config may ask a
  # consumer for its development files.
  file(GLOB_RECURSE meta ${prefix}/*/dynamodb_cacheConfig.cmake ${prefix}/*/dynamodb_cache.pc)
  refuse_lines("${meta}" "CURL|libcurl" "asks for libcurl, which the library loads at run time")
  set(expected include/dynamodb_cache/version.h include/dynamodb_cache/cache.h
      share/doc/dynamodb_cache/LICENSE)
  if(WITH_CLI)
    list(APPEND expected bin/dynamodb-cache)
  endif()
  foreach(f ${expected})
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "not installed: ${f}")
    endif()
  endforeach()

elseif(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/build ${cmake_args}
      -DCMAKE_PREFIX_PATH=${prefix})
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
  run_consumer(${WORK_DIR}/build/consumer)

elseif(MODE STREQUAL "pkg_config")
  file(GLOB_RECURSE pc ${prefix}/*/dynamodb_cache.pc)
  if(NOT pc)
    message(FATAL_ERROR "no dynamodb_cache.pc installed under ${prefix}")
  endif()
  get_filename_component(pcdir ${pc} DIRECTORY)
  set(pkg ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${pcdir} pkg-config)
  run(${pkg} --modversion dynamodb_cache)
  if(NOT out STREQUAL "${VERSION}\n")
    message(FATAL_ERROR "pkg-config --modversion says ${out}, not ${VERSION}")
  endif()
  run(${pkg} --cflags --libs dynamodb_cache)
  separate_arguments(flags UNIX_COMMAND "${out}")
  run(${LAUNCHER} ${CXX} -std=c++20 ${SOURCE_DIR}/tests/consumer/main.cc ${flags}
      -o ${WORK_DIR}/consumer)
  run_consumer(${WORK_DIR}/consumer)

elseif(MODE STREQUAL "subproject")
  set(b ${WORK_DIR}/build)
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer/subproject -B ${b} ${cmake_args}
      -DDYNAMODB_CACHE_SOURCE_DIR=${SOURCE_DIR} -DBUILD_SHARED_LIBS=ON)
  file(STRINGS ${b}/CMakeCache.txt found REGEX "^(GTest|CLI11|benchmark)_DIR:")
  if(found)
    message(FATAL_ERROR "a subproject build looked for test/CLI/benchmark packages: ${found}")
  endif()
  run(${CMAKE_COMMAND} --build ${b})
  file(GLOB_RECURSE built ${b}/*unit_tests* ${b}/*integration_tests* ${b}/*micro_bench*
       ${b}/*credential_example* ${b}/dynamodb-cache)
  if(built OR EXISTS ${b}/dynamodb_cache/tests)
    message(FATAL_ERROR "a subproject build built our tests, examples, benchmarks or CLI: ${built}")
  endif()
  run_consumer(${b}/consumer)

  file(GLOB so ${b}/dynamodb_cache/libdynamodb_cache.so.*.*.*)
  if(NOT so)
    message(FATAL_ERROR "BUILD_SHARED_LIBS=ON built no versioned libdynamodb_cache.so")
  endif()
  find_program(READELF NAMES readelf REQUIRED)
  find_program(NM NAMES nm REQUIRED)
  run(${READELF} -d ${so})
  if(NOT out MATCHES "\\(SONAME\\)[^\n]*\\[${SONAME}\\]")
    message(FATAL_ERROR "SONAME of ${so} is not ${SONAME}:\n${out}")
  endif()
  run(${NM} -D -C --defined-only ${so})
  set(exports "${out}")
  foreach(api "dynamodb_cache::validate_key(" "dynamodb_cache::dynamodb::Client::Client("
              "typeinfo for dynamodb_cache::Error")
    string(FIND "${exports}" "${api}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "the shared library does not export ${api}")
    endif()
  endforeach()
  # Helpers declared only under src/ stay hidden.
  string(REGEX MATCHALL "dynamodb_cache::(util|detail|layout|dynamodb::wire|aws::detail|dynamodb::detail)::[^\n]*"
         private "${exports}")
  if(private)
    message(FATAL_ERROR "the shared library exports private symbols: ${private}")
  endif()

elseif(MODE STREQUAL "deb")
  find_program(DPKG_DEB NAMES dpkg-deb REQUIRED)
  run(cpack -G DEB --config ${BUILD_DIR}/CPackConfig.cmake -B ${WORK_DIR})
  file(GLOB deb ${WORK_DIR}/*.deb)
  list(LENGTH deb n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "cpack -G DEB made ${n} .deb files: ${deb}")
  endif()
  run(${DPKG_DEB} -f ${deb} Package Version)
  if(NOT out STREQUAL "Package: dynamodb-cache\nVersion: ${VERSION}\n")
    message(FATAL_ERROR "unexpected control fields:\n${out}")
  endif()
  run(${DPKG_DEB} -c ${deb})
  set(expected "/include/dynamodb_cache/cache.h\n" "/include/dynamodb_cache/version.h\n"
      "/libdynamodb_cache\\.(a|so)" "/cmake/dynamodb_cache/dynamodb_cacheConfig.cmake\n"
      "/pkgconfig/dynamodb_cache.pc\n" "/doc/dynamodb_cache/LICENSE\n")
  if(WITH_CLI)
    list(APPEND expected "/bin/dynamodb-cache\n")
  endif()
  foreach(f ${expected})
    if(NOT out MATCHES "${f}")
      message(FATAL_ERROR "the .deb lacks ${f}:\n${out}")
    endif()
  endforeach()
  message("${deb}:\n${out}")

else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()
