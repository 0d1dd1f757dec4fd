/* fuzz_program.c: fuzz target for a compiled program's command line and input files (rt_main in
 * runtime/main.c, the .npy reader, rt_bind, rt_open, rt_run), on the model tests/fuzz/program.kiln
 * compiled by kiln into an object file and linked in (kiln_model_fuzzprog).
 *
 * The input is pieces separated by the four bytes "#%%#". The first piece is the command line, one
 * argument a line (argv[0] is the program's name); each later piece k (from 0) becomes the file
 * `k.npy` in the scratch directory, and "@k" in an argument is replaced by that file's path, so
 * `--input x=@0` reads the second piece. Inputs that could leave the scratch directory or take long
 * are skipped, not run: an argument holding '/' (the fuzzer must not write files elsewhere with
 * --output), or a number above 4 in --threads or --bench. rt_main runs with the scratch directory
 * as the working directory, so that a relative --output NAME lands there too.
 */
#include "fuzz.h"

#include "runtime/kiln_rt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const RtModel kiln_model_fuzzprog;

enum { MAX_ARGS = 32, MAX_FILES = 8 };

static const uint8_t *find(const uint8_t *p, const uint8_t *end, const char *sep)
{
    size_t n = strlen(sep);
    for (; p + n <= end; p++)
        if (!memcmp(p, sep, n))
            return p;
    return end;
}

/* Whether a --threads/--bench value may take long. */
static int too_big(const char *v)
{
    return strlen(v) > 1 || (*v > '4' && *v <= '9');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *end = data + size, *p = data;
    const uint8_t *cut = find(p, end, "#%%#");
    char *line = malloc((size_t)(cut - p) + 1);
    memcpy(line, p, (size_t)(cut - p));
    line[cut - p] = 0;
    char paths[MAX_FILES][512];
    int nfile = 0;
    for (p = cut; p < end && nfile < MAX_FILES; nfile++) {
        p += 4;
        cut = find(p, end, "#%%#");
        char name[16];
        snprintf(name, sizeof name, "%d.npy", nfile);
        snprintf(paths[nfile], sizeof paths[nfile], "%s", fuzz_write(name, p, (size_t)(cut - p)));
        p = cut;
    }
    char *argv[MAX_ARGS + 2];
    int argc = 0, skip = 0;
    argv[argc++] = strdup("fuzzprog");
    for (char *s = line, *nl; s && argc <= MAX_ARGS; s = nl ? nl + 1 : NULL) {
        nl = strchr(s, '\n');
        if (nl)
            *nl = 0;
        if (strchr(s, '/'))
            skip = 1;
        /* "@k" -> the k-th file's path */
        char buf[2048];
        size_t o = 0;
        for (const char *c = s; *c && o < sizeof buf - 600; c++) {
            if (c[0] == '@' && c[1] >= '0' && c[1] < '0' + nfile) {
                o += (size_t)snprintf(buf + o, sizeof buf - o, "%s", paths[c[1] - '0']);
                c++;
            } else
                buf[o++] = *c;
        }
        buf[o] = 0;
        argv[argc++] = strdup(buf);
    }
    argv[argc] = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        int opt = !strncmp(a, "--threads", 9) || !strncmp(a, "--bench", 7);
        if (opt && eq && too_big(eq + 1))
            skip = 1;
        if (opt && !eq && i + 1 < argc && too_big(argv[i + 1]))
            skip = 1;
    }
    if (!skip) {
        /* rt_main prints the outputs: not to the fuzzer's terminal. Its one-line errors stay on
         * stderr, where a sanitizer's report must go too. */
        fflush(stdout);
        int out = dup(1), cwd = open(".", O_RDONLY | O_DIRECTORY);
        dup2(fileno(fuzz_null()), 1);
        if (cwd < 0 || chdir(fuzz_dir()))
            abort();
        rt_main(&kiln_model_fuzzprog, argc, argv);
        if (fchdir(cwd))
            abort();
        fflush(stdout);
        dup2(out, 1);
        close(out);
        close(cwd);
    }
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(line);
    return 0;
}
