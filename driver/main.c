/* main.c: the `kiln` command.
 *
 *   kiln check MODEL   parse, check, summarise
 *   kiln ir    MODEL   print the IR
 *   kiln run   MODEL   run on .npy inputs (with the interpreter for now)
 *
 * MODEL is a model file (.kiln) or kiln IR in its text form (.kir). Every subcommand takes -D NAME=VALUE
 * to override a const of the model file and --weights FILE to replace its weights file. Errors go to
 * stderr in the form file:line:col: error: ...; the exit status is 1 after an error in the model or
 * its data, 2 after a usage error.
 */
#include "driver/driver.h"
#include "runtime/kiln_rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct NamedFile {
    const char *name;
    const char *path;
} NamedFile;

typedef struct Options {
    const char *cmd;
    const char *model;
    const char *weights;
    int ndefine;
    Define defines[64];
    int interp;
    int ninput, noutput;
    NamedFile inputs[64], outputs[64];
    int print_limit;   /* values printed per output when no --output is given */
} Options;

static const char *usage_text =
    "usage: kiln COMMAND MODEL [options]\n"
    "\n"
    "kiln compiles transformer models written in its model language.\n"
    "\n"
    "commands:\n"
    "  check MODEL     parse and check the model; print its inputs, outputs, parameters,\n"
    "                  FLOPs and activation memory\n"
    "  ir MODEL        print the model's IR in its text form\n"
    "  run MODEL       run the model on .npy inputs with the interpreter (--interp)\n"
    "\n"
    "MODEL is a model file (.kiln) or kiln IR text (.kir).\n"
    "\n"
    "options for every command:\n"
    "  --weights FILE      use this safetensors file instead of the model's `weights`\n"
    "  -D NAME=VALUE       override the const NAME of the model file\n"
    "\n"
    "  kiln --version      print the version\n"
    "  kiln COMMAND --help describe one command\n";

static const char *help_check =
    "usage: kiln check MODEL [--weights FILE] [-D NAME=VALUE ...]\n"
    "\n"
    "Parses and checks MODEL (names, dtypes, shapes, weights against the weights file) and prints a\n"
    "summary: inputs, outputs, symbolic sizes, parameters, FLOPs and activation memory (with every\n"
    "symbolic size at its bound). Errors are printed as file:line:col: error: ...; exit status 1.\n";

static const char *help_ir =
    "usage: kiln ir MODEL [--weights FILE] [-D NAME=VALUE ...]\n"
    "\n"
    "Prints the IR of MODEL in kiln's text form, which `kiln ir`, `kiln check` and `kiln run` also\n"
    "read back (files ending in .kir).\n";

static const char *help_run =
    "usage: kiln run MODEL --interp --input NAME=FILE.npy ... [--output NAME=FILE.npy ...]\n"
    "                [--weights FILE] [-D NAME=VALUE ...]\n"
    "\n"
    "Runs MODEL on the given inputs with the interpreter (plain loops accumulating in double; the\n"
    "reference every other execution is tested against). Each input is a NumPy .npy file whose dtype\n"
    "and shape must match the model's declaration; symbolic sizes are taken from the inputs.\n"
    "--output NAME=FILE writes an output as .npy; without it, each output's type and first values\n"
    "are printed. Native execution (JIT and compiled binaries) comes with the code generator; until\n"
    "then --interp is required.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "kiln: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'kiln --help'.\n");
    return 2;
}

static int parse_named(const char *arg, const char *opt, NamedFile *out)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) {
        fprintf(stderr, "kiln: error: %s expects NAME=FILE, got '%s'\n", opt, arg);
        return 0;
    }
    out->name = strndup(arg, (size_t)(eq - arg));
    out->path = eq + 1;
    return 1;
}

/* Returns 0 to go on, or the exit status. */
static int parse_options(int argc, char **argv, Options *o)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            const char *h = !strcmp(o->cmd, "check") ? help_check : !strcmp(o->cmd, "ir") ? help_ir : help_run;
            fputs(h, stdout);
            return -1;
        } else if (!strcmp(a, "--weights")) {
            if (!val)
                return usage_error("%s needs a file", a);
            o->weights = val;
            i++;
        } else if (!strncmp(a, "-D", 2)) {
            const char *def = a[2] ? a + 2 : val;
            if (!a[2])
                i++;
            const char *eq = def ? strchr(def, '=') : NULL;
            if (!def || !eq || eq == def)
                return usage_error("-D expects NAME=VALUE, got '%s'", def ? def : "");
            if (o->ndefine == 64)
                return usage_error("too many -D options%s", "");
            o->defines[o->ndefine++] = (Define){strndup(def, (size_t)(eq - def)), eq + 1};
        } else if (!strcmp(a, "--interp") && !strcmp(o->cmd, "run")) {
            o->interp = 1;
        } else if ((!strcmp(a, "--input") || !strcmp(a, "--output")) && !strcmp(o->cmd, "run")) {
            if (!val)
                return usage_error("%s needs NAME=FILE", a);
            int in = !strcmp(a, "--input");
            if ((in ? o->ninput : o->noutput) == 64)
                return usage_error("too many %s options", a);
            if (!parse_named(val, a, in ? &o->inputs[o->ninput++] : &o->outputs[o->noutput++]))
                return 2;
            i++;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else if (!o->model) {
            o->model = a;
        } else {
            return usage_error("more than one model file given ('%s')", a);
        }
    }
    if (!o->model)
        return usage_error("%s: no model file given", o->cmd);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static char *slurp(const char *path, Diag *d)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_fatal(d, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    KILN_ASSERT(buf);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    fclose(f);
    return buf;
}

/* The model as a checked graph: from a model file, or from IR text. */
static Graph *load(const Options *o, Diag *d)
{
    Graph *g;
    if (ends_with(o->model, ".kir")) {
        if (o->ndefine) {
            diag_fatal(d, "-D applies to model files, not to IR text ('%s')", o->model);
            return NULL;
        }
        char *text = slurp(o->model, d);
        if (!text)
            return NULL;
        g = ir_parse(o->model, text, o->weights, d);
        free(text);
    } else {
        FrontendOptions fo = {.weights_override = o->weights, .ndefine = o->ndefine, .defines = o->defines};
        g = fe_compile(o->model, &fo, d);
    }
    if (g && ir_verify(g, d)) {
        if (g->weights)
            st_close(g->weights);
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

static void unload(Graph *g)
{
    if (g && g->weights)
        st_close(g->weights);
    ir_graph_free(g);
}

static void print_values(const HostTensor *t, int limit)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->shape[i];
    printf(" = [");
    for (int64_t i = 0; i < n && i < limit; i++) {
        double v = dtype_load(t->dtype, t->data, (size_t)i);
        printf(dtype_traits[t->dtype].is_float ? "%s%.6g" : "%s%.0f", i ? ", " : "", v);
    }
    printf(n > limit ? ", ...]  (%lld values)\n" : "]\n", (long long)n);
}

static int cmd_run(const Options *o, Diag *d)
{
    if (!o->interp) {
        fprintf(stderr, "kiln: error: native execution is not built yet; run with --interp (the interpreter)\n");
        return 2;
    }
    Graph *g = load(o, d);
    if (!g)
        return 1;
    int status = 1;
    HostTensor *in = calloc((size_t)g->ninput + 1, sizeof *in), *out = calloc((size_t)g->noutput + 1, sizeof *out);
    RtNpy *npy = calloc((size_t)g->ninput + 1, sizeof *npy);
    KILN_ASSERT(in && out && npy);
    /* every --input names an input of the model, and every input is given once */
    for (int k = 0; k < o->ninput; k++) {
        int found = 0;
        for (int i = 0; i < g->ninput; i++)
            found |= !strcmp(g->inputs[i]->name, o->inputs[k].name);
        if (!found)
            diag_fatal(d, "--input %s: the model has no input '%s'", o->inputs[k].name, o->inputs[k].name);
    }
    for (int i = 0; i < g->ninput; i++) {
        const NamedFile *nf = NULL;
        for (int k = 0; k < o->ninput; k++)
            if (!strcmp(g->inputs[i]->name, o->inputs[k].name)) {
                if (nf)
                    diag_fatal(d, "input '%s' is given twice", nf->name);
                nf = &o->inputs[k];
            }
        char tbuf[256];
        if (!nf) {
            diag_fatal(d, "missing input '%s' (%s): pass --input %s=FILE.npy", g->inputs[i]->name,
                       node_type_str(g, g->inputs[i], tbuf, sizeof tbuf), g->inputs[i]->name);
            continue;
        }
        char err[512];
        if (rt_npy_read(nf->path, &npy[i], err, sizeof err)) {
            diag_fatal(d, "input '%s': %s", nf->name, err);
            continue;
        }
        int dt = dtype_from_npy(npy[i].descr);
        if (dt < 0) {
            diag_fatal(d, "input '%s': %s holds NumPy dtype '%s', which kiln does not read", nf->name, nf->path,
                       npy[i].descr);
            continue;
        }
        in[i].dtype = (DType)dt;
        in[i].rank = npy[i].rank;
        memcpy(in[i].shape, npy[i].shape, sizeof(int64_t) * (size_t)npy[i].rank);
        in[i].data = npy[i].data;
    }
    for (int k = 0; k < o->noutput; k++) {
        int found = 0;
        for (int i = 0; i < g->noutput; i++)
            found |= !strcmp(g->outputs[i].name, o->outputs[k].name);
        if (!found)
            diag_fatal(d, "--output %s: the model has no output '%s'", o->outputs[k].name, o->outputs[k].name);
    }
    if (diag_errors(d) || ir_interp(g, in, out, d))
        goto done;
    status = 0;
    for (int i = 0; i < g->noutput; i++) {
        const NamedFile *nf = NULL;
        for (int k = 0; k < o->noutput; k++)
            if (!strcmp(g->outputs[i].name, o->outputs[k].name))
                nf = &o->outputs[k];
        if (nf) {
            const HostTensor *t = &out[i];
            const char *descr = dtype_traits[t->dtype].npy;
            void *data = t->data;
            int64_t n = 1;
            for (int j = 0; j < t->rank; j++)
                n *= t->shape[j];
            float *conv = NULL;
            if (!descr) { /* bf16 has no NumPy type: write f32 */
                conv = malloc(sizeof(float) * (size_t)(n ? n : 1));
                KILN_ASSERT(conv);
                for (int64_t j = 0; j < n; j++)
                    conv[j] = (float)dtype_load(t->dtype, t->data, (size_t)j);
                data = conv;
                descr = "<f4";
            }
            char err[512];
            if (rt_npy_write(nf->path, descr, t->rank, t->shape, data, err, sizeof err)) {
                diag_fatal(d, "output '%s': %s", nf->name, err);
                status = 1;
            }
            free(conv);
        } else {
            char tbuf[256];
            Dim dims[IR_MAX_RANK];
            for (int j = 0; j < out[i].rank; j++)
                dims[j] = dim_const(out[i].shape[j]);
            printf("%s: %s", g->outputs[i].name, type_str(g, out[i].dtype, out[i].rank, dims, tbuf, sizeof tbuf));
            print_values(&out[i], o->print_limit);
        }
    }
done:
    for (int i = 0; i < g->ninput; i++)
        rt_npy_free(&npy[i]);
    for (int i = 0; i < g->noutput; i++)
        free(out[i].data);
    free(in);
    free(out);
    free(npy);
    unload(g);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("kiln %s\n", KILN_VERSION);
        return 0;
    }
    Options o = {.cmd = argv[1], .print_limit = 8};
    if (strcmp(o.cmd, "check") && strcmp(o.cmd, "ir") && strcmp(o.cmd, "run"))
        return usage_error("unknown command '%s'", o.cmd);
    int st = parse_options(argc, argv, &o);
    if (st)
        return st < 0 ? 0 : st;
    Diag *d = diag_new(stderr);
    int status = 0;
    if (!strcmp(o.cmd, "run")) {
        status = cmd_run(&o, d);
    } else {
        Graph *g = load(&o, d);
        if (!g)
            status = 1;
        else if (!strcmp(o.cmd, "check"))
            report_summary(stdout, g);
        else
            ir_print(stdout, g);
        unload(g);
    }
    if (diag_errors(d) && !status)
        status = 1;
    diag_free(d);
    return status;
}
