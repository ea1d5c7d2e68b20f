# What `cmake --install` puts where (DYNAMODB_CACHE_INSTALL, on when top-level): the library,
# the headers with version.h, the CMake package (config + version file), a pkg-config file
# and the LICENSE. The CLI installs itself next to its target.
if(NOT DYNAMODB_CACHE_INSTALL)
  return()
endif()
include(CMakePackageConfigHelpers)

set(DYNAMODB_CACHE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/dynamodb_cache)
install(TARGETS dynamodb_cache EXPORT dynamodb_cacheTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${DYNAMODB_CACHE_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/dynamodb_cache)
install(EXPORT dynamodb_cacheTargets NAMESPACE dynamodb_cache::
  DESTINATION ${DYNAMODB_CACHE_CMAKE_DIR})

# A static library's private dependencies must be found again by the consumer's link; a
# shared one carries them itself.
if(BUILD_SHARED_LIBS)
  set(DYNAMODB_CACHE_STATIC OFF)
else()
  set(DYNAMODB_CACHE_STATIC ON)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/dynamodb_cacheConfig.cmake.in
  ${PROJECT_BINARY_DIR}/dynamodb_cacheConfig.cmake
  INSTALL_DESTINATION ${DYNAMODB_CACHE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/dynamodb_cacheConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/dynamodb_cacheConfig.cmake
              ${PROJECT_BINARY_DIR}/dynamodb_cacheConfigVersion.cmake
  DESTINATION ${DYNAMODB_CACHE_CMAKE_DIR})

# pkg-config. The prefix is found from the .pc file's own place (${pcfiledir}), so the file
# is right wherever the tree is installed (cmake --install --prefix, DESTDIR, a .deb).
# Linking a static library needs its private dependencies (libssl, libcrypto, zlib, zstd,
# simdjson, and libisal when built with it) on the consumer's link line: they are in Requires then,
# with the dynamic loader's library in Libs. Not libcurl: it is loaded at run time (dlopen,
# src/http/curl_transport.cc). A shared library carries them itself, and its headers include
# none of them, so its file requires nothing.
set(_dc_pcdir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(DYNAMODB_CACHE_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _dc_up /root/${_dc_pcdir} /root)
  string(REGEX REPLACE "/$" "" _dc_up "${_dc_up}")
  set(DYNAMODB_CACHE_PC_PREFIX "\${pcfiledir}/${_dc_up}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(DYNAMODB_CACHE_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  set(DYNAMODB_CACHE_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(DYNAMODB_CACHE_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(DYNAMODB_CACHE_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
if(DYNAMODB_CACHE_STATIC)
  set(DYNAMODB_CACHE_PC_REQUIRES "libssl libcrypto zlib libzstd simdjson")
  if(DYNAMODB_CACHE_HAVE_ISAL)
    string(APPEND DYNAMODB_CACHE_PC_REQUIRES " libisal")
  endif()
  set(DYNAMODB_CACHE_PC_LIBS "")
  foreach(_dc_lib ${CMAKE_DL_LIBS})
    string(APPEND DYNAMODB_CACHE_PC_LIBS " -l${_dc_lib}")
  endforeach()
else()
  set(DYNAMODB_CACHE_PC_REQUIRES "")
  set(DYNAMODB_CACHE_PC_LIBS "")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/dynamodb_cache.pc.in
               ${PROJECT_BINARY_DIR}/dynamodb_cache.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/dynamodb_cache.pc DESTINATION ${_dc_pcdir})

install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
