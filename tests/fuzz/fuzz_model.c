/* fuzz_model.c: fuzz target for the model language: lexer, parser, lowering (names, shapes,
 * dtypes, functions inlined, loops unrolled), the verifier and the default passes.
 *
 * The input is a model file. Its `weights` line is replaced by a committed example's weights
 * file (fuzz_weights_for: the one it names, else GPT-2 tiny), so that the fuzzer never opens a path
 * it wrote itself and weight paths resolve to real tensors; tests/fuzz/model/ holds the examples
 * with their consts at the committed weights' sizes.
 * Diagnostics are formatted (source line, caret) into /dev/null.
 */
#include "fuzz.h"

#include "frontend/frontend.h"
#include "passes/passes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("model.kiln", data, size);
    Diag *d = diag_new(fuzz_null());
    FrontendOptions fo = {.weights_override = fuzz_weights_for(data, size)};
    Graph *g = fe_compile(path, &fo, d);
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
