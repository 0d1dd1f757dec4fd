/* rt_oom.c: allocation failure in the runtime's open path (issue 16). Every allocation rt_open
 * makes (malloc, calloc, aligned_alloc), its mmap of the weights file and each pthread_create of its
 * pool are made to fail in turn, one per attempt. Each attempt must either return NULL with an error
 * sentence, having released everything (no block left allocated, no mapping, no descriptor open), or
 * succeed with a smaller pool (a thread that cannot start is not an error) and then compute exactly
 * what the full open does. The test counts the points first, so a new allocation in rt_open is
 * covered without editing this file.
 *
 * The runtime's calls are redirected with the linker's --wrap (tests/CMakeLists.txt), which
 * affects the runtime's objects and not libc's own allocations.
 *   rt_oom WEIGHTS_FILE
 */
#include "tests/resources/rt_common.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/mman.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t k);
void *__real_aligned_alloc(size_t a, size_t n);
void __real_free(void *p);
void *__real_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off);
int __real_munmap(void *a, size_t n);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);

static int armed;       /* count and fail only while rt_open/rt_close run */
static long calls;      /* failure points passed since arming */
static long fail_at;    /* the point that fails, -1 for none */
static long live;       /* blocks allocated and not freed since arming */
static long maps;       /* mappings made and not unmapped since arming */

static int fails(void)
{
    return armed && calls++ == fail_at;
}

void *__wrap_malloc(size_t n)
{
    if (fails())
        return NULL;
    void *p = __real_malloc(n);
    live += armed && p;
    return p;
}

void *__wrap_calloc(size_t n, size_t k)
{
    if (fails())
        return NULL;
    void *p = __real_calloc(n, k);
    live += armed && p;
    return p;
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
    if (fails())
        return NULL;
    void *p = __real_aligned_alloc(a, n);
    live += armed && p;
    return p;
}

void __wrap_free(void *p)
{
    live -= armed && p;
    __real_free(p);
}

void *__wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    if (fails())
        return MAP_FAILED;
    void *p = __real_mmap(a, n, prot, flags, fd, off);
    maps += armed && p != MAP_FAILED;
    return p;
}

int __wrap_munmap(void *a, size_t n)
{
    maps -= armed;
    return __real_munmap(a, n);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (fails())
        return 11; /* EAGAIN */
    return __real_pthread_create(t, a, fn, arg);
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    REQUIRE(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2);
    const char *wpath = argv[1];
    static RtCase want, got;
    char err[512];

    /* the reference, and the number of failure points */
    rt_case_init(&want, 1);
    armed = 1, calls = 0, fail_at = -1, live = 0, maps = 0;
    RtInstance *inst = rt_open(&kiln_model_rtres, wpath, 3, err, sizeof err);
    long points = calls;
    armed = 0;
    if (!inst) {
        fprintf(stderr, "rt_open: %s\n", err);
        return 1;
    }
    REQUIRE(rt_case_run(inst, &want) == 0);
    armed = 1;
    rt_close(inst);
    armed = 0;
    REQUIRE(live == 0 && maps == 0);
    REQUIRE(points >= 4); /* at least: the instance, the mapping, the arena, the pool */

    int fds = open_fds(), errors = 0, smaller = 0;
    for (long k = 0; k < points; k++) {
        armed = 1, calls = 0, fail_at = k, live = 0, maps = 0;
        err[0] = 0;
        inst = rt_open(&kiln_model_rtres, wpath, 3, err, sizeof err);
        armed = 0;
        if (!inst) {
            if (!err[0] || live || maps || open_fds() != fds) {
                fprintf(stderr, "failure point %ld of %ld: rt_open returned NULL with error '%s', leaving %ld blocks, "
                        "%ld mappings and %d descriptors\n", k, points, err, live, maps, open_fds() - fds);
                return 1;
            }
            errors++;
            continue;
        }
        /* a pool with fewer threads: the same results */
        smaller++;
        rt_case_init(&got, 1);
        REQUIRE(rt_case_run(inst, &got) == 0);
        REQUIRE(rt_case_same(&want, &got));
        armed = 1;
        rt_close(inst);
        armed = 0;
        if (live || maps || open_fds() != fds) {
            fprintf(stderr, "failure point %ld: rt_close left %ld blocks, %ld mappings, %d descriptors\n", k, live,
                    maps, open_fds() - fds);
            return 1;
        }
    }
    printf("rt_open: %ld failure points, each failed in turn: %d clean errors, %d smaller pools that computed the "
           "same results, nothing leaked\n", points, errors, smaller);
    return 0;
}
