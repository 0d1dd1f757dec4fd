/* fuse_ops.c: the fuse-ops pass (the recognition of primitive spellings is to come). */
#include "passes/passes.h"

int pass_fuse_ops(Graph *g, const PassOptions *o)
{
    return fuse_loops(g, o);
}
