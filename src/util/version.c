/* The library's version, from CMake's project(VERSION): the one source the
 * package version (debian/changelog, checked by test_version) also follows. */
#include "srvocsp.h"

#if !defined(SRVOCSP_BUILD_VERSION) || !defined(SRVOCSP_BUILD_VERSION_NUMBER)
#error "SRVOCSP_BUILD_VERSION comes from CMakeLists.txt"
#endif

/* Headers that describe another version than the one being built would
 * let programs compile against promises this library does not keep. */
_Static_assert(SRVOCSP_VERSION_NUMBER == SRVOCSP_BUILD_VERSION_NUMBER,
               "SRVOCSP_VERSION_* in include/srvocsp.h disagree with project(VERSION) in CMakeLists.txt");

const char *srvocsp_version(int *number)
{
    if (number != NULL)
        *number = SRVOCSP_VERSION_NUMBER;
    return SRVOCSP_BUILD_VERSION;
}
