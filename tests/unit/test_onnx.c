/* test_onnx.c: unit tests for frontend/onnx.c on ONNX files this test writes itself (protobuf-c).
 *
 * One model: x f32[T, 4] with T a dim_param, an initializer W f32[4, 3] stored as external data in a
 * file beside the model, y = Softmax(MatMul(x, W)) f32[T, 3]. Checked:
 *   - without --bound the import fails with an error that names T and says how to bound it;
 *   - with T <= 8 the model text declares the symbolic size, compiles, and the interpreter at T = 5
 *     matches softmax(x W) computed here in double (1e-6);
 *   - an op kiln does not import is an error naming the node and the op;
 *   - every truncation and every single-byte corruption of the file is either imported or rejected
 *     with an error, never a crash (the suite also runs under ASan);
 *   - a missing external data file is an error naming it;
 *   - opsets are checked per op: at opset 1 the model (MatMul and Softmax, unchanged from version 1 to
 *     what opset 6 selects) imports and computes the same; Relu at opset 5 (Relu-1, not Relu-6) is an
 *     error naming the node, the op and the opset, as are Trilu at opset 13 (defined from 14) and
 *     opsets 0 and 18;
 *   - INT16, UINT16 (int32_data) and UINT32 (uint64_data) tensors read as i16, u16 and u32.
 * Temporary files live in a mkdtemp directory under /tmp, removed at the end.
 */
#include "check.h"
#include "frontend/frontend.h"
#include "onnx.pb-c.h"
#include "onnx_pack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(n == 0 || fwrite(p, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
}

/* The model's bytes (malloc'ed) at the given opset; op is the second node's op type. */
static uint8_t *make_model_opset(const char *op, size_t *len, int opset)
{
    Onnx__TensorShapeProto__Dimension dT = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT, d4 = dT, d3 = dT;
    dT.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    dT.dim_param = "T";
    d4.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d4.dim_value = 4;
    d3.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d3.dim_value = 3;
    Onnx__TensorShapeProto__Dimension *xd[2] = {&dT, &d4}, *yd[2] = {&dT, &d3};
    Onnx__TensorShapeProto xs = ONNX__TENSOR_SHAPE_PROTO__INIT, ys = ONNX__TENSOR_SHAPE_PROTO__INIT;
    xs.n_dim = 2, xs.dim = xd;
    ys.n_dim = 2, ys.dim = yd;
    Onnx__TypeProto__Tensor xt = ONNX__TYPE_PROTO__TENSOR__INIT, yt = ONNX__TYPE_PROTO__TENSOR__INIT;
    xt.has_elem_type = yt.has_elem_type = 1;
    xt.elem_type = yt.elem_type = 1; /* FLOAT */
    xt.shape = &xs, yt.shape = &ys;
    Onnx__TypeProto xty = ONNX__TYPE_PROTO__INIT, yty = ONNX__TYPE_PROTO__INIT;
    xty.value_case = yty.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    xty.tensor_type = &xt, yty.tensor_type = &yt;
    Onnx__ValueInfoProto xi = ONNX__VALUE_INFO_PROTO__INIT, yi = ONNX__VALUE_INFO_PROTO__INIT;
    xi.name = "x", xi.type = &xty;
    yi.name = "y", yi.type = &yty;

    Onnx__StringStringEntryProto loc = ONNX__STRING_STRING_ENTRY_PROTO__INIT, off = loc, ln = loc;
    loc.key = "location", loc.value = "w.bin";
    off.key = "offset", off.value = "8";
    ln.key = "length", ln.value = "48";
    Onnx__StringStringEntryProto *ext[3] = {&loc, &off, &ln};
    int64_t wd[2] = {4, 3};
    Onnx__TensorProto w = ONNX__TENSOR_PROTO__INIT;
    w.name = "W", w.has_data_type = 1, w.data_type = 1, w.n_dims = 2, w.dims = wd;
    w.has_data_location = 1, w.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    w.n_external_data = 3, w.external_data = ext;
    Onnx__TensorProto *inits[1] = {&w};

    char *in0[2] = {"x", "W"}, *out0[1] = {"h"}, *in1[1] = {"h"}, *out1[1] = {"y"};
    Onnx__NodeProto n0 = ONNX__NODE_PROTO__INIT, n1 = ONNX__NODE_PROTO__INIT;
    n0.name = "proj", n0.op_type = "MatMul", n0.n_input = 2, n0.input = in0, n0.n_output = 1, n0.output = out0;
    n1.name = "probs", n1.op_type = (char *)op, n1.n_input = 1, n1.input = in1, n1.n_output = 1, n1.output = out1;
    Onnx__NodeProto *nodes[2] = {&n0, &n1};
    Onnx__ValueInfoProto *ins[1] = {&xi}, *outs[1] = {&yi};
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "tiny", g.n_node = 2, g.node = nodes, g.n_initializer = 1, g.initializer = inits;
    g.n_input = 1, g.input = ins, g.n_output = 1, g.output = outs;
    uint8_t *buf = onnx_pack_opset(&g, len, opset);
    REQUIRE(buf);
    return buf;
}

static uint8_t *make_model(const char *op, size_t *len)
{
    return make_model_opset(op, len, 13);
}

/* Errors of one import, captured. */
static char *errs;
static size_t nerrs;

static OnnxModel *import(const char *path, int64_t bound)
{
    free(errs);
    errs = NULL;
    FILE *f = open_memstream(&errs, &nerrs);
    Diag *d = diag_new(f);
    OnnxBound b = {"T", bound};
    OnnxOptions o = {.nbound = bound ? 1 : 0, .bounds = &b};
    OnnxModel *m = onnx_import(path, "tiny.safetensors", &o, d);
    REQUIRE((m == NULL) == (diag_errors(d) > 0));
    diag_free(d);
    fclose(f);
    return m;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/kiln_test_onnx_XXXXXX");
    REQUIRE(mkdtemp(dir));
    char model[128], wbin[128];
    snprintf(model, sizeof model, "%s/tiny.onnx", dir);
    snprintf(wbin, sizeof wbin, "%s/w.bin", dir);
    /* W after 8 bytes of something else: the offset is honoured */
    float wfile[14];
    for (int i = 0; i < 14; i++)
        wfile[i] = i < 2 ? -99.0f : 0.25f * (float)((i - 2) % 5) - 0.4f * (float)((i - 2) / 5);
    write_file(wbin, wfile, sizeof wfile);
    size_t len;
    uint8_t *bytes = make_model("Softmax", &len);
    write_file(model, bytes, len);

    /* an open dimension needs a bound */
    REQUIRE(!import(model, 0));
    REQUIRE(strstr(errs, "'T'") && strstr(errs, "--bound T=N"));

    /* bounded: declared, compiled, run */
    OnnxModel *m = import(model, 8);
    REQUIRE(m);
    REQUIRE(strstr(m->text, "where T <= 8"));
    REQUIRE(strstr(m->text, "# proj (MatMul)") && strstr(m->text, "softmax("));
    char *text13 = strdup(strstr(m->text, "# proj")); /* the computation, for opset 1 below */
    REQUIRE(text13);
    Diag *d = diag_new(stderr);
    Graph *g = onnx_compile_model(m, model, NULL, d);
    REQUIRE(g && diag_errors(d) == 0);
    float x[5 * 4];
    for (int i = 0; i < 20; i++)
        x[i] = sinf((float)i * 0.7f);
    HostTensor in = {.dtype = DT_F32, .rank = 2, .shape = {5, 4}, .data = x}, out = {0};
    REQUIRE(ir_interp(g, &in, &out, d) == 0);
    REQUIRE(out.rank == 2 && out.shape[0] == 5 && out.shape[1] == 3);
    for (int t = 0; t < 5; t++) {
        double h[3], mx = -INFINITY, s = 0;
        for (int j = 0; j < 3; j++) {
            h[j] = 0;
            for (int k = 0; k < 4; k++)
                h[j] += (double)x[t * 4 + k] * wfile[2 + k * 3 + j];
            mx = h[j] > mx ? h[j] : mx;
        }
        for (int j = 0; j < 3; j++)
            s += exp(h[j] - mx);
        for (int j = 0; j < 3; j++)
            REQUIRE(fabs(((float *)out.data)[t * 3 + j] - exp(h[j] - mx) / s) < 1e-6);
    }
    free(out.data);
    if (g->weights)
        st_close(g->weights);
    ir_graph_free(g);
    diag_free(d);
    onnx_model_free(m);

    /* every truncation and every byte corrupted: an error or a model, never a crash */
    char bad[128];
    snprintf(bad, sizeof bad, "%s/bad.onnx", dir);
    for (size_t n = 0; n < len; n++) {
        write_file(bad, bytes, n);
        OnnxModel *b = import(bad, 8);
        REQUIRE(b || strstr(errs, "bad.onnx"));
        onnx_model_free(b);
    }
    uint8_t *cp = malloc(len);
    REQUIRE(cp);
    for (size_t i = 0; i < len; i++) {
        memcpy(cp, bytes, len);
        cp[i] ^= 0xa5;
        write_file(bad, cp, len);
        OnnxModel *b = import(bad, 8);
        REQUIRE(b || strstr(errs, "bad.onnx"));
        onnx_model_free(b);
    }
    free(cp);

    /* an op kiln does not import: the node and the op are named */
    free(bytes);
    bytes = make_model("Hardmax", &len);
    write_file(model, bytes, len);
    REQUIRE(!import(model, 8));
    REQUIRE(strstr(errs, "node 'probs' (Hardmax)") && strstr(errs, "does not import"));

    /* opset 1: MatMul-1 and Softmax-1 are what opset 6 selects too; the same text as at opset 13
     * (Softmax-1's axis 1 is the last axis of a rank-2 input) */
    bytes = (free(bytes), make_model_opset("Softmax", &len, 1));
    write_file(model, bytes, len);
    m = import(model, 8);
    REQUIRE(m && strstr(m->text, "opset 1)") && !strcmp(strstr(m->text, "# proj"), text13));
    onnx_model_free(m);
    free(text13);
    /* Relu at opset 5 selects Relu-1 (consumed_inputs), which kiln does not implement */
    bytes = (free(bytes), make_model_opset("Relu", &len, 5));
    write_file(model, bytes, len);
    REQUIRE(!import(model, 8));
    REQUIRE(strstr(errs, "node 'probs' (Relu)") && strstr(errs, "opset 5") && strstr(errs, "version 1 of Relu"));
    /* ... while at opset 6 it is Relu-6 */
    bytes = (free(bytes), make_model_opset("Relu", &len, 6));
    write_file(model, bytes, len);
    m = import(model, 8);
    REQUIRE(m && strstr(m->text, "relu("));
    onnx_model_free(m);
    /* an op newer than the model's opset */
    bytes = (free(bytes), make_model_opset("Trilu", &len, 13));
    write_file(model, bytes, len);
    REQUIRE(!import(model, 8));
    REQUIRE(strstr(errs, "node 'probs' (Trilu)") && strstr(errs, "only from opset 14"));
    /* opsets kiln does not read at all */
    for (int os = 0; os <= 18; os += 18) {
        bytes = (free(bytes), make_model_opset("Softmax", &len, os));
        write_file(model, bytes, len);
        REQUIRE(!import(model, 8));
        REQUIRE(strstr(errs, os ? "opset 18" : "opset 0") && strstr(errs, "opsets 1 to 17"));
    }

    /* the 16- and 32-bit integer dtypes in TensorProto's typed fields: INT16 and UINT16 in int32_data,
     * UINT32 in uint64_data */
    {
        static const int types[3] = {5, 4, 12}; /* INT16, UINT16, UINT32 */
        static const DType want_dt[3] = {DT_I16, DT_U16, DT_U32};
        static const double want[3][3] = {{-32768, 5, 32767}, {65535, 0, 1}, {0, 7, 4294967295.0}};
        int32_t i32[2][3] = {{-32768, 5, 32767}, {65535, 0, 1}};
        uint64_t u64[3] = {0, 7, 4294967295u};
        int64_t dims[1] = {3};
        char pb[128];
        snprintf(pb, sizeof pb, "%s/t.pb", dir);
        for (int k = 0; k < 3; k++) {
            Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
            t.name = "t", t.has_data_type = 1, t.data_type = types[k], t.n_dims = 1, t.dims = dims;
            if (k < 2)
                t.n_int32_data = 3, t.int32_data = i32[k];
            else
                t.n_uint64_data = 3, t.uint64_data = u64;
            size_t n = onnx__tensor_proto__get_packed_size(&t);
            uint8_t *buf = malloc(n);
            REQUIRE(buf && onnx__tensor_proto__pack(&t, buf) == n);
            write_file(pb, buf, n);
            free(buf);
            HostTensor h = {0};
            Diag *dd = diag_new(stderr);
            REQUIRE(onnx_read_tensor(pb, &h, dd) == 0 && h.dtype == want_dt[k] && h.rank == 1 && h.shape[0] == 3);
            for (int i = 0; i < 3; i++)
                REQUIRE(dtype_load(h.dtype, h.data, (size_t)i) == want[k][i]);
            free(h.data);
            diag_free(dd);
        }
        remove(pb);
    }

    /* the external data file missing */
    bytes = (free(bytes), make_model("Softmax", &len));
    write_file(model, bytes, len);
    REQUIRE(remove(wbin) == 0);
    REQUIRE(!import(model, 8));
    REQUIRE(strstr(errs, "w.bin") && strstr(errs, "initializer 'W'"));

    free(bytes);
    free(errs);
    remove(model);
    remove(bad);
    rmdir(dir);
    printf("test_onnx: ok\n");
    return 0;
}
