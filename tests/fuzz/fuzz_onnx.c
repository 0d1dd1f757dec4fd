/* fuzz_onnx.c: fuzz target for the ONNX importer (frontend/onnx.c, onnx_ops.c): protobuf parsing,
 * the graph written in the model language, that text lowered, verified and run through the default
 * passes. Symbolic dimensions get no --bound (the importer's own defaults or errors apply). */
#include "fuzz.h"

#include "frontend/frontend.h"
#include "passes/passes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("model.onnx", data, size);
    Diag *d = diag_new(fuzz_null());
    OnnxOptions oo = {0};
    FrontendOptions fo = {0};
    Graph *g = onnx_compile(path, &oo, &fo, d);
    if (g && !ir_verify(g, d)) {
        PassOptions po = {.d = d};
        pass_pipeline(g, NULL, NULL, NULL, &po);
    }
    if (g && g->weights)
        st_close(g->weights);
    if (g)
        ir_graph_free(g);
    diag_free(d);
    return 0;
}
