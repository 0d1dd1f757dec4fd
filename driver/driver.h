/* driver.h: the `kiln` command (private to driver/).
 *
 * Sections, by source file:
 *   main.c     option parsing and the subcommands
 *   report.c   what `kiln check` prints: parameters, FLOPs, activation memory
 *   explore.c  `kiln explore`: a sweep of one option, measured point by point
 */
#ifndef KILN_DRIVER_H
#define KILN_DRIVER_H

#include "frontend/frontend.h"

/* ---------------------------------------------------------------- report.c */

/* Bytes of the largest set of intermediates alive at once when nodes run in graph order, each freed
 * after its last use (weights, constants and inputs excluded); also the sum of all intermediates. */
void report_activation_bytes(const Graph *g, const int64_t *vals, double *peak, double *total);
/* The summary of `kiln check`. */
void report_summary(FILE *f, const Graph *g);

/* ---------------------------------------------------------------- explore.c */

/* `kiln explore` (argv[1] is "explore"); returns the exit status. */
int explore_main(int argc, char **argv);

#endif
