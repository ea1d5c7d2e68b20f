# DYNAMODB_CACHE_BUILD_FUZZ: the whole build (library included) gets libFuzzer's coverage
# instrumentation, AddressSanitizer and UndefinedBehaviorSanitizer; fuzz/CMakeLists.txt links
# the targets with libFuzzer's main. Use a build folder of its own (scripts/fuzz: build-fuzz/).
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "DYNAMODB_CACHE_BUILD_FUZZ needs clang with libFuzzer "
                      "(e.g. CXX=clang++-14, packages clang-14 libclang-rt-14-dev); "
                      "this is ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
endif()
# -O1 -g: fast enough to fuzz, with readable stacks; asserts stay on.
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                    -fno-omit-frame-pointer -O1 -g)
add_link_options(-fsanitize=address,undefined)
