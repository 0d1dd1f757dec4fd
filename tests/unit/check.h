/* check.h: the unit tests' one assertion. CHECK(cond, fmt, ...) reports a failed condition with the
 * test's file and line, the condition and a message, counts it in `failures` and goes on, so one run
 * reports every failure; a test's main returns non-zero when failures is not 0. Included once by
 * each test program (it defines `failures`). */
#ifndef KILN_TESTS_CHECK_H
#define KILN_TESTS_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(c, ...)                                                              \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #c); \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
            failures++;                                                            \
        }                                                                          \
    } while (0)

#endif
