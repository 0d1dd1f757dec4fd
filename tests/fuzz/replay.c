/* replay.c: runs a fuzz target's LLVMFuzzerTestOneInput once on every file named on the command
 * line, and on every file of every directory named (not recursively), in name order; the ctest
 * replay of the committed corpora, built with the normal compiler (no libFuzzer needed).
 *
 * A crash or a sanitizer report fails the test by itself; a target returning non-zero fails it
 * too. Prints the number of inputs run, so a test that found none (a wrong path) is visible:
 * an argument that is neither a file nor a directory is an error.
 */
#include "fuzz.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf)
        abort();
    /* a copy of exactly the file's size, so that ASan sees a read past the end */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    int rc = LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    if (rc) {
        fprintf(stderr, "replay: %s: the target returned %d\n", path, rc);
        return -1;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    int runs = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st)) {
            fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed |= run_file(argv[i]) != 0;
            runs++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d)
            return 1;
        int n = 0, cap = 64;
        char **names = malloc(sizeof *names * (size_t)cap);
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.')
                continue;
            if (n == cap)
                names = realloc(names, sizeof *names * (size_t)(cap *= 2));
            size_t len = strlen(argv[i]) + strlen(e->d_name) + 2;
            names[n] = malloc(len);
            snprintf(names[n++], len, "%s/%s", argv[i], e->d_name);
        }
        closedir(d);
        qsort(names, (size_t)n, sizeof *names, by_name);
        for (int k = 0; k < n; k++) {
            if (!stat(names[k], &st) && S_ISREG(st.st_mode)) {
                failed |= run_file(names[k]) != 0;
                runs++;
            }
            free(names[k]);
        }
        free(names);
    }
    printf("replay: %d inputs%s\n", runs, failed ? ", some failed" : "");
    return failed || !runs;
}
