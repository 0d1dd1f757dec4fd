/* node_runner.c: ONNX's own backend node tests (Debian's libonnx-testdata) through kiln's importer.
 *
 *   onnx_node_runner DATA_DIR EXCLUDED_FILE [--shard K/N] [--markdown] [-v]
 *
 * Every case directory of DATA_DIR (model.onnx, test_data_set_0/input_*.pb and output_*.pb) whose
 * ops are all ones kiln claims (onnx_op_supported) is imported, compiled, and run twice: by the
 * interpreter on the graph as the frontend made it, and compiled to native code (LLVM's JIT) after
 * the whole pass pipeline. Both must match the expected outputs with ONNX's backend-test tolerances
 * (|got - want| <= 1e-7 + 1e-3 * |want|; integers bit for bit, bools exactly). Inputs that an op needs at
 * import time (Reshape's shape, Slice's starts ...) are taken from the test data as constants, as a
 * model exported with those values would carry them; data inputs stay run-time inputs. ONNX 1.12
 * stores bfloat16 test data as UINT16 tensors of the same bits; a value the model declares BFLOAT16
 * is read as bf16 from such a tensor.
 *
 * A case of a claimed op that kiln cannot run is listed in EXCLUDED_FILE (`case: reason`, the
 * reasons docs/ONNX.md gives). The exit status is 1 when a claimed case that is not excluded fails,
 * or when an excluded case passes (the list must stay true). --shard K/N runs every N-th case from
 * the K-th, so ctest can run shards side by side. --markdown prints the per-op table of docs/ONNX.md.
 */
#include "codegen/codegen.h"
#include "frontend/frontend.h"
#include "onnx.pb-c.h"
#include "passes/passes.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Case {
    char *name;
    int claimed;
    char *ops;        /* "Add Mul" */
    const char *excluded; /* the reason, or NULL */
    int passed;
    char why[512];    /* why it failed */
} Case;

static char *slurp_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    buf[got] = 0;
    *n = got;
    return buf;
}

/* The case's ops (distinct, in order), and whether kiln claims all of them. */
static void case_ops(const char *dir, Case *c)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    size_t n;
    char *buf = slurp_file(path, &n);
    Onnx__ModelProto *m = buf ? onnx__model_proto__unpack(NULL, n, (const uint8_t *)buf) : NULL;
    free(buf);
    c->ops = strdup("");
    c->claimed = m && m->graph;
    if (!m)
        return;
    for (size_t i = 0; m->graph && i < m->graph->n_node; i++) {
        const Onnx__NodeProto *nd = m->graph->node[i];
        const char *op = nd->op_type ? nd->op_type : "?";
        int other_domain = nd->domain && *nd->domain && strcmp(nd->domain, "ai.onnx");
        for (size_t k = 0; k < nd->n_attribute; k++)
            if (nd->attribute[k]->g || nd->attribute[k]->n_graphs)
                other_domain = 1; /* subgraphs (If, Loop, Scan) are not imported */
        if (other_domain || !onnx_op_supported(op))
            c->claimed = 0;
        char key[256];
        snprintf(key, sizeof key, " %s ", op);
        char padded[4096];
        snprintf(padded, sizeof padded, " %s ", c->ops);
        if (!strstr(padded, key)) {
            char *s = malloc(strlen(c->ops) + strlen(op) + 2);
            sprintf(s, "%s%s%s", c->ops, *c->ops ? " " : "", op);
            free(c->ops);
            c->ops = s;
        }
    }
    onnx__model_proto__free_unpacked(m, NULL);
}

static int close_enough(DType dt, double got, double want)
{
    if (isnan(want))
        return isnan(got);
    if (!dtype_traits[dt].is_float)
        return got == want;
    if (isinf(want))
        return got == want;
    return fabs(got - want) <= 1e-7 + 1e-3 * fabs(want);
}

/* 0 when out matches want; else a sentence in why */
static int compare(const char *what, const char *name, const HostTensor *got, const HostTensor *want, char *why, size_t n)
{
    if (got->dtype != want->dtype || got->rank != want->rank) {
        snprintf(why, n, "%s: output '%s' is %s of rank %d, expected %s of rank %d", what, name, dtype_traits[got->dtype].name,
                 got->rank, dtype_traits[want->dtype].name, want->rank);
        return 1;
    }
    int64_t cnt = 1;
    for (int i = 0; i < got->rank; i++) {
        if (got->shape[i] != want->shape[i]) {
            snprintf(why, n, "%s: output '%s' has size %lld in dimension %d, expected %lld", what, name,
                     (long long)got->shape[i], i, (long long)want->shape[i]);
            return 1;
        }
        cnt *= got->shape[i];
    }
    size_t es = (size_t)dtype_traits[got->dtype].size;
    for (int64_t k = 0; k < cnt; k++) {
        double g = dtype_load(got->dtype, got->data, (size_t)k), w = dtype_load(want->dtype, want->data, (size_t)k);
        if (dtype_traits[got->dtype].is_int && dtype_traits[got->dtype].block == 1 &&
            memcmp((const char *)got->data + (size_t)k * es, (const char *)want->data + (size_t)k * es, es)) {
            /* integers bit for bit: i64 and u64 past 2^53 would compare equal as doubles */
            uint64_t gb = 0, wb = 0;
            memcpy(&gb, (const char *)got->data + (size_t)k * es, es);
            memcpy(&wb, (const char *)want->data + (size_t)k * es, es);
            snprintf(why, n, "%s: output '%s' element %lld is 0x%llx, expected 0x%llx", what, name, (long long)k,
                     (unsigned long long)gb, (unsigned long long)wb);
            return 1;
        }
        if (!close_enough(got->dtype, g, w)) {
            snprintf(why, n, "%s: output '%s' element %lld is %.9g, expected %.9g", what, name, (long long)k, g, w);
            return 1;
        }
    }
    return 0;
}

/* ONNX 1.12's test data stores bfloat16 values as UINT16 tensors of the same bits (its numpy has no
 * bfloat16): when the model declares the value BFLOAT16 (odt 16), such a tensor is read as bf16.
 * 1 when it was (t filled), 0 when the file is something else (onnx_read_tensor reads it). */
static int read_bf16_as_u16(const char *path, int odt, HostTensor *t)
{
    size_t n;
    char *buf = odt == 16 ? slurp_file(path, &n) : NULL;
    Onnx__TensorProto *tp = buf ? onnx__tensor_proto__unpack(NULL, n, (const uint8_t *)buf) : NULL;
    free(buf);
    if (!tp)
        return 0;
    int64_t cnt = 1;
    for (size_t i = 0; i < tp->n_dims; i++)
        cnt *= tp->dims[i] >= 0 ? tp->dims[i] : 0;
    int ok = tp->data_type == 4 && tp->n_dims <= IR_MAX_RANK && tp->has_raw_data && tp->raw_data.len == (size_t)cnt * 2;
    if (ok) {
        t->dtype = DT_BF16;
        t->rank = (int)tp->n_dims;
        for (size_t i = 0; i < tp->n_dims; i++)
            t->shape[i] = tp->dims[i];
        t->data = malloc(tp->raw_data.len ? tp->raw_data.len : 1);
        memcpy(t->data, tp->raw_data.data, tp->raw_data.len);
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return ok;
}

/* The test data of one kind (input or output), in order; odt: the ONNX elem types the model declares
 * for them, in the same order (0 when unknown). */
static int read_set(const char *dir, const char *kind, HostTensor *t, char **names, int max, const int *odt, Diag *d)
{
    int n = 0;
    for (; n < max; n++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/test_data_set_0/%s_%d.pb", dir, kind, n);
        FILE *f = fopen(path, "rb");
        if (!f)
            break;
        fclose(f);
        if (!read_bf16_as_u16(path, odt[n], &t[n]) && onnx_read_tensor(path, &t[n], d))
            return -1;
        names[n] = NULL;
    }
    return n;
}

static int elem_type(const Onnx__ValueInfoProto *v)
{
    return v->type && v->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && v->type->tensor_type
               ? v->type->tensor_type->elem_type
               : 0;
}

/* The ONNX graph's input names, in order (for matching the test data, which is in that order), and
 * the elem types of its inputs and outputs. */
static int graph_inputs(const char *dir, char **names, int max, int *in_odt, int *out_odt)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    size_t n;
    char *buf = slurp_file(path, &n);
    Onnx__ModelProto *m = buf ? onnx__model_proto__unpack(NULL, n, (const uint8_t *)buf) : NULL;
    free(buf);
    int k = 0;
    for (size_t i = 0; m && m->graph && i < m->graph->n_input && k < max; i++) {
        int init = 0;
        for (size_t j = 0; j < m->graph->n_initializer; j++)
            init |= !strcmp(m->graph->initializer[j]->name, m->graph->input[i]->name);
        if (!init)
            in_odt[k] = elem_type(m->graph->input[i]), names[k++] = strdup(m->graph->input[i]->name);
    }
    for (size_t i = 0; m && m->graph && i < m->graph->n_output && (int)i < max; i++)
        out_odt[i] = elem_type(m->graph->output[i]);
    if (m)
        onnx__model_proto__free_unpacked(m, NULL);
    return k;
}

static void run_case(const char *root, Case *c, int verbose)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/%s", root, c->name);
    char path[8192];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    /* errors go to a memory stream: the first one is the case's reason */
    char *errbuf = NULL;
    size_t errlen = 0;
    FILE *ef = open_memstream(&errbuf, &errlen);
    Diag *d = diag_new(ef);
    HostTensor in[64] = {0}, want[64] = {0}, got[64] = {0}, interp[64] = {0};
    char *inames[64] = {0}, *onames[64] = {0}, *gnames[64] = {0};
    int in_odt[64] = {0}, out_odt[64] = {0};
    int ng = graph_inputs(dir, gnames, 64, in_odt, out_odt);
    int nin = read_set(dir, "input", in, inames, 64, in_odt, d);
    int nout = read_set(dir, "output", want, onames, 64, out_odt, d);
    Graph *g = NULL;
    OnnxModel *m = NULL;
    Cg *cg = NULL;
    HostTensor gin[64] = {0};
    c->passed = 0;
    if (nin < 0 || nout < 0)
        goto fail;
    if (ng != nin) {
        snprintf(c->why, sizeof c->why, "the test data has %d inputs for %d graph inputs", nin, ng);
        goto done;
    }
    OnnxOptions oo = {.nconst = nin, .const_names = (const char *const *)gnames, .const_values = in};
    m = onnx_import(path, "weights.safetensors", &oo, d);
    if (m)
        g = onnx_compile_model(m, path, NULL, d);
    if (!g || ir_verify(g, d))
        goto fail;
    /* the compiled model's inputs, by name, from the test data */
    for (int i = 0; i < g->ninput; i++) {
        int found = -1;
        for (int k = 0; k < m->ninput; k++)
            if (m->input_var[k] && !strcmp(m->input_var[k], g->inputs[i]->name))
                for (int j = 0; j < ng; j++)
                    if (!strcmp(gnames[j], m->input_onnx[k]))
                        found = j;
        if (found < 0) {
            snprintf(c->why, sizeof c->why, "model input '%s' has no test data", g->inputs[i]->name);
            goto done;
        }
        gin[i] = in[found];
    }
    if (g->noutput != nout) {
        snprintf(c->why, sizeof c->why, "%d outputs, the test data has %d", g->noutput, nout);
        goto done;
    }
    if (ir_interp(g, gin, interp, d))
        goto fail;
    for (int i = 0; i < nout; i++)
        if (compare("interpreter", g->outputs[i].name, &interp[i], &want[i], c->why, sizeof c->why))
            goto done;
    PassOptions po = {.d = d};
    if (pass_pipeline(g, NULL, NULL, NULL, &po))
        goto fail;
    int64_t syms[IR_MAX_SYMS] = {0};
    if (ir_bind_inputs(g, gin, syms, d))
        goto fail;
    void *inp[64], *outp[64];
    for (int i = 0; i < g->ninput; i++)
        inp[i] = gin[i].data;
    for (int i = 0; i < nout; i++) {
        const Node *nd = g->outputs[i].node;
        got[i].dtype = nd->dtype;
        got[i].rank = nd->rank;
        int64_t cnt = 1;
        for (int j = 0; j < nd->rank; j++)
            cnt *= (got[i].shape[j] = dim_eval(nd->shape[j], syms));
        got[i].data = calloc((size_t)(cnt ? cnt : 1), (size_t)dtype_traits[nd->dtype].size);
        outp[i] = got[i].data;
    }
    CgOptions co = {.opt = 2};
    cg = cg_new(&co, d);
    if (!cg || cg_build(cg, g) || cg_optimise(cg) || cg_jit_run(cg, syms, inp, outp, 1))
        goto fail;
    for (int i = 0; i < nout; i++)
        if (compare("compiled", g->outputs[i].name, &got[i], &want[i], c->why, sizeof c->why))
            goto done;
    c->passed = 1;
    goto done;
fail:
    fflush(ef);
    {
        /* the first error line, without the "kiln: error: " and the file's path */
        const char *e = errbuf && *errbuf ? errbuf : "failed without a message";
        const char *p = strstr(e, "model.onnx: ");
        if (p && p - e < 400)
            e = p + strlen("model.onnx: ");
        else if ((p = strstr(e, ".pb: ")) && p - e < 400) {
            while (p > e && p[-1] != '/')
                p--;
            e = p;
        }
        else if ((p = strstr(e, "error: ")))
            e = p + 7;
        size_t len = strcspn(e, "\n");
        snprintf(c->why, sizeof c->why, "%.*s", (int)(len < 500 ? len : 500), e);
        if (verbose && errbuf)
            fprintf(stderr, "%s", errbuf);
    }
done:
    if (verbose && m && !c->passed)
        fprintf(stderr, "--- %s\n%s", c->name, m->text);
    if (cg)
        cg_free(cg);
    if (g && g->weights)
        st_close(g->weights);
    ir_graph_free(g);
    onnx_model_free(m);
    for (int i = 0; i < 64; i++) {
        free(in[i].data);
        free(want[i].data);
        free(got[i].data);
        free(interp[i].data);
        free(gnames[i]);
    }
    diag_free(d);
    fclose(ef);
    free(errbuf);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: onnx_node_runner DATA_DIR EXCLUDED_FILE [--shard K/N] [--markdown] [-v] [--only CASE]\n");
        return 2;
    }
    const char *root = argv[1];
    int shard = 0, nshard = 1, markdown = 0, verbose = 0;
    const char *only = NULL;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--shard") && i + 1 < argc)
            sscanf(argv[++i], "%d/%d", &shard, &nshard);
        else if (!strcmp(argv[i], "--markdown"))
            markdown = 1;
        else if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
    }
    DIR *dd = opendir(root);
    if (!dd) {
        fprintf(stderr, "onnx_node_runner: cannot open %s: the ONNX node tests come with Debian's libonnx-testdata "
                        "(scripts/setup.sh installs it)\n", root);
        return 1;
    }
    char **names = NULL;
    int n = 0;
    for (struct dirent *e; (e = readdir(dd));) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, sizeof *names * (size_t)(n + 1));
        names[n++] = strdup(e->d_name);
    }
    closedir(dd);
    qsort(names, (size_t)n, sizeof *names, by_name);

    /* the excluded cases and their reasons */
    size_t elen = 0;
    char *excl = slurp_file(argv[2], &elen);
    if (!excl) {
        fprintf(stderr, "onnx_node_runner: cannot read %s\n", argv[2]);
        return 1;
    }
    Case *cases = calloc((size_t)n, sizeof *cases);
    int bad = 0, npass = 0, nclaimed = 0, nexcl = 0;
    for (int i = 0; i < n; i++) {
        Case *c = &cases[i];
        c->name = names[i];
        char key[300];
        snprintf(key, sizeof key, "\n%s: ", c->name);
        char *hit = strstr(excl, key);
        if (!hit && !strncmp(excl, key + 1, strlen(key + 1)))
            hit = excl - 1;
        if (hit) {
            const char *r = hit + strlen(key);
            c->excluded = strndup(r, strcspn(r, "\n"));
        }
        char dir[2048];
        snprintf(dir, sizeof dir, "%s/%s", root, c->name);
        case_ops(dir, c);
        if (!c->claimed)
            continue;
        nclaimed++;
        nexcl += c->excluded != NULL;
        if (only ? strcmp(only, c->name) : (nclaimed - 1) % nshard != shard)
            continue;
        run_case(root, c, verbose);
        npass += c->passed;
        if (!c->passed && !c->excluded) {
            printf("FAIL %s (%s): %s\n", c->name, c->ops, c->why);
            bad = 1;
        } else if (c->passed && c->excluded) {
            printf("PASS %s, which %s lists as excluded (%s): remove it from the list\n", c->name, argv[2], c->excluded);
            bad = 1;
        } else if (verbose)
            printf("%s %s (%s)%s%s\n", c->passed ? "ok  " : "excl", c->name, c->ops, c->passed ? "" : ": ", c->passed ? "" : c->why);
    }
    if (markdown) {
        /* per op: its claimed cases that pass, and those left out with the reason */
        printf("| op | cases that pass | cases left out |\n|---|---|---|\n");
        char seen[8192] = " ";
        for (int i = 0; i < n; i++) {
            if (!cases[i].claimed)
                continue;
            char *ops = strdup(cases[i].ops), *save = NULL;
            for (char *op = strtok_r(ops, " ", &save); op; op = strtok_r(NULL, " ", &save)) {
                char key[300];
                snprintf(key, sizeof key, " %s ", op);
                if (strstr(seen, key))
                    continue;
                strncat(seen, key + 1, sizeof seen - strlen(seen) - 1);
                printf("| %s |", op);
                for (int pass = 1; pass >= 0; pass--) {
                    int first = 1;
                    for (int j = 0; j < n; j++) {
                        char k2[4096];
                        snprintf(k2, sizeof k2, " %s ", cases[j].ops);
                        if (!cases[j].claimed || !strstr(k2, key) || (cases[j].excluded == NULL) != pass)
                            continue;
                        if (pass)
                            printf("%s%s", first ? " " : ", ", cases[j].name + 5);
                        else
                            printf("%s%s (%s)", first ? " " : "; ", cases[j].name + 5, cases[j].excluded);
                        first = 0;
                    }
                    printf(" |");
                }
                printf("\n");
            }
            free(ops);
        }
    }
    fprintf(stderr, "onnx node tests: %d cases, %d of them claimed (%d excluded); this shard ran %s, %d passed\n", n,
            nclaimed, nexcl, only ? only : "its share", npass);
    free(excl);
    for (int i = 0; i < n; i++) {
        free(cases[i].name);
        free(cases[i].ops);
        free((char *)cases[i].excluded);
    }
    free(cases);
    free(names);
    return bad;
}
