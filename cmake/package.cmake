# CPack: `cpack -G DEB` in a build folder makes one .deb holding what `cmake --install`
# installs (library, headers, CMake and pkg-config files, CLI, LICENSE). Packagers who want
# the Debian multiarch layout configure with -DCMAKE_INSTALL_PREFIX=/usr.
set(DYNAMODB_CACHE_PACKAGE_CONTACT "dynamodb_cache developers <dynamodb-cache@localhost>"
    CACHE STRING "Maintainer of the packages cpack makes (Name <email>)")
set(CPACK_PACKAGE_NAME dynamodb-cache)  # Debian package names have no underscore
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "${DYNAMODB_CACHE_PACKAGE_CONTACT}")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
# Run-time dependencies of the CLI and of a shared library, from dpkg-shlibdeps.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
if(NOT BUILD_SHARED_LIBS)
  # The static library and its CMake package need the dependencies' development files; of
  # libcurl, loaded at run time (dlopen, src/http/curl_transport.cc), only the library.
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "libcurl4 | libcurl4t64, libssl-dev, zlib1g-dev, libzstd-dev, libsimdjson-dev")
  if(DYNAMODB_CACHE_HAVE_ISAL)
    string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libisal-dev")
  endif()
else()
  # libcurl is loaded at run time (dlopen, src/http/curl_transport.cc: proxies, credential
  # endpoints), which dpkg-shlibdeps cannot see.
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libcurl4 | libcurl4t64")
endif()
include(CPack)
