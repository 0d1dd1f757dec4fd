# install.cmake: what `cmake --install build --prefix P` puts in P, and the Debian package CPack makes
# of it (`cd build && cpack -G DEB`). Included from the top-level CMakeLists.txt.
#
#   P/bin/kiln                          the compiler; it finds the runtime below relative to itself
#   P/lib/libkiln_rt.a                  the runtime `kiln build` links programs and libraries against
#   P/include/kiln/kiln_rt.h, kiln_dtype.h   the runtime's header (for --emit obj users)
#   P/lib/cmake/kiln/                   the CMake package: kiln::kiln, kiln::runtime, kiln_add_model()
#   P/lib/pkgconfig/kiln.pc             pkg-config: the runtime's flags
#   P/share/man/man1/kiln.1             the man page, made from `kiln --help` (cmake/kiln-man.sh)
include(CMakePackageConfigHelpers)

install(TARGETS kiln RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS kiln_rt ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES runtime/kiln_rt.h runtime/kiln_dtype.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln)

# ---- the CMake package
set(KILN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kiln)
set(KILN_RT_LINK_OPTIONS "")
if(KILN_SANITIZE)
  set(KILN_RT_LINK_OPTIONS "-fsanitize=address,undefined")
endif()
configure_package_config_file(cmake/kilnConfig.cmake.in ${CMAKE_BINARY_DIR}/kilnConfig.cmake
                              INSTALL_DESTINATION ${KILN_CMAKE_DIR}
                              PATH_VARS CMAKE_INSTALL_BINDIR CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_INCLUDEDIR)
# 0.x: a minor version may change the generated header's API, so only the same minor is compatible
write_basic_package_version_file(${CMAKE_BINARY_DIR}/kilnConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/kilnConfig.cmake ${CMAKE_BINARY_DIR}/kilnConfigVersion.cmake
              cmake/kilnFunctions.cmake DESTINATION ${KILN_CMAKE_DIR})

# ---- pkg-config: the prefix found from the .pc file's own place (${pcfiledir}), so the file is true
# in any prefix, the Debian package's /usr included
file(RELATIVE_PATH KILN_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
configure_file(cmake/kiln.pc.in ${CMAKE_BINARY_DIR}/kiln.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/kiln.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# ---- the man page, made from the help texts at build time (one source of truth: driver/main.c)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/kiln.1
                   COMMAND sh ${CMAKE_SOURCE_DIR}/cmake/kiln-man.sh $<TARGET_FILE:kiln> ${CMAKE_BINARY_DIR}/kiln.1
                   DEPENDS kiln ${CMAKE_SOURCE_DIR}/cmake/kiln-man.sh
                   COMMENT "kiln.1: the man page from kiln --help" VERBATIM)
add_custom_target(kiln_man ALL DEPENDS ${CMAKE_BINARY_DIR}/kiln.1)
install(FILES ${CMAKE_BINARY_DIR}/kiln.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# ---- the Debian package: `cd build && cpack -G DEB` writes kiln_VERSION_ARCH.deb of what is above,
# under /usr. The shared libraries kiln loads (LLVM, cJSON, protobuf-c, libc) become Depends through
# dpkg-shlibdeps; the rest are what `kiln build` runs: a C compiler driver and ar to link programs
# and libraries, and libc's development files (-lm, -lpthread, crt files) for them.
set(CPACK_PACKAGE_NAME kiln)
set(CPACK_PACKAGE_VENDOR "the kiln project")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "ahead-of-time compiler for transformer models")
set(CPACK_PACKAGE_DESCRIPTION "kiln compiles transformer models written in its model language (or ONNX) into
native programs and libraries with a small C runtime, through LLVM.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "kiln developers <kiln@invalid>")
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "gcc | c-compiler, binutils, libc6-dev")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "graphviz, gnuplot-nox, pkg-config")
include(CPack)
