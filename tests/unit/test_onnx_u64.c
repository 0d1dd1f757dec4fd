/* test_onnx_u64.c: ONNX's UINT64 through the importer, beyond ONNX's own node tests (whose uint64
 * values are all below 10).
 *
 *   - an initializer in uint64_data holding 2^63, 2^64 - 1, 2^63 + 2048 and 5 meets a UINT64 graph
 *     input in Max, Less and Add, and Sub of two initializers folds at import: the compiled code
 *     (the whole pass pipeline, LLVM's JIT) must give C's uint64_t results bit for bit, and the
 *     interpreter the same values to a double's precision (docs/IR.md, Dtypes); the folded Sub must
 *     be exact, 2^63 - 1 and 2^64 - 2 included (the importer folds u64 in integers, not doubles),
 *     and so must a Cast of the initializer to INT32 (the low 32 bits: 2^63 + 2048 is 2048);
 *   - ops that refuse a u64 say so and name the node: Sqrt ("takes floats") and ReduceSum ("of u64[4]
 *     is not supported").
 */
#include "check.h"
#include "codegen/codegen.h"
#include "frontend/frontend.h"
#include "onnx.pb-c.h"
#include "onnx_pack.h"
#include "passes/passes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define P63 9223372036854775808ull
#define MAX64 18446744073709551615ull

enum { N = 4 };

static Onnx__ValueInfoProto *value(const char *name, int type, int64_t n)
{
    static Onnx__ValueInfoProto v[16];
    static Onnx__TypeProto ty[16];
    static Onnx__TypeProto__Tensor tt[16];
    static Onnx__TensorShapeProto sh[16];
    static Onnx__TensorShapeProto__Dimension dim[16], *dp[16];
    static int k;
    REQUIRE(k < 16);
    onnx__value_info_proto__init(&v[k]);
    onnx__type_proto__init(&ty[k]);
    onnx__type_proto__tensor__init(&tt[k]);
    onnx__tensor_shape_proto__init(&sh[k]);
    onnx__tensor_shape_proto__dimension__init(&dim[k]);
    dim[k].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, dim[k].dim_value = n;
    dp[k] = &dim[k];
    sh[k].n_dim = 1, sh[k].dim = &dp[k];
    tt[k].has_elem_type = 1, tt[k].elem_type = type, tt[k].shape = &sh[k];
    ty[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, ty[k].tensor_type = &tt[k];
    v[k].name = (char *)name, v[k].type = &ty[k];
    return &v[k++];
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(p, 1, n, f) == n && fclose(f) == 0);
}

/* One node (op on inputs a and b, or a alone) from a UINT64 input x, output y of type yt. */
static uint8_t *one_op(const char *name, const char *op, int yt, int64_t yn, size_t *len)
{
    static char *in[1] = {"x"}, *out[1] = {"y"};
    Onnx__NodeProto n = ONNX__NODE_PROTO__INIT;
    n.name = (char *)name, n.op_type = (char *)op, n.n_input = 1, n.input = in, n.n_output = 1, n.output = out;
    Onnx__NodeProto *np[1] = {&n};
    Onnx__ValueInfoProto *gi[1] = {value("x", 13, N)}, *go[1] = {value("y", yt, yn)};
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "refuse", g.n_node = 1, g.node = np, g.n_input = 1, g.input = gi, g.n_output = 1, g.output = go;
    return onnx_pack(&g, len);
}

int main(void)
{
    char dir[] = "/tmp/kiln-onnx-u64-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/u64.onnx", dir);

    /* c (uint64_data) and one (raw_data); x the input. mx = Max(x, c), lt = Less(x, c),
     * s = Add(x, Sub(c, one)) with the Sub folded at import */
    static uint64_t cdata[N] = {P63, MAX64, P63 + 2048, 5}, onedata[N] = {1, 1, 1, 1};
    static int64_t dims[1] = {N};
    Onnx__TensorProto c = ONNX__TENSOR_PROTO__INIT, one = ONNX__TENSOR_PROTO__INIT;
    c.name = "c", c.has_data_type = 1, c.data_type = 13, c.n_dims = 1, c.dims = dims;
    c.n_uint64_data = N, c.uint64_data = cdata;
    one.name = "one", one.has_data_type = 1, one.data_type = 13, one.n_dims = 1, one.dims = dims;
    one.has_raw_data = 1, one.raw_data.len = sizeof onedata, one.raw_data.data = (uint8_t *)onedata;
    Onnx__TensorProto *inits[2] = {&c, &one};
    static char *mx_in[] = {"x", "c"}, *mx_out[] = {"mx"}, *lt_out[] = {"lt"};
    static char *cm_in[] = {"c", "one"}, *cm_out[] = {"cm"}, *s_in[] = {"x", "cm"}, *s_out[] = {"s"};
    Onnx__NodeProto nm = ONNX__NODE_PROTO__INIT, nl = ONNX__NODE_PROTO__INIT, nc = ONNX__NODE_PROTO__INIT,
                    ns = ONNX__NODE_PROTO__INIT;
    nm.name = "max", nm.op_type = "Max", nm.n_input = 2, nm.input = mx_in, nm.n_output = 1, nm.output = mx_out;
    nl.name = "less", nl.op_type = "Less", nl.n_input = 2, nl.input = mx_in, nl.n_output = 1, nl.output = lt_out;
    nc.name = "c_minus_1", nc.op_type = "Sub", nc.n_input = 2, nc.input = cm_in, nc.n_output = 1, nc.output = cm_out;
    ns.name = "sum", ns.op_type = "Add", ns.n_input = 2, ns.input = s_in, ns.n_output = 1, ns.output = s_out;
    /* k = Cast(c, INT32) + x32, the cast folded at import (the low 32 bits) */
    static char *k_in[] = {"c"}, *k_out[] = {"c32"}, *a_in[] = {"c32", "x32"}, *a_out[] = {"k"};
    Onnx__AttributeProto to = ONNX__ATTRIBUTE_PROTO__INIT;
    to.name = "to", to.has_type = 1, to.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, to.has_i = 1, to.i = 6;
    Onnx__AttributeProto *toa[1] = {&to};
    Onnx__NodeProto nk = ONNX__NODE_PROTO__INIT, na = ONNX__NODE_PROTO__INIT;
    nk.name = "c_to_i32", nk.op_type = "Cast", nk.n_input = 1, nk.input = k_in, nk.n_output = 1, nk.output = k_out;
    nk.n_attribute = 1, nk.attribute = toa;
    na.name = "k_add", na.op_type = "Add", na.n_input = 2, na.input = a_in, na.n_output = 1, na.output = a_out;
    Onnx__NodeProto *nodes[6] = {&nm, &nl, &nc, &ns, &nk, &na};
    Onnx__ValueInfoProto *gi[2] = {value("x", 13, N), value("x32", 6, N)};
    Onnx__ValueInfoProto *go[4] = {value("mx", 13, N), value("lt", 9, N), value("s", 13, N), value("k", 6, N)};
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "u64", g.n_node = 6, g.node = nodes, g.n_initializer = 2, g.initializer = inits;
    g.n_input = 2, g.input = gi, g.n_output = 4, g.output = go;
    size_t len;
    uint8_t *bytes = onnx_pack(&g, &len);
    REQUIRE(bytes);
    write_file(path, bytes, len);
    free(bytes);

    Diag *d = diag_new(stderr);
    OnnxModel *m = onnx_import(path, "u64.safetensors", &(OnnxOptions){0}, d);
    REQUIRE(m && diag_errors(d) == 0);
    CHECK(strstr(m->text, "x: u64[4]") && strstr(m->text, "mx: u64[4]"), "model text:\n%s", m->text);
    CHECK(strstr(m->text, "c_cm = w.cm") && !strstr(m->text, "c_c - "), "the Sub of two initializers was not folded "
          "to a weight:\n%s", m->text);
    Graph *ref = onnx_compile_model(m, path, NULL, d), *opt = onnx_compile_model(m, path, NULL, d);
    REQUIRE(ref && opt && diag_errors(d) == 0);
    PassOptions po = {.d = d};
    REQUIRE(pass_pipeline(opt, "default", NULL, NULL, &po) == 0);
    static uint64_t x[N] = {P63 - 1024, P63 + 4096, P63 + 2048, 0};
    static int32_t x32[N] = {0, 0, 0, 0};
    HostTensor in[2] = {{.dtype = DT_U64, .rank = 1, .shape = {N}, .data = x},
                        {.dtype = DT_I32, .rank = 1, .shape = {N}, .data = x32}},
               want[4] = {{0}};
    REQUIRE(ir_interp(ref, in, want, d) == 0);
    uint64_t mx[N], s[N];
    uint8_t lt[N];
    int32_t kk[N];
    void *inp[2] = {x, x32}, *outp[4] = {mx, lt, s, kk};
    int64_t syms[IR_MAX_SYMS] = {0};
    Cg *cg = cg_new(&(CgOptions){.opt = 2}, d);
    REQUIRE(cg && !cg_build(cg, opt) && !cg_optimise(cg) && !cg_jit_run(cg, syms, inp, outp, 1));
    cg_free(cg);
    const uint64_t *imx = want[0].data, *is = want[2].data;
    const uint8_t *ilt = want[1].data;
    for (int k = 0; k < N; k++) {
        uint64_t wm = x[k] > cdata[k] ? x[k] : cdata[k], ws = x[k] + (cdata[k] - 1);
        int wl = x[k] < cdata[k];
        CHECK(mx[k] == wm && (double)imx[k] == (double)wm, "Max element %d: compiled %llu, interpreter %llu, "
              "expected %llu", k, (unsigned long long)mx[k], (unsigned long long)imx[k], (unsigned long long)wm);
        CHECK(lt[k] == wl && ilt[k] == wl, "Less element %d: compiled %d, interpreter %d, expected %d", k, lt[k],
              ilt[k], wl);
        /* x + (c - 1): compiled exact; 2^63 - 1 + 2^63 - 1024 and friends are not doubles, and a sum
         * past 2^64 (element 1) wraps only in compiled code */
        CHECK(s[k] == ws, "Add element %d: compiled %llu, expected %llu", k, (unsigned long long)s[k],
              (unsigned long long)ws);
    }
    CHECK(is[3] == 4, "Add element 3 in the interpreter: %llu", (unsigned long long)is[3]);
    CHECK(s[3] == 4 && s[1] == P63 + 4096 - 2, "x + (c - 1) at 0 and past 2^64: %llu %llu",
          (unsigned long long)s[3], (unsigned long long)s[1]);
    static const int32_t kw[N] = {0, -1, 2048, 5};
    const int32_t *ik = want[3].data;
    for (int k = 0; k < N; k++)
        CHECK(kk[k] == kw[k] && ik[k] == kw[k], "Cast(c, INT32) element %d: compiled %d, interpreter %d, expected %d", k,
              kk[k], ik[k], kw[k]);
    for (int k = 0; k < 4; k++)
        free(want[k].data);
    Graph *gs[2] = {ref, opt};
    for (int k = 0; k < 2; k++) {
        if (gs[k]->weights) /* the caller's to close (frontend.h) */
            st_close(gs[k]->weights);
        ir_graph_free(gs[k]);
    }
    onnx_model_free(m);
    diag_free(d);
    unlink(path);

    /* refusals: the error names the node and its op */
    static const struct {
        const char *name, *op;
        int yt;
        int64_t yn;
        const char *words;
    } bad[] = {
        {"root", "Sqrt", 13, N, "takes floats"},
        {"total", "ReduceSum", 13, 1, "ReduceSum of u64[4] is not supported"},
    };
    for (int i = 0; i < 2; i++) {
        bytes = one_op(bad[i].name, bad[i].op, bad[i].yt, bad[i].yn, &len);
        REQUIRE(bytes);
        write_file(path, bytes, len);
        free(bytes);
        FILE *df = tmpfile();
        REQUIRE(df);
        d = diag_new(df);
        OnnxModel *bm = onnx_import(path, "bad.safetensors", &(OnnxOptions){0}, d);
        CHECK(!bm && diag_errors(d) > 0, "%s of a u64 was imported", bad[i].op);
        if (bm)
            onnx_model_free(bm);
        diag_free(d);
        char text[2048];
        rewind(df);
        size_t n = fread(text, 1, sizeof text - 1, df);
        text[n] = 0;
        fclose(df);
        CHECK(strstr(text, bad[i].name) && strstr(text, bad[i].op) && strstr(text, bad[i].words),
              "the error does not name node '%s' (%s) and say '%s':\n%s", bad[i].name, bad[i].op, bad[i].words, text);
        unlink(path);
    }
    rmdir(dir);
    if (failures)
        fprintf(stderr, "test_onnx_u64: %d failures\n", failures);
    return failures != 0;
}
