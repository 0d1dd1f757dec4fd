/* explore.c: `kiln explore`, what one option of a pass saves and what it costs.
 *
 *   kiln explore MODEL --prune-tokens 'tome:r=[0,2,4,8]' --input image=X.npy --labels Y.npy
 *   kiln explore MODEL --kv-cache 'window:[32,64,128]' --text FILE [--plot OUT.png]
 *
 * One argument holds a list in brackets; each item is one point of the sweep, the argument with the
 * brackets replaced by the item (`none` alone in the brackets leaves the option out: the pass off).
 * For each point, as a user would do it by hand, kiln runs itself as subprocesses:
 *   kiln check MODEL ARGS        FLOPs per run and the planned activation arena (sizes at their bounds)
 *   kiln build MODEL ARGS --weights-mode external -o TMP/prog
 *                                the weights blob's size (quantized and packed as the program holds it)
 *   TMP/prog --input ... --output NAME=TMP/out.npy   accuracy: rows of the output whose argmax is the label
 *   TMP/prog --eval FILE [--stream]                  nats/char (--stream when the point has a KV cache)
 * and times the quality run (wall clock, program start included: one run, as steady as the machine).
 * Running the built program, not a copy of its logic, is the point: the table's quality column is what
 * the model gives run directly at that knob. The table goes to stdout, progress lines to stderr, and
 * with --plot the trade-off curves (quality against FLOPs and against time) to a PNG through gnuplot.
 */
#include "driver/driver.h"
#include "runtime/kiln_rt.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { EX_MAX_ARGS = 128, EX_MAX_POINTS = 64 };

typedef struct Point {
    char value[256];      /* the swept argument at this point ("tome:r=2"), or "none" */
    int off;              /* the swept option left out (the item was none) */
    double flops;         /* kiln check's FLOPs per run, symbolic sizes at their bounds */
    double arena_bytes;   /* the planned activation arena, at the bounds */
    double weights_bytes; /* the weights blob the program maps */
    double seconds;       /* wall time of the quality run */
    double quality;       /* accuracy in percent, or nats/char */
} Point;

typedef struct Explore {
    const char *self;                  /* this kiln, run for check and build */
    const char *model;
    int nfwd;
    const char *fwd[EX_MAX_ARGS];      /* arguments passed on to kiln check and kiln build */
    int sweep;                         /* index in fwd of the argument with the [list], or -1 */
    const char *opt;                   /* -O0..-O3 (build only), or NULL */
    int ninput;
    const char *inputs[EX_MAX_ARGS];   /* NAME=FILE.npy for the program */
    const char *output, *labels, *text, *plot, *threads;
    char dir[64];                      /* the temporary directory */
    char outname[128];                 /* the output scored against the labels */
} Explore;

static const char *help_explore =
    "usage: kiln explore MODEL OPTION 'SPEC[A,B,...]' [kiln options ...]\n"
    "                    (--input NAME=FILE.npy ... --labels FILE.npy [--output NAME] | --text FILE)\n"
    "                    [--plot OUT.png] [--threads N] [-O0..-O3]\n"
    "\n"
    "Sweeps one knob: the one argument that holds a list in brackets is replaced by each item in turn\n"
    "(items separated by commas, or by | when an item has commas itself); an item none, alone in the\n"
    "brackets, leaves the option out. For example --prune-tokens 'tome:r=[0,2,4,8]',\n"
    "--kv-cache 'window:[32,64,128]', --quant '[none,int8,w8,w4]', -D 'L=[2,4]'. The other options\n"
    "(--weights, -D, --passes, --kv-cache, --prune-tokens, --quant, --bound) apply to every point.\n"
    "For each point kiln runs kiln check (FLOPs per run and the planned activation arena, symbolic\n"
    "sizes at their bounds), kiln build --weights-mode external (the weights' bytes as the program\n"
    "maps them) and the built program on the quality data, whose wall time (program start included,\n"
    "one run) is the time column:\n"
    "  --input NAME=FILE.npy ... --labels FILE.npy   accuracy: the share of rows of the output (the\n"
    "                  first one, or --output NAME) whose largest value is at the label's index\n"
    "  --text FILE     nats/char of a character-level language model (the program's --eval; with\n"
    "                  --stream when the point has --kv-cache, so the cache's policy counts)\n"
    "Prints a progress line per step to stderr and the table to stdout. --plot OUT.png draws quality\n"
    "against FLOPs and against time with gnuplot (apt-get install gnuplot-nox). --threads N is\n"
    "passed to the program; -O to kiln build.\n";

/* ---------------------------------------------------------------- running kiln and the program */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Runs argv (searched on PATH when it has no slash) with stdout into out_path (NULL: kiln's stdout)
 * and stderr into err_path (NULL: kiln's stderr; else shown only when the command fails, so that
 * kiln build's "wrote ..." lines do not bury the progress lines); 0 when it exits with status 0,
 * else -1 after a sentence on stderr. */
static int spawn(char *const *argv, const char *out_path, const char *err_path, const char *what)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out_path)
        posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err_path)
        posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        fprintf(stderr, "kiln explore: error: cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "kiln explore: error: waiting for %s: %s\n", argv[0], strerror(errno));
            return -1;
        }
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
        char *msg = err_path ? diag_read_text(NULL, err_path, "") : NULL;
        if (msg)
            fputs(msg, stderr);
        free(msg);
        fprintf(stderr, "kiln explore: error: %s failed (%s %d)\n", what, WIFEXITED(st) ? "exit status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        return -1;
    }
    return 0;
}

/* The kiln arguments of point p: fwd with the swept argument replaced (or left out, with its option
 * when that is a separate argument). Returns the count written into args (from index at). */
static int point_args(const Explore *e, const Point *p, const char **args, int at)
{
    int n = at;
    for (int i = 0; i < e->nfwd; i++) {
        int swept_opt = i + 1 == e->sweep && e->fwd[e->sweep][0] != '-';
        if (p->off && (i == e->sweep || swept_opt))
            continue;
        args[n++] = i == e->sweep ? p->value : e->fwd[i];
    }
    return n;
}

static int point_has(const Explore *e, const Point *p, const char *opt)
{
    const char *args[EX_MAX_ARGS + 8];
    int n = point_args(e, p, args, 0);
    for (int i = 0; i < n; i++)
        if (!strcmp(args[i], opt))
            return 1;
    return 0;
}

static char *path_in(const Explore *e, const char *file, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", e->dir, file);
    return buf;
}

/* ---------------------------------------------------------------- what kiln check prints */

/* "94.50 GFLOP" or "197.81 MiB" after prefix on a line of the check report: the number scaled by
 * its unit's prefix; -1 when the line is missing. */
static double report_value(const char *text, const char *prefix)
{
    const char *line = strstr(text, prefix);
    if (!line)
        return -1;
    char *end;
    double v = strtod(line + strlen(prefix), &end);
    while (*end == ' ')
        end++;
    static const char *pre[] = {"k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"};
    static const double mul[] = {1e3, 1e6, 1e9, 1e12, 1024.0, 1048576.0, 1073741824.0, 1099511627776.0};
    for (int k = 7; k >= 0; k--) /* the two-letter binary prefixes first */
        if (!strncmp(end, pre[k], strlen(pre[k])) && end[strlen(pre[k])] != ' ')
            return v * mul[k];
    return v;
}

/* FLOPs, the arena and (once) the first output's name from `kiln check`. */
static int measure_check(Explore *e, Point *p)
{
    const char *argv[EX_MAX_ARGS + 8] = {e->self, "check", e->model};
    int n = point_args(e, p, argv, 3);
    argv[n] = NULL;
    char out[128];
    if (spawn((char *const *)argv, path_in(e, "check.txt", out, sizeof out), NULL, "kiln check"))
        return -1;
    char *text = diag_read_text(NULL, out, "");
    if (!text) {
        fprintf(stderr, "kiln explore: error: cannot read %s\n", out);
        return -1;
    }
    p->flops = report_value(text, "FLOPs per run: ");
    p->arena_bytes = report_value(text, "activation memory: ");
    const char *outs = strstr(text, "\noutputs:\n  ");
    if (!e->outname[0] && outs) {
        outs += strlen("\noutputs:\n  ");
        size_t k = strcspn(outs, ":\n");
        snprintf(e->outname, sizeof e->outname, "%.*s", (int)(k < sizeof e->outname ? k : sizeof e->outname - 1), outs);
    }
    free(text);
    if (p->flops < 0 || p->arena_bytes < 0) {
        fprintf(stderr, "kiln explore: error: kiln check printed no FLOPs or activation memory\n");
        return -1;
    }
    return 0;
}

/* The program at TMP/prog and the size of the weights blob it maps. */
static int measure_build(const Explore *e, Point *p)
{
    char prog[128], wfile[160];
    const char *argv[EX_MAX_ARGS + 16] = {e->self, "build", e->model};
    int n = point_args(e, p, argv, 3);
    if (e->opt)
        argv[n++] = e->opt;
    argv[n++] = "--weights-mode";
    argv[n++] = "external";
    argv[n++] = "-o";
    argv[n++] = path_in(e, "prog", prog, sizeof prog);
    argv[n] = NULL;
    char log[128];
    if (spawn((char *const *)argv, "/dev/null", path_in(e, "build.txt", log, sizeof log), "kiln build"))
        return -1;
    snprintf(wfile, sizeof wfile, "%s.weights", prog);
    struct stat st;
    p->weights_bytes = stat(wfile, &st) ? 0 : (double)st.st_size - 64; /* its 64-byte header */
    return 0;
}

/* ---------------------------------------------------------------- the quality metric */

/* The share of rows of out (the last axis: classes) whose largest value is at the label's index. */
static int score_labels(const Explore *e, const char *out_path, double *accuracy)
{
    RtNpy y = {0}, l = {0};
    char err[512];
    int rc = -1;
    if (rt_npy_read(out_path, &y, err, sizeof err) || rt_npy_read(e->labels, &l, err, sizeof err)) {
        fprintf(stderr, "kiln explore: error: %s\n", err);
        goto done;
    }
    int ydt = dtype_from_npy(y.descr), ldt = dtype_from_npy(l.descr);
    int64_t classes = y.rank ? y.shape[y.rank - 1] : 0, rows = classes ? (int64_t)(y.nbytes / y.elem_size) / classes : 0;
    int64_t nl = (int64_t)(l.elem_size ? l.nbytes / l.elem_size : 0);
    if (ydt < 0 || ldt < 0 || dtype_traits[ldt].is_float || !rows || nl != rows) {
        fprintf(stderr, "kiln explore: error: %s: expected integer labels, one for each of the %lld rows of output "
                        "'%s' (its last axis: the classes); it holds %lld values of NumPy dtype '%s'\n",
                e->labels, (long long)rows, e->outname, (long long)nl, l.descr);
        goto done;
    }
    int64_t right = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t best = 0;
        for (int64_t c = 1; c < classes; c++)
            if (dtype_load((DType)ydt, y.data, (size_t)(r * classes + c)) >
                dtype_load((DType)ydt, y.data, (size_t)(r * classes + best)))
                best = c;
        right += dtype_load((DType)ldt, l.data, (size_t)r) == (double)best;
    }
    *accuracy = 100.0 * (double)right / (double)rows;
    rc = 0;
done:
    rt_npy_free(&y);
    rt_npy_free(&l);
    return rc;
}

/* Runs the program on the quality data; its wall time and the metric. */
static int measure_quality(const Explore *e, Point *p)
{
    char prog[128], out[128], outarg[320], txt[128];
    const char *argv[EX_MAX_ARGS + 16] = {path_in(e, "prog", prog, sizeof prog)};
    int n = 1;
    if (e->text) {
        argv[n++] = "--eval";
        argv[n++] = e->text;
        if (point_has(e, p, "--kv-cache"))
            argv[n++] = "--stream";
    } else {
        for (int i = 0; i < e->ninput; i++) {
            argv[n++] = "--input";
            argv[n++] = e->inputs[i];
        }
        snprintf(outarg, sizeof outarg, "%s=%s", e->outname, path_in(e, "out.npy", out, sizeof out));
        argv[n++] = "--output";
        argv[n++] = outarg;
    }
    if (e->threads) {
        argv[n++] = "--threads";
        argv[n++] = e->threads;
    }
    argv[n] = NULL;
    double t0 = now_s();
    if (spawn((char *const *)argv, path_in(e, "run.txt", txt, sizeof txt), NULL, "the built program"))
        return -1;
    p->seconds = now_s() - t0;
    if (!e->text)
        return score_labels(e, out, &p->quality);
    char *text = diag_read_text(NULL, txt, "");
    const char *nats = text ? strstr(text, " nats/char") : NULL;
    while (nats && nats > text && nats[-1] != '\n')
        nats--;
    if (!nats || sscanf(nats, "%lf nats/char", &p->quality) != 1) {
        fprintf(stderr, "kiln explore: error: the program printed no nats/char for %s (is it a character-level "
                        "language model with a vocabulary?)\n", e->text);
        free(text);
        return -1;
    }
    free(text);
    return 0;
}

/* ---------------------------------------------------------------- the sweep, the table, the plot */

/* The points: the swept argument with its [list] expanded. */
static int expand(const Explore *e, Point *pts)
{
    if (e->sweep < 0) {
        snprintf(pts[0].value, sizeof pts[0].value, "as given");
        return 1;
    }
    const char *s = e->fwd[e->sweep], *lb = strchr(s, '['), *rb = strchr(lb, ']'); /* as parse() found them */
    const char *sep = memchr(lb, '|', (size_t)(rb - lb)) ? "|" : ",";
    int np = 0;
    for (const char *it = lb + 1; it <= rb && np < EX_MAX_POINTS; np++) {
        size_t k = strcspn(it, sep);
        if (it + k > rb)
            k = (size_t)(rb - it);
        Point *p = &pts[np];
        p->off = k == 4 && !strncmp(it, "none", 4) && lb == s && !rb[1];
        snprintf(p->value, sizeof p->value, "%.*s%.*s%s", (int)(lb - s), s, (int)k, it, rb + 1);
        it += k + 1;
    }
    return np;
}

static const char *quality_name(const Explore *e)
{
    return e->text ? "nats/char" : "accuracy %";
}

static void print_table(const Explore *e, const Point *pts, int np)
{
    const char *col = e->sweep < 0 ? "point" : e->fwd[e->sweep][0] == '-' || e->sweep == 0 ? "argument" : e->fwd[e->sweep - 1];
    printf("| %s | GFLOP per run | weights MiB | arena MiB | seconds | %s |\n", col, quality_name(e));
    printf("|---|---|---|---|---|---|\n");
    for (int i = 0; i < np; i++)
        printf(e->text ? "| %s | %.4g | %.2f | %.2f | %.2f | %.4f |\n" : "| %s | %.4g | %.2f | %.2f | %.2f | %.2f |\n",
               pts[i].value, pts[i].flops / 1e9, pts[i].weights_bytes / 1048576.0, pts[i].arena_bytes / 1048576.0,
               pts[i].seconds, pts[i].quality);
    fflush(stdout);
}

/* Quality against FLOPs and against time, each point labelled, side by side in one PNG. */
static int plot(const Explore *e, const Point *pts, int np)
{
    char data[128], script[128];
    FILE *f = fopen(path_in(e, "plot.dat", data, sizeof data), "w");
    if (!f)
        return -1;
    for (int i = 0; i < np; i++)
        fprintf(f, "\"%s\" %g %g %g\n", pts[i].value, pts[i].flops / 1e9, pts[i].seconds, pts[i].quality);
    fclose(f);
    if (!(f = fopen(path_in(e, "plot.gp", script, sizeof script), "w")))
        return -1;
    fprintf(f, "set terminal pngcairo size 1200,480\nset output '%s'\nset grid\nset key off\n", e->plot);
    fprintf(f, "set offsets graph 0.08, graph 0.08, graph 0.12, graph 0.08\n"); /* room for the labels */
    fprintf(f, "set multiplot layout 1,2 title 'kiln explore %s'\n", e->model);
    fprintf(f, "set ylabel '%s'\n", quality_name(e));
    const char *x[2][2] = {{"2", "GFLOP per run (symbolic sizes at their bounds)"}, {"3", "seconds (one run of the quality data)"}};
    for (int k = 0; k < 2; k++)
        fprintf(f, "set xlabel '%s'\nplot '%s' using %s:4 with linespoints pt 7, '' using %s:4:1 with labels offset 0,1\n",
                x[k][1], data, x[k][0], x[k][0]);
    fprintf(f, "unset multiplot\n");
    fclose(f);
    char *argv[] = {"gnuplot", script, NULL};
    return spawn(argv, NULL, NULL, "gnuplot");
}

/* ---------------------------------------------------------------- the command line */

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "kiln explore: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'kiln explore --help'.\n");
    return 2;
}

/* Returns 0 to go on, -1 after --help, else the exit status. */
static int parse(int argc, char **argv, Explore *e)
{
    e->sweep = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help_explore, stdout);
            return -1;
        }
        const char **own = !strcmp(a, "--labels") ? &e->labels : !strcmp(a, "--output") ? &e->output
                         : !strcmp(a, "--text")   ? &e->text   : !strcmp(a, "--plot")   ? &e->plot
                         : !strcmp(a, "--threads") ? &e->threads : NULL;
        if (own || !strcmp(a, "--input")) {
            if (!val)
                return usage("%s needs a value", a);
            if (own)
                *own = val;
            else if (e->ninput < EX_MAX_ARGS)
                e->inputs[e->ninput++] = val;
            i++;
        } else if (!strncmp(a, "-O", 2) && strlen(a) == 3 && a[2] >= '0' && a[2] <= '3') {
            e->opt = a;
        } else if (i == 2 && a[0] != '-') {
            e->model = a;
        } else {
            if (e->nfwd == EX_MAX_ARGS)
                return usage("too many arguments%s", "");
            const char *lb = strchr(a, '['), *rb = lb ? strchr(lb, ']') : NULL;
            if (lb && rb && rb > lb + 1) {
                if (e->sweep >= 0)
                    return usage("one argument is swept at a time; '%s' is a second list", a);
                e->sweep = e->nfwd;
            }
            e->fwd[e->nfwd++] = a;
        }
    }
    if (!e->model)
        return usage("no model file given%s", "");
    if (!e->text == !e->labels || (e->labels && !e->ninput) || (e->text && e->ninput))
        return usage("give --input NAME=FILE.npy ... with --labels FILE.npy (accuracy), or --text FILE (nats/char)%s", "");
    if (e->threads && atoi(e->threads) < 1)
        return usage("--threads needs a positive number, not '%s'", e->threads);
    if (e->plot && (strchr(e->plot, '\'') || strchr(e->model, '\'')))
        return usage("--plot: file names with a quote cannot be given to gnuplot ('%s')", e->plot);
    if (e->output)
        snprintf(e->outname, sizeof e->outname, "%s", e->output);
    return 0;
}

static void cleanup(const Explore *e)
{
    static const char *files[] = {"check.txt", "build.txt", "prog", "prog.weights", "out.npy", "run.txt", "plot.dat", "plot.gp"};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        remove(path_in(e, files[i], path, sizeof path));
    rmdir(e->dir);
}

int explore_main(int argc, char **argv)
{
    Explore e = {0};
    int st = parse(argc, argv, &e);
    if (st)
        return st < 0 ? 0 : st;
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "kiln explore: error: cannot find the kiln program (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    self[n] = 0;
    e.self = self;
    if (e.plot) { /* before a long sweep, not after it */
        char *argv_v[] = {"gnuplot", "--version", NULL};
        if (spawn(argv_v, "/dev/null", "/dev/null", "gnuplot --version")) {
            fprintf(stderr, "kiln explore: error: --plot needs gnuplot (apt-get install gnuplot-nox)\n");
            return 1;
        }
    }
    snprintf(e.dir, sizeof e.dir, "/tmp/kiln-explore-XXXXXX");
    if (!mkdtemp(e.dir)) {
        fprintf(stderr, "kiln explore: error: cannot make a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    static Point pts[EX_MAX_POINTS]; /* zero: 64 points of 300 bytes, off the stack */
    int np = expand(&e, pts), status = 0;
    for (int i = 0; i < np && !status; i++) {
        Point *p = &pts[i];
        fprintf(stderr, "explore: [%d/%d] %s: kiln check\n", i + 1, np, p->value);
        status = measure_check(&e, p) ? 1 : 0;
        if (!status && !e.outname[0] && !e.text) {
            fprintf(stderr, "kiln explore: error: kiln check named no output to score: give --output NAME\n");
            status = 1;
        }
        if (!status) {
            fprintf(stderr, "explore: [%d/%d] %s: kiln build\n", i + 1, np, p->value);
            status = measure_build(&e, p) ? 1 : 0;
        }
        if (!status) {
            fprintf(stderr, "explore: [%d/%d] %s: running on %s\n", i + 1, np, p->value, e.text ? e.text : e.labels);
            status = measure_quality(&e, p) ? 1 : 0;
        }
        if (!status)
            fprintf(stderr, e.text ? "explore: [%d/%d] %s: %.4g GFLOP, %.2f s, %.4f nats/char\n"
                                   : "explore: [%d/%d] %s: %.4g GFLOP, %.2f s, %.2f%% accuracy\n",
                    i + 1, np, p->value, p->flops / 1e9, p->seconds, p->quality);
    }
    if (!status) {
        print_table(&e, pts, np);
        if (e.plot && plot(&e, pts, np))
            status = 1;
        else if (e.plot)
            fprintf(stderr, "explore: wrote %s\n", e.plot);
    }
    cleanup(&e);
    return status;
}
