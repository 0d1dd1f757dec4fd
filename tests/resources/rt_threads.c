/* rt_threads.c: the runtime under ThreadSanitizer (issue 16): NTHREADS threads each open their own
 * instance of rtres (its own pool of two threads, its own mapping of the weights file), run it
 * ROUNDS times on inputs of their own, check each result against the one computed alone
 * beforehand, and close it, all at once, twice over. Built with -fsanitize=thread over the runtime's sources (tests/CMakeLists.txt), so
 * a data race in model.c or pool.c (the pool's hand-off, the instance's state) fails the test
 * (halt_on_error). The compiled kernels are not instrumented: each writes only its own rows.
 *   rt_threads WEIGHTS_FILE
 */
#include "tests/resources/rt_common.h"

#include <pthread.h>

enum { NTHREADS = 4, ROUNDS = 20 };

static const char *wpath;
static RtCase want[NTHREADS];

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    static RtCase got[NTHREADS];
    char err[512];
    for (int pass = 0; pass < 2; pass++) {
        RtInstance *inst = rt_open(&kiln_model_rtres, wpath, 2, err, sizeof err);
        REQUIRE(inst);
        for (int r = 0; r < ROUNDS; r++) {
            rt_case_init(&got[t], (unsigned)t);
            REQUIRE(rt_case_run(inst, &got[t]) == 0);
            REQUIRE(rt_case_same(&want[t], &got[t]));
        }
        rt_close(inst);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2);
    wpath = argv[1];
    char err[512];
    RtInstance *inst = rt_open(&kiln_model_rtres, wpath, 1, err, sizeof err);
    if (!inst) {
        fprintf(stderr, "rt_open: %s\n", err);
        return 1;
    }
    for (int t = 0; t < NTHREADS; t++) {
        rt_case_init(&want[t], (unsigned)t);
        REQUIRE(rt_case_run(inst, &want[t]) == 0);
    }
    rt_close(inst);
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        REQUIRE(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) == 0);
    for (int t = 0; t < NTHREADS; t++)
        REQUIRE(pthread_join(th[t], NULL) == 0);
    printf("rt_threads: %d threads x 2 instances x %d runs, each with a pool of 2, results as computed alone\n",
           NTHREADS, ROUNDS);
    return 0;
}
