/* test_state.c: state and several entry points (ir/entry.c) in the IR text, the verifier and the
 * interpreter.
 *
 * 1. A hand-written two-entry model with state (tests/unit/state_ring.kir: `append` writes its rows
 *    at the position a counter state holds and advances it; `read` returns the buffer, scaled, and
 *    the counter) prints back byte for byte and parses again.
 * 2. The interpreter runs it over several calls against a plain C model of the same buffer, in two
 *    states at once; a failed call (rows past the end) leaves the state as it was; reset zeroes it.
 * 3. Text and graphs that must be rejected, with the message each gets.
 */
#include "ir/ir.h"

#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"

enum { ROWS = 8, COLS = 2 };

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    KILN_ASSERT(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    KILN_ASSERT(s && fread(s, 1, (size_t)n, f) == (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static char *print_graph(const Graph *g)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ir_print(f, g);
    fclose(f);
    return buf;
}

/* Parses text; error messages (parser and verifier) into *msgs (malloc'ed). */
static Graph *parse_msgs(const char *text, char **msgs, int *nverify)
{
    size_t n = 0;
    FILE *f = open_memstream(msgs, &n);
    Diag *d = diag_new(f);
    Graph *g = ir_parse("<test>", text, NULL, d);
    *nverify = g ? ir_verify(g, d) : 0;
    diag_free(d);
    fclose(f);
    return g;
}

/* The text with the statement line starting with `from` replaced by `to` (both whole lines). */
static char *edit(const char *text, const char *from, const char *to)
{
    const char *p = strstr(text, from);
    KILN_ASSERT(p);
    const char *eol = strchr(p, '\n');
    size_t n = strlen(text) + strlen(to) + 2;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(p - text), text, to, eol);
    return s;
}

/* ---- 1. the text */

static Graph *load_ring(char **text)
{
    *text = read_text("tests/unit/state_ring.kir");
    char *msgs = NULL;
    int nv;
    Graph *g = parse_msgs(*text, &msgs, &nv);
    CHECK(g && nv == 0, "state_ring.kir does not parse and verify:\n%s", msgs);
    free(msgs);
    return g;
}

static void test_round_trip(void)
{
    char *text;
    Graph *g = load_ring(&text);
    if (!g)
        return;
    CHECK(g->nstate == 2 && g->nentry == 2, "%d states, %d entries", g->nstate, g->nentry);
    CHECK(ir_find_entry(g, "append") == 0 && ir_find_entry(g, "read") == 1 && ir_find_entry(g, "run") < 0,
          "entry names");
    char *t1 = print_graph(g);
    /* the file is written in the printer's form, comments aside: compare from the model line */
    const char *body = strstr(text, "\nmodel ");
    CHECK(body && !strcmp(t1, body + 1), "printing state_ring.kir gives:\n%s", t1);
    char *msgs = NULL;
    int nv;
    Graph *g2 = parse_msgs(t1, &msgs, &nv);
    CHECK(g2 && nv == 0, "the printed graph does not parse back:\n%s", msgs);
    if (g2) {
        char *t2 = print_graph(g2);
        CHECK(!strcmp(t1, t2), "second print differs:\n%s", t2);
        int ix[8];
        CHECK(ir_entry_inputs(g2, 1, ix) == 1 && !strcmp(g2->inputs[ix[0]]->name, "scale"), "read's inputs");
        CHECK(ir_entry_outputs(g2, 0, 1, ix) == 2 && ir_entry_outputs(g2, 0, 0, ix) == 1 &&
                  ir_entry_outputs(g2, 1, 0, ix) == 2,
              "outputs and updates per entry");
        free(t2);
        ir_graph_free(g2);
    }
    free(msgs);
    free(t1);
    free(text);
    ir_graph_free(g);
}

/* ---- 2. the interpreter over several calls */

typedef struct Ref {
    float buf[ROWS][COLS];
    int64_t n;
} Ref;

/* append(x[t, 2]) through the interpreter and the reference; returns the interpreter's code */
static int append(const Graph *g, IrState *st, Ref *ref, int t, float seed)
{
    float x[4][COLS];
    for (int i = 0; i < t; i++)
        for (int j = 0; j < COLS; j++)
            x[i][j] = seed + (float)i + 0.5f * (float)j;
    HostTensor in = {DT_F32, 2, {t, COLS}, x}, out[1];
    memset(out, 0, sizeof out);
    size_t n = 0;
    char *msgs = NULL;
    FILE *f = open_memstream(&msgs, &n);
    Diag *d = diag_new(f);
    int rc = ir_interp_entry(g, 0, st, &in, out, d);
    diag_free(d);
    fclose(f);
    if (ref->n + t <= ROWS) {
        CHECK(rc == 0, "append of %d rows at %lld failed:\n%s", t, (long long)ref->n, msgs);
        for (int i = 0; i < t; i++)
            memcpy(ref->buf[ref->n + i], x[i], sizeof x[i]);
        ref->n += t;
        if (!rc)
            CHECK(out[0].dtype == DT_I64 && *(int64_t *)out[0].data == ref->n, "count after append: %lld, want %lld",
                  (long long)*(int64_t *)out[0].data, (long long)ref->n);
    } else {
        CHECK(rc != 0 && strstr(msgs, "scatter") && strstr(msgs, "out of range"),
              "append past the end: rc %d, messages:\n%s", rc, msgs);
    }
    free(out[0].data);
    free(msgs);
    return rc;
}

/* read(scale) against the reference */
static void check_read(const Graph *g, IrState *st, const Ref *ref, float scale, const char *when)
{
    HostTensor in = {DT_F32, 1, {1}, &scale}, out[2];
    memset(out, 0, sizeof out);
    Diag *d = diag_new(stderr);
    int rc = ir_interp_entry(g, 1, st, &in, out, d);
    diag_free(d);
    CHECK(rc == 0, "%s: read failed", when);
    if (rc)
        return;
    CHECK(out[0].rank == 2 && out[0].shape[0] == ROWS && out[1].dtype == DT_I64, "%s: read's output types", when);
    const float *all = out[0].data;
    int bad = 0;
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++)
            bad += all[i * COLS + j] != ref->buf[i][j] * scale;
    CHECK(!bad, "%s: %d elements of the buffer differ from the reference", when, bad);
    CHECK(*(int64_t *)out[1].data == ref->n, "%s: count %lld, want %lld", when, (long long)*(int64_t *)out[1].data,
          (long long)ref->n);
    /* the raw state agrees too */
    CHECK(!memcmp(ir_state_data(st, ir_find_state(g, "buf")), ref->buf, sizeof ref->buf), "%s: state bytes", when);
    free(out[0].data);
    free(out[1].data);
}

static void test_interp_calls(void)
{
    char *text;
    Graph *g = load_ring(&text);
    free(text);
    if (!g)
        return;
    IrState *a = ir_state_new(g), *b = ir_state_new(g);
    Ref ra, rb;
    memset(&ra, 0, sizeof ra);
    memset(&rb, 0, sizeof rb);
    check_read(g, a, &ra, 1, "fresh");
    append(g, a, &ra, 3, 10);
    check_read(g, a, &ra, 2, "a after 3 rows");
    append(g, b, &rb, 1, -5); /* the other state is not touched by a's calls */
    check_read(g, b, &rb, 1, "b after 1 row");
    append(g, a, &ra, 2, 20);
    append(g, a, &ra, 1, 30);
    check_read(g, a, &ra, -1, "a after 6 rows");
    append(g, a, &ra, 4, 40); /* 6 + 4 > 8: an error, and the state stays */
    check_read(g, a, &ra, 1, "a after a failed append");
    append(g, a, &ra, 2, 50); /* exactly full */
    check_read(g, a, &ra, 1, "a full");
    check_read(g, b, &rb, 3, "b at the end");
    ir_state_reset(a);
    memset(&ra, 0, sizeof ra);
    check_read(g, a, &ra, 1, "a after reset");
    append(g, a, &ra, 4, 60);
    check_read(g, a, &ra, 1, "a after reset and append");

    /* ir_interp (no state) refuses a graph that reads state */
    float x[2] = {1, 2}, one = 1;
    HostTensor in[2] = {{DT_F32, 2, {1, 2}, x}, {DT_F32, 1, {1}, &one}}, out[3];
    char *msgs = NULL;
    size_t nm = 0;
    FILE *mf = open_memstream(&msgs, &nm);
    Diag *d = diag_new(mf);
    CHECK(ir_interp(g, in, out, d) != 0, "ir_interp ran a graph with state");
    diag_free(d);
    fclose(mf);
    CHECK(msgs && strstr(msgs, "run an entry with ir_interp_entry"), "ir_interp's message: %s", msgs);
    free(msgs);
    ir_state_free(a);
    ir_state_free(b);
    ir_graph_free(g);
}

/* ---- 3. what is rejected */

static void expect_error(const char *what, const char *text, const char *words)
{
    char *msgs = NULL;
    int nv;
    Graph *g = parse_msgs(text, &msgs, &nv);
    CHECK(!g || nv > 0, "%s: accepted", what);
    CHECK(msgs && strstr(msgs, words), "%s: expected \"%s\" in:\n%s", what, words, msgs);
    free(msgs);
    ir_graph_free(g);
}

static void test_errors(void)
{
    char *text = read_text("tests/unit/state_ring.kir");
    char *t;
    t = edit(text, "update n = %8", "update m = %8");
    expect_error("unknown state", t, "unknown state \"m\"");
    free(t);
    t = edit(text, "update n = %8", "update n = %4");
    expect_error("update of the wrong type", t, "state \"n\" is i64[1] but is updated with %4: i64[T]");
    free(t);
    t = edit(text, "update n = %8", "update buf = %8");
    expect_error("a state updated twice", t, "updates state \"buf\" twice");
    free(t);
    t = edit(text, "%2 = state", "%2 = state \"buf\" : f32[8, 3]");
    expect_error("state node of the wrong type", t, "state \"buf\" is declared f32[8, 2], not f32[8, 3]");
    free(t);
    t = edit(text, "%10 = mul", "%10 = mul(%0, %9) : f32[T, 2]");
    expect_error("an entry reading another's input", t, "needs input \"x\" of entry append");
    free(t);
    t = edit(text, "entry read", "entry read(%9, %0)");
    expect_error("an input in two entries", t, "listed by two entries");
    free(t);
    t = edit(text, "entry read", "entry read()");
    expect_error("an input in no entry", t, "input \"scale\" is in no entry");
    free(t);
    t = edit(text, "entry append", "entry append(%1)");
    expect_error("a non-input in an entry", t, "%1 is not an input node");
    free(t);
    t = edit(text, "entry read", "entry append(%9)");
    expect_error("an entry twice", t, "entry \"append\" declared twice");
    free(t);
    t = edit(text, "state n", "state n : i64[T]");
    expect_error("a state with a symbolic shape", t, "must have a static shape");
    free(t);
    t = edit(text, "%5 = scatter", "%5 = scatter(%2, %4, %0) {axis=0} : f32[8, 3]");
    expect_error("scatter of the wrong type", t, "give f32[8, 2] but the node is f32[8, 3]");
    free(t);
    t = edit(text, "%5 = scatter", "%5 = scatter(%2, %0, %0) {axis=0} : f32[8, 2]");
    expect_error("scatter with a float index", t, "the index of a scatter must be i32 or i64");
    free(t);
    expect_error("outputs before the first entry", "model m\nstate s : f32[1]\n%0 = state \"s\" : f32[1]\n"
                 "output y = %0\nentry e()\n", "an entry line must come before");
    free(text);
}

int main(void)
{
    test_round_trip();
    test_interp_calls();
    test_errors();
    if (failures) {
        fprintf(stderr, "test_state: %d failures\n", failures);
        return 1;
    }
    printf("test_state: ok\n");
    return 0;
}
