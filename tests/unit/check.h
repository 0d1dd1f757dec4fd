/* check.h: the unit tests' assertions. CHECK(cond, fmt, ...) reports a failed condition with the
 * test's file and line, the condition and a message, counts it in `failures` and goes on, so one run
 * reports every failure; a test's main returns non-zero when failures is not 0. REQUIRE(cond) is for
 * a condition the rest of the test stands on (a file that opened, a result that is not NULL): it
 * reports the same way and exits with status 1 at once. Included once by each test program (it
 * defines `failures`). */
#ifndef KILN_TESTS_CHECK_H
#define KILN_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int failures __attribute__((unused)); /* unused by a test that only REQUIREs */

#define CHECK(c, ...)                                                              \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #c); \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
            failures++;                                                            \
        }                                                                          \
    } while (0)

#define REQUIRE(c)                                                                \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

#endif
