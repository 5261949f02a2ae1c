/* version.c — the version of the library actually loaded (pp_version). */
#include "ppool.h"

unsigned pp_version(void)
{
    return PPOOL_VERSION;
}

const char *pp_version_string(void)
{
    return PPOOL_VERSION_STRING;
}
