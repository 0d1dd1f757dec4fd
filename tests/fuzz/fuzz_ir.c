/* fuzz_ir.c: fuzz target for the IR text parser (ir/parse.c), then, for text that parses and
 * verifies, the printer (whose output must parse again: the text form round-trips) and the
 * default passes.
 *
 * The header's weights file is replaced by a committed example's (fuzz_weights_for), as in
 * fuzz_model.c.
 */
#include "fuzz.h"

#include "passes/passes.h"
#include "frontend/frontend.h"

#include <stdlib.h>
#include <string.h>

static void release(Graph *g)
{
    if (g && g->weights)
        st_close(g->weights);
    if (g)
        ir_graph_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    Diag *d = diag_new(fuzz_null());
    const char *weights = fuzz_weights_for(data, size);
    Graph *g = ir_parse("fuzz.kir", text, weights, d);
    free(text);
    if (g && !ir_verify(g, d)) {
        /* what prints must parse back */
        char *printed = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&printed, &len);
        ir_print(f, g);
        fclose(f);
        Diag *d2 = diag_new(stderr);
        Graph *g2 = ir_parse("printed.kir", printed, weights, d2);
        if (!g2 || g2->nnode != g->nnode) {
            fprintf(stderr, "fuzz_ir: the printed form of a graph that verifies does not parse back:\n%s", printed);
            abort();
        }
        release(g2);
        diag_free(d2);
        free(printed);
        PassOptions po = {.d = d};
        pass_pipeline(g, NULL, NULL, NULL, &po);
    }
    release(g);
    diag_free(d);
    return 0;
}
