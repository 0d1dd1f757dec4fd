/* pipeline.c: the passes in order, and the options that choose and show them.
 *
 * The whole compiler's middle is this table: each pass runs in its place if chosen, the verifier
 * checks the graph after it (a failure there is a bug in the pass, reported with its name), and
 * --print-after shows the IR the pass produced.
 */
#include "passes/passes.h"

#include <string.h>

typedef struct Pass {
    const char *name;
    int (*run)(Graph *g, const PassOptions *o);
    int on_by_default; /* 2: always (plan-memory: the code generator needs a plan), unless "none";
                          3: when its option is given, unless "none" */
    const char *flag, *usage; /* on_by_default 3: the option that turns it on, named short and whole */
} Pass;

static const Pass pipeline[] = {
    {"canonicalize", pass_canonicalize, 1, NULL, NULL},
    {"fuse-attention", pass_fuse_attention, 1, NULL, NULL},
    {"kv-cache", pass_kv_cache, 3, "--kv-cache", "--kv-cache POLICY"},
    {"choose-quant", pass_choose_quant, 3, "a --quant option", /* before fuse-ops makes epilogues */
     "--quant SCHEME, --calibrate FILE or --quant-overrides FILE"},
    {"fuse-ops", pass_fuse_ops, 1, NULL, NULL},
    {"prune-tokens", pass_prune_tokens, 3, "--prune-tokens", "--prune-tokens SPEC"},
    {"plan-memory", pass_plan_memory, 2, NULL, NULL},
};

/* Whether the option that turns an option-gated pass on is given. */
static int option_given(const Pass *p, const PassOptions *o)
{
    return p->run == pass_kv_cache       ? o->kv_cache != NULL
           : p->run == pass_choose_quant ? pass_quant_on(o)
           : p->run == pass_prune_tokens ? o->prune_tokens != NULL
                                         : 0;
}

enum { NPASS = sizeof pipeline / sizeof pipeline[0] };

const char *pass_names(void)
{
    static char buf[256];
    buf[0] = 0;
    for (int i = 0; i < NPASS; i++) {
        if (i)
            strcat(buf, ", ");
        strcat(buf, pipeline[i].name);
    }
    return buf;
}

/* Whether `name` is one of the comma-separated items of list. */
static int listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n))
            return 1;
        p += len + (e != NULL);
    }
    return 0;
}

int pass_pipeline(Graph *g, const char *list, const char *print_after, FILE *print, const PassOptions *o)
{
    int all = !list || !strcmp(list, "default");
    if (list && strcmp(list, "default") && strcmp(list, "none")) {
        /* every name must be a pass */
        for (const char *p = list; *p;) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            const Pass *named = NULL;
            for (int i = 0; i < NPASS; i++)
                if (strlen(pipeline[i].name) == len && !strncmp(pipeline[i].name, p, len))
                    named = &pipeline[i];
            if (!named) {
                diag_fatal(o->d, "--passes: unknown pass '%.*s' (the passes are: %s)", (int)len, p, pass_names());
                return -1;
            }
            /* an option-gated pass runs when its option is given, listed or not; listed without it
             * it would silently do nothing */
            if (named->on_by_default == 3 && !option_given(named, o)) {
                diag_fatal(o->d, "--passes: %s runs only with %s", named->name, named->usage);
                return -1;
            }
            p += len + (e != NULL);
        }
    }
    int none = list && !strcmp(list, "none"), runs[NPASS];
    for (int i = 0; i < NPASS; i++) {
        const Pass *p = &pipeline[i];
        runs[i] = !none && (p->on_by_default == 3 ? option_given(p, o)
                            : all                ? p->on_by_default != 0
                                                 : listed(list, p->name) || p->on_by_default == 2);
        if (none && p->on_by_default == 3 && option_given(p, o)) {
            /* the option asks for a pass that --passes none rules out: say so, not nothing */
            diag_fatal(o->d, "--passes none runs no pass, but %s asks for %s", p->flag, p->name);
            return -1;
        }
    }
    if (print_after && strcmp(print_after, "all")) {
        int k = 0;
        while (k < NPASS && strcmp(pipeline[k].name, print_after))
            k++;
        if (k == NPASS) {
            diag_fatal(o->d, "--print-after: unknown pass '%s' (the passes are: %s)", print_after, pass_names());
            return -1;
        }
        if (!runs[k]) {
            diag_fatal(o->d, "--print-after: pass %s does not run here (%s%s)", print_after,
                       none ? "--passes none" : pipeline[k].usage ? "it runs only with " : "it is not in --passes",
                       none || !pipeline[k].usage ? "" : pipeline[k].usage);
            return -1;
        }
    }
    for (int i = 0; i < NPASS; i++) {
        const Pass *p = &pipeline[i];
        if (!runs[i])
            continue;
        g->planned = 0; /* any pass may move what plan-memory planned */
        int errors = diag_errors(o->d);
        int changes = p->run(g, o);
        if (diag_errors(o->d) > errors || changes < 0)
            return -1; /* the pass said why it cannot run (kv-cache on a model it cannot derive, a wrong
                          --prune-tokens) */
        if (o->log)
            fprintf(o->log, "pass %s: %d change%s, %d nodes\n", p->name, changes, changes == 1 ? "" : "s", g->nnode);
        if (ir_verify(g, o->d)) {
            diag_fatal(o->d, "internal error: the graph does not verify after pass %s", p->name);
            return -1;
        }
        if (print_after && print && (!strcmp(print_after, "all") || !strcmp(print_after, p->name))) {
            fprintf(print, "# after %s\n", p->name);
            ir_print(print, g);
        }
    }
    return 0;
}
