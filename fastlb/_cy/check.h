/* FLB_CHECK(cond): a debug-build assertion for proven-bounds pointer code.
 * Normal builds compile it away; FASTLB_DEBUG=1 builds abort with a message,
 * so a fuzz run under the debug build catches an out-of-bounds index. */
#ifndef FLB_CHECK_H
#define FLB_CHECK_H
#ifdef FLB_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define FLB_CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "FLB_CHECK failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
    abort(); } } while (0)
#else
#define FLB_CHECK(cond) ((void)0)
#endif
#endif
