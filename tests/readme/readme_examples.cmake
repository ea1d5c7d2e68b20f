# The README's C++ examples, built and run as printed (issue 25): at configure time every
# ```cpp block of README.md becomes a program in the build folder (CMake configures again when
# the README changes), built with the tests against the library, so the README cannot show
# what the code lacks.
#   - A block is a complete program (it has main()), run by the CTest test `readme_examples`
#     against a fresh dynalite (label integration): it must exit 0.
#   - A block after the line `<!-- fragment -->` is a piece of a function: it is compiled
#     inside `void fragment(Cache<std::string>& cache)`, after every public header and
#     `using namespace dynamodb_cache;`, and not run.
set(_readme ${PROJECT_SOURCE_DIR}/README.md)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_readme})
file(READ ${_readme} _rest)
set(_fence_open "```cpp\n")
set(_fence_close "\n```\n")
set(_marker "<!-- fragment -->\n")
set(_n 0)
set(_programs)
while(TRUE)
  string(FIND "${_rest}" "${_fence_open}" _at)
  if(_at EQUAL -1)
    break()
  endif()
  # Whether the marker line ends right before the fence.
  string(LENGTH "${_marker}" _marker_len)
  set(_fragment FALSE)
  if(_at GREATER_EQUAL _marker_len)
    math(EXPR _marker_at "${_at} - ${_marker_len}")
    string(SUBSTRING "${_rest}" ${_marker_at} ${_marker_len} _before)
    if(_before STREQUAL _marker)
      set(_fragment TRUE)
    endif()
  endif()
  string(LENGTH "${_fence_open}" _open_len)
  math(EXPR _body_at "${_at} + ${_open_len}")
  string(SUBSTRING "${_rest}" ${_body_at} -1 _rest)
  string(FIND "${_rest}" "${_fence_close}" _end)
  if(_end EQUAL -1)
    message(FATAL_ERROR "README.md: a ```cpp block without its closing fence")
  endif()
  string(SUBSTRING "${_rest}" 0 ${_end} _body)
  string(SUBSTRING "${_rest}" ${_end} -1 _rest)
  math(EXPR _n "${_n} + 1")
  if(_fragment)
    string(CONCAT _source
      "// README.md's C++ block ${_n} (a fragment), as printed there.\n"
      "#include <dynamodb_cache/dynamodb_cache.h>\n#include <dynamodb_cache/json_codec.h>\n"
      "using namespace dynamodb_cache;\n"
      "[[maybe_unused]] static void fragment(Cache<std::string>& cache) {\n(void)cache;\n"
      "${_body}\n}\nint main() {}\n")
  else()
    string(CONCAT _source "// README.md's C++ block ${_n}, as printed there.\n${_body}\n")
  endif()
  set(_file ${CMAKE_CURRENT_BINARY_DIR}/readme/readme_example_${_n}.cc)
  set(_old "")
  if(EXISTS ${_file})
    file(READ ${_file} _old)
  endif()
  if(NOT _old STREQUAL _source)  # unchanged blocks are not rebuilt
    file(WRITE ${_file} "${_source}")
  endif()
  add_executable(readme_example_${_n} ${_file})
  target_compile_options(readme_example_${_n} PRIVATE ${DYNAMODB_CACHE_WARNINGS})
  target_link_libraries(readme_example_${_n} PRIVATE dynamodb_cache nlohmann_json::nlohmann_json)
  if(NOT _fragment)
    list(APPEND _programs $<TARGET_FILE:readme_example_${_n}>)
  endif()
endwhile()
if(_n EQUAL 0)
  message(FATAL_ERROR "README.md has no ```cpp block: the extraction in tests/readme/ is out of date")
endif()
# Each complete program in turn against one fresh dynalite (a program of its own per table).
add_test(NAME readme_examples
  COMMAND ${WITH_DYNALITE} sh -c "set -e; for p in \"$@\"; do echo \"== $p\"; \"$p\"; done" readme_examples
          ${_programs})
set_tests_properties(readme_examples PROPERTIES LABELS integration TIMEOUT 120)
