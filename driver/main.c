/* main.c: the `kiln` command.
 *
 *   kiln check MODEL   parse, check, summarise
 *   kiln ir    MODEL   print the IR
 *   kiln build MODEL   compile to an executable, a library, an object, assembly, LLVM IR, ...
 *   kiln run   MODEL   run on .npy inputs: compiled in memory (JIT), or with the interpreter
 *   kiln import MODEL.onnx -o NAME.kiln   write an ONNX model as a model file and a weights file
 *   kiln explore MODEL ...   sweep one option's values: FLOPs, bytes, time, quality (explore.c)
 *
 * MODEL is a model file (.kiln), kiln IR in its text form (.kir) or an ONNX model (.onnx, imported in
 * memory: the model text the import writes is what gets compiled). check, ir, run and build take -D
 * NAME=VALUE to override a const of the model file and --weights FILE to replace its weights file
 * (import refuses them: it takes -o and --bound only). Errors go to
 * stderr in the form file:line:col: error: ...; the exit status is 1 after an error in the model or
 * its data, 2 after a usage error.
 */
#include "codegen/codegen.h"
#include "driver/driver.h"
#include "passes/passes.h"
#include "runtime/kiln_rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    int profile;             /* run --profile: time per node group of the compiled run */
    const char *trace;       /* run --profile-trace FILE */
    int ninput, noutput;
    NamedFile inputs[64], outputs[64];
    int print_limit;   /* values printed per output when no --output is given */
    const char *out;   /* build: -o */
    Emit emit;
    int opt;           /* -O level */
    int weights_mode;  /* 0: by size, 1: embed, 2: external */
    const char *target, *cpu, *features;
    int threads;
    const char *passes;      /* --passes LIST */
    const char *print_after; /* --print-after PASS */
    int verbose;             /* -v: what each pass did */
    const char *explain;     /* --explain PASS */
    int nbound;
    OnnxBound bounds[16];    /* --bound NAME=N: the largest value of an ONNX dimension NAME */
    const char *kv_cache;    /* --kv-cache POLICY */
    const char *prune_tokens; /* --prune-tokens SPEC */
    const char *quant;       /* --quant SCHEME */
    int ncalib, nheldout;    /* --calibrate FILE..., --quant-heldout FILE... */
    const char *calib[256], *heldout[256];
    const char *quant_budget, *quant_report, *quant_overrides; /* --quant-budget, -report, -overrides */
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
    "  build MODEL     compile the model: executable, library, object, assembly, LLVM IR, ...\n"
    "  run MODEL       run the model on .npy inputs: compiled in memory, or --interp\n"
    "  import MODEL.onnx -o NAME.kiln\n"
    "                  write an ONNX model as a model file and a weights file (NAME.safetensors)\n"
    "  explore MODEL   sweep one knob of a pass (e.g. --prune-tokens 'tome:r=[0,4,8]'): FLOPs, bytes,\n"
    "                  time and accuracy or nats/char for each value, as a table and a plot\n"
    "\n"
    "MODEL is a model file (.kiln), kiln IR text (.kir) or an ONNX model (.onnx).\n"
    "\n"
    "options for check, ir, run and build (explore passes them on; import takes only -o and --bound):\n"
    "  --weights FILE      use this safetensors file instead of the model's `weights`\n"
    "  -D NAME=VALUE       override the const NAME of the model file\n"
    "  --passes LIST       the passes to run, comma-separated (they run in the pipeline's order), none,\n"
    "                      or default (the default pipeline, also without --passes); plan-memory, which\n"
    "                      lays out the activation arena, runs last unless the list is none; kv-cache,\n"
    "                      choose-quant and prune-tokens run when their option is given, listed or not.\n"
    "                      The passes, in order: @PASSES@\n"
    "  --print-after PASS  print the IR after PASS (or all) to stdout\n"
    "  --explain PASS      say why PASS left something alone (fuse-attention: each softmax not\n"
    "                      fused; fuse-ops: each matmul that does not run its consumers as its epilogue;\n"
    "                      kv-cache: the node that stops it, which it always says, and how each\n"
    "                      attention's positions are cached (absolute or positions=cache); prune-tokens:\n"
    "                      each layer or model not merged; codegen (build, run): the target's vector width,\n"
    "                      registers and caches, and the kernels' blocking, tiles and thread split\n"
    "                      chosen from them; choose-quant: its table per layer and its time model)\n"
    "  --kv-cache POLICY   derive prefill and decode entries with a KV cache from a causal decoder\n"
    "                      (one input of token ids [T]); POLICY: full (the bound of T slots), full:B,\n"
    "                      window:W (the last W tokens), sinks:S,window:W (the first S and the\n"
    "                      last W, as StreamingLLM), tova:B (B tokens; when full, the one the new\n"
    "                      token attends to least, averaged over heads, leaves: TOVA),\n"
    "                      h2o:heavy=H,recent=R (per KV head, the H that received the most\n"
    "                      attention and the R most recent: H2O) or cascade:B,n=N[,sinks=S] (S\n"
    "                      sinks and N sub-caches of (B - S)/N tokens, sub-cache i taking every\n"
    "                      2^i-th token and keeping the more attended: cascading KV cache; tova,\n"
    "                      h2o and cascade reduce a prompt longer than B by its attention, as\n"
    "                      their references do; full:B refuses it); then\n"
    "                      optionally ,positions=cache (rotary models, a policy but full: keys cached\n"
    "                      before the rotation, rotated by their rank among the held tokens, the\n"
    "                      query at the count held before it, as StreamingLLM) or ,positions=absolute\n"
    "                      (the default: each key keeps its own position); and optionally ,kv=int8\n"
    "                      (full, window and sinks: the caches in int8 with an f32 scale per cached\n"
    "                      token and KV head, max|x|/127, decode's attention reading them as they\n"
    "                      are) or ,kv=f32 (the default); see docs/PASSES.md\n"
    "  -v                  say what each pass did\n"
    "  --bound NAME=N      an ONNX model's dimension NAME (a dim_param) is at most N: a symbolic size;\n"
    "                      NAME=0: it is 0 (a cache's first call: the empty inputs are left out)\n"
    "  --prune-tokens SPEC merge or prune the tokens of a vision transformer (off by default; the\n"
    "                      pass's report, tokens and FLOPs per layer, goes to stdout with check, to\n"
    "                      stderr with -v):\n"
    "                        tome:r=8             ToMe, 8 tokens merged per layer\n"
    "                        tome:r=8,16,4        r per layer (0 past the list)\n"
    "                        tome:r=8,schedule=decreasing   ToMe's decreasing schedule (2r down to 0)\n"
    "                        tome:r=8,inflect=X   ToMe's parse_r((r, X)), X in [-1, 1]\n"
    "                        tome:flops=0.4       the smallest constant r removing 40% of the FLOPs\n"
    "                        pitome:ratio=0.9     PiToMe, 90% of the tokens kept per layer\n"
    "                        evit:keep=0.7,layers=3,6,9   EViT at those layers (from 0)\n"
    "                      and ,cls=none (no [CLS] token to protect), ,prop=off (tome without\n"
    "                      proportional attention), ,prop=on (pitome with it)\n"
    "  --quant SCHEME      choose-quant: every matmul with constant weights quantized with SCHEME:\n"
    "                      bf16 (bf16 weights, activations rounded to bf16, f32 sums), int8 (i8\n"
    "                      weights per output channel, activations per row at run time), int8s (int8's\n"
    "                      weights, activations with one scale per matmul fixed from the calibration\n"
    "                      runs: needs --calibrate), w8 (i8 weights only), w4 (4-bit weights in groups\n"
    "                      of 32 along K)\n"
    "  --calibrate FILE... choose-quant's calibration runs (the files up to the next option): FILE.npy\n"
    "                      is one run of a model with one input; any other file is text for a\n"
    "                      character language model, cut into windows of the input's bound. The\n"
    "                      interpreter records the ranges of the matmuls' inputs and each layer's\n"
    "                      loss alone under bf16, int8, int8s, w8 and w4 (mean KL divergence of the softmax of an\n"
    "                      output named *logits*, else relative error); the last quarter is held out\n"
    "  --quant-budget B    choose a scheme per layer (needs --calibrate): loss=X (the first output's\n"
    "                      loss against fp32 at most X on the held-out runs), size=MB (the weights at\n"
    "                      most MB x 10^6 bytes), speed=F (the matmuls' estimated time at most 1/F of\n"
    "                      fp32's), or several: loss=0.01,speed=2. With loss=X the smallest choice\n"
    "                      within it, else the least loss; a knapsack solved by dynamic programming.\n"
    "                      The time is estimated for the target (the host, or kiln build's --target,\n"
    "                      --cpu, --features): its instructions' peaks, the kernels codegen runs there\n"
    "                      and its last-level cache; the report says which rates it used and why\n"
    "  --quant-heldout FILE...  verify the choice on these runs instead of the last quarter\n"
    "  --quant-report FILE write choose-quant's table (layer, scheme, scope, losses, bytes, MFLOP,\n"
    "                      estimated ms; the time model's target and rates in its header);\n"
    "                      --explain choose-quant prints it to stderr\n"
    "  --quant-overrides FILE  pin layers: lines LAYER SCHEME (a report's first two columns; SCHEME\n"
    "                      fp32, bf16, int8, int8s, w8 or w4); the other layers as chosen, as --quant, or fp32\n"
    "\n"
    "  kiln --version      print the version\n"
    "  kiln COMMAND --help describe one command\n";

static const char *help_check =
    "usage: kiln check MODEL [--weights FILE] [-D NAME=VALUE ...]\n"
    "\n"
    "Parses and checks MODEL (names, dtypes, shapes, weights against the weights file) and prints a\n"
    "summary: inputs, outputs, symbolic sizes, parameters, FLOPs, the activation arena plan-memory\n"
    "laid out and the largest value computed (with every symbolic size at its bound). Errors are printed as file:line:col: error: ...; exit status 1.\n";

static const char *help_ir =
    "usage: kiln ir MODEL [--weights FILE] [-D NAME=VALUE ...] [--passes LIST] [--print-after PASS] [-v]\n"
    "\n"
    "Prints the IR of MODEL after the passes in kiln's text form, which every kiln command also reads\n"
    "back (files ending in .kir). --passes none prints it as the frontend made it; --print-after PASS\n"
    "prints it after that pass instead (all: after each). The passes, in order: @PASSES@.\n";

static const char *help_run =
    "usage: kiln run MODEL --input NAME=FILE.npy ... [--output NAME=FILE.npy ...] [--interp]\n"
    "                [--threads N] [-O0..-O3] [--weights FILE] [-D NAME=VALUE ...]\n"
    "                [--profile] [--profile-trace FILE]\n"
    "\n"
    "Runs MODEL on the given inputs: compiled to native code in memory (LLVM's JIT) by default, or\n"
    "with --interp by the interpreter (plain loops accumulating in double; the reference every other\n"
    "execution is tested against). Each input is a NumPy .npy file whose dtype and shape must match\n"
    "the model's declaration; symbolic sizes are taken from the inputs. --output NAME=FILE writes an\n"
    "output as .npy; without it, each output's type and first values are printed.\n"
    "--profile prints the compiled run's time per node group (a matmul with its epilogue, an attention,\n"
    "a fused loop, a norm, a copy): wall and CPU ms, its share, GFLOP/s, GB/s and the % of the\n"
    "machine's peak it reaches (the FMA rate at the model's vector width on the run's threads, or a\n"
    "STREAM triad's bandwidth, whichever bounds the group; measured before the run; none for int8\n"
    "and bf16 products, kind qmatmul), largest first;\n"
    "--profile-trace FILE also writes the groups' times as Chrome trace JSON (chrome://tracing,\n"
    "Perfetto), the peak in its metadata. One run is timed, cold; a program built with kiln build\n"
    "times warm runs with --bench N --profile.\n"
    "kiln run runs a model with one entry and no state: a model built with --kv-cache (prefill and\n"
    "decode, a cache) runs as a program or library of kiln build.\n";

static const char *help_build =
    "usage: kiln build MODEL [-o OUT] [--emit KIND] [-O0..-O3] [--weights FILE]\n"
    "                  [--weights-mode embed|external] [--target TRIPLE] [--cpu NAME] [--features LIST]\n"
    "                  [-D NAME=VALUE ...]\n"
    "\n"
    "Compiles MODEL to native code for the host CPU (or --target/--cpu). --features gives LLVM's\n"
    "feature list instead of the host's or the CPU name's (+avx512f,+avx512vnni,-amx-tile, ...):\n"
    "the kernels are chosen from it. KIND is one of:\n"
    "  exe      a program (default): PROGRAM --input NAME=FILE.npy ... [--output NAME=FILE.npy]\n"
    "           [--weights FILE] [--threads N] [--bench N] [--profile] [--profile-trace FILE];\n"
    "           a character-level language model's also --prompt TEXT and --eval FILE (PROGRAM --help)\n"
    "  lib      a static library libNAME.a and its header NAME.h\n"
    "  shared   a shared library libNAME.so and its header NAME.h\n"
    "  obj      an object file     asm   assembly     ir   kiln IR after the passes\n"
    "  llvm     LLVM IR after optimisation (OUT) and before it (OUT with .unopt.ll)\n"
    "  dot      the graph for Graphviz after the passes (OUT) and before them (OUT with .before.dot\n"
    "           in place of its .dot, if any: g.dot and g.before.dot):\n"
    "           nodes coloured by op family, each fused loop or matmul epilogue one cluster, edges\n"
    "           labelled with type and size\n"
    "  svg      the same drawn as SVG by Graphviz's dot (apt-get install graphviz)\n"
    "Without -o, OUT is NAME (the model's name made a C identifier) in the kind's form: NAME,\n"
    "libNAME.a, libNAME.so, NAME.o, NAME.ll, NAME.s, NAME.kir, NAME.dot, NAME.svg. Weights are\n"
    "embedded in the output when they take at most 256 MiB, else written to OUT.weights and mapped\n"
    "when the program starts; --weights-mode chooses. -O2 is the default.\n";

/* Writes a help text with @PASSES@ replaced by the pipeline's pass names, so --help lists the passes
 * that exist (from passes/pipeline.c's table), not a copy that goes stale. */
static void print_help(const char *text, FILE *f)
{
    const char *mark = "@PASSES@";
    for (const char *p = text; *p;) {
        const char *q = strstr(p, mark);
        if (!q) {
            fputs(p, f);
            break;
        }
        fwrite(p, 1, (size_t)(q - p), f);
        fputs(pass_names(), f);
        p = q + strlen(mark);
    }
}

static const char *help_import =
    "usage: kiln import MODEL.onnx [-o NAME.kiln] [--bound NAME=N ...]\n"
    "\n"
    "Writes the ONNX model as a model file in kiln's language (NAME.kiln; the ONNX node of each line in\n"
    "a comment) and its initializers, with the constants the file computes, as NAME.safetensors beside\n"
    "it. Shape computations (Shape, Gather, Concat ... feeding Reshape) are folded to constants. A\n"
    "dimension the file leaves open (a dim_param) needs --bound NAME=N and becomes a symbolic size\n"
    "(--bound NAME=0: the dimension is 0, and the inputs it empties are left out). The\n"
    "supported ops are listed in docs/ONNX.md; any other op, attribute, dtype or opset is an error\n"
    "naming the node. The default output is the ONNX file's name with .kiln.\n";

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
            const char *h = !strcmp(o->cmd, "check") ? help_check
                          : !strcmp(o->cmd, "ir")    ? help_ir
                          : !strcmp(o->cmd, "import") ? help_import
                          : !strcmp(o->cmd, "build") ? help_build
                                                     : help_run;
            print_help(h, stdout);
            if (h != help_import) /* the pass options below the usage line are not repeated per command */
                fputs("\nThe options for every command that `kiln --help` lists (--passes, --print-after, --explain,\n"
                      "--kv-cache, --prune-tokens, --quant, --bound, -v, ...) apply here too.\n",
                      stdout);
            return -1;
        } else if (!strcmp(o->cmd, "import") && a[0] == '-' && strcmp(a, "-o") && strcmp(a, "--bound")) {
            /* import writes the model as it is: what the other commands do with a model does not apply */
            return usage_error("kiln import takes -o and --bound only; '%s' is an option of check, ir, run and build", a);
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
        } else if (!strcmp(a, "--passes") || !strcmp(a, "--print-after") || !strcmp(a, "--explain") ||
                   !strcmp(a, "--kv-cache")) {
            if (!val)
                return usage_error("%s needs a value", a);
            *(!strcmp(a, "--passes")    ? &o->passes
              : !strcmp(a, "--explain") ? &o->explain
              : !strcmp(a, "--kv-cache") ? &o->kv_cache
                                        : &o->print_after) = val;
            i++;
        } else if (!strcmp(a, "--bound")) {
            const char *eq = val ? strchr(val, '=') : NULL;
            char *end = NULL;
            long long b = eq ? strtoll(eq + 1, &end, 10) : 0;
            if (!val || !eq || eq == val || !end || *end || b < 0)
                return usage_error("--bound expects NAME=N with N at least 0, got '%s'", val ? val : "");
            if (o->nbound == 16)
                return usage_error("too many --bound options%s", "");
            o->bounds[o->nbound++] = (OnnxBound){strndup(val, (size_t)(eq - val)), b};
            i++;
        } else if (!strcmp(a, "-o") && !strcmp(o->cmd, "import")) {
            if (!val)
                return usage_error("%s needs a value", a);
            o->out = val;
            i++;
        } else if (!strcmp(a, "--prune-tokens")) {
            if (!val)
                return usage_error("%s needs a method, as tome:r=8", a);
            o->prune_tokens = val;
            i++;
        } else if (!strcmp(a, "--quant")) {
            if (!val || !pass_quant_scheme_ok(val))
                return usage_error("--quant needs a scheme: %s", pass_quant_schemes());
            o->quant = val;
            i++;
        } else if (!strcmp(a, "--calibrate") || !strcmp(a, "--quant-heldout")) {
            int held = !strcmp(a, "--quant-heldout"), *n = held ? &o->nheldout : &o->ncalib;
            const char **files = held ? o->heldout : o->calib;
            if (!val || val[0] == '-')
                return usage_error("%s needs one or more files", a);
            while (i + 1 < argc && argv[i + 1][0] != '-') {
                if (*n == 256)
                    return usage_error("%s: more than 256 files", a);
                files[(*n)++] = argv[++i];
            }
        } else if (!strcmp(a, "--quant-budget") || !strcmp(a, "--quant-report") || !strcmp(a, "--quant-overrides")) {
            double loss, size, speed;
            if (!val)
                return usage_error("%s needs a value", a);
            if (!strcmp(a, "--quant-budget") && !pass_quant_budget(val, &loss, &size, &speed))
                return usage_error("--quant-budget expects loss=X, size=MB, speed=F (F > 0) or several "
                                   "(loss=0.01,speed=2), not '%s'", val);
            *(!strcmp(a, "--quant-budget") ? &o->quant_budget
              : !strcmp(a, "--quant-report") ? &o->quant_report
                                             : &o->quant_overrides) = val;
            i++;
        } else if (!strcmp(a, "-v")) {
            o->verbose = 1;
        } else if (!strcmp(a, "--interp") && !strcmp(o->cmd, "run")) {
            o->interp = 1;
        } else if (!strcmp(a, "--profile") && !strcmp(o->cmd, "run")) {
            o->profile = 1;
        } else if (!strcmp(a, "--profile-trace") && !strcmp(o->cmd, "run")) {
            if (!val)
                return usage_error("%s needs a file", a);
            o->trace = val;
            o->profile = 1;
            i++;
        } else if (!strncmp(a, "-O", 2) && strlen(a) == 3 && a[2] >= '0' && a[2] <= '3' &&
                   (!strcmp(o->cmd, "run") || !strcmp(o->cmd, "build"))) {
            o->opt = a[2] - '0';
        } else if (!strcmp(a, "--threads") && !strcmp(o->cmd, "run")) {
            if (!val || atoi(val) < 1)
                return usage_error("--threads needs a positive number%s", "");
            o->threads = atoi(val);
            i++;
        } else if (!strcmp(o->cmd, "build") && (!strcmp(a, "-o") || !strcmp(a, "--emit") || !strcmp(a, "--target") ||
                                                 !strcmp(a, "--cpu") || !strcmp(a, "--features") ||
                                                 !strcmp(a, "--weights-mode"))) {
            if (!val)
                return usage_error("%s needs a value", a);
            i++;
            if (!strcmp(a, "-o"))
                o->out = val;
            else if (!strcmp(a, "--target"))
                o->target = val;
            else if (!strcmp(a, "--cpu"))
                o->cpu = val;
            else if (!strcmp(a, "--features"))
                o->features = val;
            else if (!strcmp(a, "--weights-mode")) {
                if (strcmp(val, "embed") && strcmp(val, "external"))
                    return usage_error("--weights-mode is embed or external, not '%s'", val);
                o->weights_mode = !strcmp(val, "embed") ? 1 : 2;
            } else {
                static const char *kinds[] = {"exe", "lib", "shared", "obj", "llvm", "asm", "ir", "dot", "svg"};
                int k = 0;
                while (k < 9 && strcmp(kinds[k], val))
                    k++;
                if (k == 9)
                    return usage_error("--emit is one of exe, lib, shared, obj, llvm, asm, ir, dot, svg; not '%s'", val);
                o->emit = (Emit)k;
            }
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
    if (o->explain && strcmp(o->explain, "fuse-attention") && strcmp(o->explain, "fuse-ops") &&
        strcmp(o->explain, "kv-cache") && strcmp(o->explain, "prune-tokens") && strcmp(o->explain, "codegen") &&
        strcmp(o->explain, "choose-quant"))
        return usage_error("--explain: fuse-attention, fuse-ops, kv-cache, prune-tokens, choose-quant and codegen "
                           "explain themselves, not '%s'",
                           o->explain);
    if ((o->quant_budget || o->nheldout) && !o->ncalib)
        return usage_error("%s needs --calibrate FILE...", o->quant_budget ? "--quant-budget" : "--quant-heldout");
    if (o->quant_budget && o->quant)
        return usage_error("--quant %s sets every layer; --quant-budget chooses per layer: give one", o->quant);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void unload(Graph *g);

/* What choose-quant's time model is told of the target: the facts codegen uses (cg_target) for the
 * target kiln build compiles for (--target/--cpu/--features), the host for the other commands; and,
 * on the host, the last-level cache (sysfs's largest cache level, else sysconf). Returns -1 after an
 * error (a CPU or feature LLVM does not know, reported). */
static int quant_target(const Options *o, Graph *g, QuantTarget *qt, Diag *d)
{
    CgOptions co = {.triple = o->target, .cpu = o->cpu, .features = o->features};
    Cg *cg = cg_new(&co, d);
    if (!cg)
        return -1;
    CgTarget t = cg_target(cg);
    *qt = (QuantTarget){.known = 1, .cpu = arena_strdup(g->arena, cg->cpu), .isa = t.isa, .core = t.core,
                        .x86 = t.x86, .vw = t.vw, .fma = t.fma, .vnni = t.vnni, .bf16 = t.bf16,
                        .amx_int8 = t.amx_int8, .amx_bf16 = t.amx_bf16, .fma_pipes = t.fma_pipes,
                        .fma_bits = t.fma_bits};
    cg_free(cg);
    if (o->target || o->cpu || o->features)
        return 0;
    int best = 0;
    for (int i = 0; i < 8; i++) {
        char path[96], buf[32];
        long level = 0, size = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        FILE *f = fopen(path, "r");
        if (f && fgets(buf, sizeof buf, f))
            level = strtol(buf, NULL, 10);
        if (f)
            fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        f = fopen(path, "r");
        if (f && fgets(buf, sizeof buf, f)) {
            char *end;
            size = strtol(buf, &end, 10);
            size <<= *end == 'K' ? 10 : *end == 'M' ? 20 : 0;
        }
        if (f)
            fclose(f);
        if (level > best && size > 0)
            best = (int)level, qt->llc = size, qt->llc_from = "this machine (sysfs)";
    }
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (!qt->llc && l3 > 0)
        qt->llc = l3, qt->llc_from = "this machine (sysconf)";
    return 0;
}

/* The model as a checked graph: from a model file, or from IR text. */
static Graph *load(const Options *o, Diag *d)
{
    Graph *g;
    if (o->nbound && !ends_with(o->model, ".onnx")) {
        diag_fatal(d, "--bound applies to ONNX models; '%s' declares its sizes' bounds itself (T <= N), "
                      "which -D can set if the model names them", o->model);
        return NULL;
    }
    if (ends_with(o->model, ".kir")) {
        if (o->ndefine) {
            diag_fatal(d, "-D applies to model files, not to IR text ('%s')", o->model);
            return NULL;
        }
        char *text = diag_read_text(d, o->model, "IR text");
        if (!text)
            return NULL;
        g = ir_parse(o->model, text, o->weights, d);
        free(text);
    } else if (ends_with(o->model, ".onnx")) {
        FrontendOptions fo = {.weights_override = o->weights, .ndefine = o->ndefine, .defines = o->defines};
        OnnxOptions oo = {.nbound = o->nbound, .bounds = o->bounds};
        g = onnx_compile(o->model, &oo, &fo, d);
    } else {
        FrontendOptions fo = {.weights_override = o->weights, .ndefine = o->ndefine, .defines = o->defines};
        g = fe_compile(o->model, &fo, d);
    }
    PassOptions po = {.d = d, .log = o->verbose ? stderr : NULL, .explain = o->explain, .kv_cache = o->kv_cache,
                      .prune_tokens = o->prune_tokens, .quant = o->quant, .ncalib = o->ncalib,
                      .calib = o->calib, .nheldout = o->nheldout, .heldout = o->heldout,
                      .quant_budget = o->quant_budget, .quant_report = o->quant_report,
                      .quant_overrides = o->quant_overrides,
                      .report = !strcmp(o->cmd, "check") ? stdout : o->verbose ? stderr : NULL};
    if (g && pass_quant_on(&po) && quant_target(o, g, &po.quant_target, d)) {
        unload(g);
        return NULL;
    }
    if (g && (ir_verify(g, d) || pass_pipeline(g, o->passes, o->print_after, stdout, &po))) {
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
        if (t->dtype == DT_U64) /* its bits, not the nearest double */
            printf("%s%llu", i ? ", " : "", (unsigned long long)((const uint64_t *)t->data)[i]);
        else
            printf(dtype_traits[t->dtype].is_float ? "%s%.6g" : "%s%.0f", i ? ", " : "", v);
    }
    printf(n > limit ? ", ...]  (%lld values)\n" : "]\n", (long long)n);
}

/* Compiles g into cg's module (optimised); NULL after an error. */
static Cg *compile(const Options *o, const Graph *g, int embed, int exe_main, const char *unopt_path, Diag *d)
{
    CgOptions co = {.triple = o->target, .cpu = o->cpu, .features = o->features, .opt = o->opt, .embed_weights = embed,
                    .explain = o->explain && !strcmp(o->explain, "codegen") ? stderr : NULL};
    Cg *cg = cg_new(&co, d);
    if (!cg)
        return NULL;
    if (cg_build(cg, g)) {
        cg_free(cg);
        return NULL;
    }
    if (exe_main)
        cg_add_main(cg);
    if ((unopt_path && cg_write_llvm(cg, unopt_path)) || cg_optimise(cg)) {
        cg_free(cg);
        return NULL;
    }
    return cg;
}

static int cmd_run(const Options *o, Diag *d)
{
    Graph *g = load(o, d);
    if (!g)
        return 1;
    int status = 1;
    HostTensor *in = calloc((size_t)g->ninput + 1, sizeof *in), *out = calloc((size_t)g->noutput + 1, sizeof *out);
    RtNpy *npy = calloc((size_t)g->ninput + 1, sizeof *npy);
    KILN_ASSERT(in && out && npy);
    int64_t syms[IR_MAX_SYMS] = {0};
    RtProfile *prof = NULL; /* --profile: reported after the outputs */
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
    if (g->nentry || g->nstate)
        diag_fatal(d, "%s: kiln run runs a model without state and with one entry; this one has %d state%s and "
                   "%d entr%s: build it with kiln build --emit lib and call its entries", o->model, g->nstate,
                   g->nstate == 1 ? "" : "s", ir_nentries(g), ir_nentries(g) == 1 ? "y" : "ies");
    if (diag_errors(d))
        goto done;
    if (o->interp) {
        if (ir_interp(g, in, out, d))
            goto done;
    } else {
        if (ir_bind_inputs(g, in, syms, d))
            goto done;
        void *inp[256], *outp[256];
        for (int i = 0; i < g->ninput && i < 256; i++)
            inp[i] = in[i].data;
        for (int i = 0; i < g->noutput && i < 256; i++) {
            HostTensor *t = &out[i];
            const Node *n = g->outputs[i].node;
            t->dtype = n->dtype;
            t->rank = n->rank;
            int64_t cnt = 1;
            for (int j = 0; j < n->rank; j++)
                cnt *= (t->shape[j] = dim_eval(n->shape[j], syms));
            t->data = calloc((size_t)(cnt ? cnt : 1), (size_t)dtype_traits[n->dtype].size);
            KILN_ASSERT(t->data);
            outp[i] = t->data;
        }
        Cg *cg = compile(o, g, 0, 0, NULL, d);
        if (cg && o->profile && !(prof = rt_profile_start(o->trace ? 1 << 20 : 0)))
            diag_fatal(d, "out of memory for the profile");
        if (!cg || (o->profile && !prof) || cg_jit_run(cg, syms, inp, outp, o->threads)) {
            cg_free(cg);
            goto done;
        }
        cg_free(cg);
        if (prof)
            rt_profile_stop(prof);
    }
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
    if (prof) {
        char err[512];
        rt_profile_report(prof, syms, stdout);
        if (o->trace && rt_profile_write_trace(prof, o->trace, err, sizeof err)) {
            diag_fatal(d, "%s", err);
            status = 1;
        }
    }
done:
    rt_profile_free(prof);
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

static char *path_with(const char *base, const char *suffix)
{
    size_t n = strlen(base) + strlen(suffix) + 1;
    char *p = malloc(n);
    KILN_ASSERT(p);
    snprintf(p, n, "%s%s", base, suffix);
    return p;
}

/* OUT with its extension (if any) replaced: "g.dot" -> "g.before.dot". */
static char *path_variant(const char *out, const char *ext, const char *variant)
{
    size_t n = strlen(out), e = strlen(ext);
    size_t keep = n >= e && !strcmp(out + n - e, ext) ? n - e : n;
    size_t len = keep + strlen(variant) + e + 1;
    char *p = malloc(len);
    KILN_ASSERT(p);
    snprintf(p, len, "%.*s%s%s", (int)keep, out, variant, ext);
    return p;
}

/* --emit dot|svg: the graph after the passes in OUT and before them (as the frontend made it) in
 * OUT.before.dot|svg; svg through Graphviz's `dot`, which must be installed. Returns the status. */
static int write_pictures(const Options *o, Graph *g, const char *out, Diag *d)
{
    int svg = o->emit == EMIT_SVG;
    const char *ext = svg ? ".svg" : ".dot";
    if (svg && system("command -v dot >/dev/null 2>&1")) {
        diag_fatal(d, "--emit svg needs Graphviz's `dot` on the PATH (apt-get install graphviz), or use --emit dot");
        return 1;
    }
    Options before = *o;
    before.passes = "none";
    before.print_after = NULL;
    before.verbose = 0;
    before.explain = NULL;
    Graph *g0 = load(&before, d);
    if (!g0)
        return 1;
    char *out0 = path_variant(out, ext, ".before");
    const Graph *graphs[2] = {g, g0};
    const char *paths[2] = {out, out0};
    int status = 0;
    for (int k = 0; k < 2 && !status; k++) {
        char *dotfile = svg ? path_with(paths[k], ".tmp.dot") : strdup(paths[k]);
        KILN_ASSERT(dotfile);
        status = cg_write_dot(graphs[k], dotfile, d) ? 1 : 0;
        if (!status && svg) {
            size_t n = strlen(dotfile) + strlen(paths[k]) + 64;
            char *cmd = malloc(n);
            KILN_ASSERT(cmd);
            snprintf(cmd, n, "dot -Tsvg -o '%s' '%s'", paths[k], dotfile);
            if (strchr(paths[k], '\'') || system(cmd)) {
                diag_fatal(d, "Graphviz's dot could not draw '%s'", paths[k]);
                status = 1;
            }
            free(cmd);
            remove(dotfile);
        }
        free(dotfile);
    }
    free(out0);
    unload(g0);
    return status;
}

static int cmd_build(Options *o, Diag *d)
{
    Graph *g = load(o, d);
    if (!g)
        return 1;
    char *ident = cg_ident(g->model ? g->model : "model");
    char *out = NULL, *tmp = NULL, *header = NULL, *wfile = NULL;
    int status = 1;
    static const char *default_suffix[] = {"", ".a", ".so", ".o", ".ll", ".s", ".kir", ".dot", ".svg"};
    if (o->out)
        out = strdup(o->out);
    else if (o->emit == EMIT_LIB || o->emit == EMIT_SHARED) {
        char *base = path_with(ident, default_suffix[o->emit]);
        out = path_with("lib", base);
        free(base);
    }
    else
        out = path_with(ident, default_suffix[o->emit]);
    if (o->emit == EMIT_IR || o->emit == EMIT_DOT || o->emit == EMIT_SVG) {
        if (o->emit == EMIT_DOT || o->emit == EMIT_SVG) {
            status = write_pictures(o, g, out, d);
        } else {
            FILE *f = fopen(out, "w");
            if (!f)
                diag_fatal(d, "cannot write '%s': %s", out, strerror(errno));
            else {
                ir_print(f, g);
                status = fclose(f) ? 1 : 0;
            }
        }
        goto done;
    }
    /* size of the weights blob decides embedding unless --weights-mode says */
    int64_t wbytes = 0;
    for (int i = 0; i < g->nnode; i++)
        if (g->nodes[i]->op == OP_WEIGHT || g->nodes[i]->op == OP_CONST) {
            int64_t vals[IR_MAX_SYMS] = {0};
            wbytes += shape_numel(g->nodes[i]->rank, g->nodes[i]->shape, vals) * dtype_traits[g->nodes[i]->dtype].size;
        }
    int embed = o->weights_mode ? o->weights_mode == 1 : wbytes <= (256ll << 20);
    char *unopt = o->emit == EMIT_LLVM ? path_with(out, ".unopt.ll") : NULL;
    if (unopt && ends_with(out, ".ll")) { /* m.ll -> m.unopt.ll */
        free(unopt);
        size_t n = strlen(out) - 3;
        unopt = malloc(n + sizeof ".unopt.ll");
        KILN_ASSERT(unopt);
        memcpy(unopt, out, n);
        strcpy(unopt + n, ".unopt.ll");
    }
    Cg *cg = compile(o, g, embed, o->emit == EMIT_EXE, unopt, d);
    free(unopt);
    if (!cg)
        goto done;
    int rc = 0;
    switch (o->emit) {
    case EMIT_LLVM: rc = cg_write_llvm(cg, out); break;
    case EMIT_ASM: rc = cg_emit_file(cg, out, 1); break;
    case EMIT_OBJ: rc = cg_emit_file(cg, out, 0); break;
    default:
        tmp = path_with(out, ".kiln-tmp.o");
        rc = cg_emit_file(cg, tmp, 0);
        if (!rc)
            rc = cg_link(o->emit, tmp, out, d);
        remove(tmp);
        break;
    }
    if (!rc && (o->emit == EMIT_LIB || o->emit == EMIT_SHARED)) {
        /* NAME.h beside the library */
        const char *slash = strrchr(out, '/');
        char *dir = slash ? strndup(out, (size_t)(slash - out + 1)) : strdup("");
        char *file = path_with(ident, ".h");
        header = path_with(dir, file);
        free(file);
        free(dir);
        rc = cg_write_header(g, &cg->plan, ident, cg->amx_used, header, d);
    }
    if (!rc && !embed && o->emit != EMIT_LLVM && o->emit != EMIT_ASM) {
        wfile = path_with(out, ".weights");
        rc = cg_write_weights(&cg->plan, wfile, d);
    }
    if (!rc) {
        fprintf(stderr, "kiln: wrote %s", out);
        if (header)
            fprintf(stderr, " and %s", header);
        if (wfile)
            fprintf(stderr, " (weights in %s: a program finds it beside itself; else pass --weights %s)", wfile, wfile);
        fprintf(stderr, "\n");
    }
    cg_free(cg);
    status = rc ? 1 : 0;
done:
    free(ident);
    free(out);
    free(tmp);
    free(header);
    free(wfile);
    unload(g);
    return status;
}

static int cmd_import(const Options *o, Diag *d)
{
    if (!ends_with(o->model, ".onnx")) {
        diag_fatal(d, "kiln import reads ONNX models (.onnx), not '%s'", o->model);
        return 1;
    }
    /* NAME.kiln and NAME.safetensors: the model file names its weights relative to itself */
    char *kiln = o->out ? strdup(o->out) : NULL;
    if (!kiln) {
        size_t n = strlen(o->model) - 5;
        kiln = malloc(n + 6);
        KILN_ASSERT(kiln);
        memcpy(kiln, o->model, n);
        strcpy(kiln + n, ".kiln");
    }
    size_t n = ends_with(kiln, ".kiln") ? strlen(kiln) - 5 : strlen(kiln);
    char *wpath = malloc(n + sizeof ".safetensors");
    KILN_ASSERT(wpath);
    memcpy(wpath, kiln, n);
    strcpy(wpath + n, ".safetensors");
    const char *wname = strrchr(wpath, '/') ? strrchr(wpath, '/') + 1 : wpath;
    OnnxOptions oo = {.nbound = o->nbound, .bounds = o->bounds};
    OnnxModel *m = onnx_import(o->model, wname, &oo, d);
    int status = 1;
    if (m && !onnx_write(m, kiln, wpath, d)) {
        fprintf(stderr, "kiln: wrote %s", kiln);
        if (m->nweights)
            fprintf(stderr, " and %s (%d tensors)", wpath, m->nweights);
        fprintf(stderr, "\n");
        status = 0;
    }
    onnx_model_free(m);
    free(kiln);
    free(wpath);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_help(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("kiln %s\n", KILN_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "explore"))
        return explore_main(argc, argv);
    Options o = {.cmd = argv[1], .print_limit = 8, .opt = 2};
    if (strcmp(o.cmd, "check") && strcmp(o.cmd, "ir") && strcmp(o.cmd, "run") && strcmp(o.cmd, "build") &&
        strcmp(o.cmd, "import"))
        return usage_error("unknown command '%s'", o.cmd);
    int st = parse_options(argc, argv, &o);
    if (st)
        return st < 0 ? 0 : st;
    Diag *d = diag_new(stderr);
    int status = 0;
    if (!strcmp(o.cmd, "run")) {
        status = cmd_run(&o, d);
    } else if (!strcmp(o.cmd, "import")) {
        status = cmd_import(&o, d);
    } else if (!strcmp(o.cmd, "build")) {
        status = cmd_build(&o, d);
    } else {
        Graph *g = load(&o, d);
        if (!g)
            status = 1;
        else if (!strcmp(o.cmd, "check"))
            report_summary(stdout, g);
        else if (!o.print_after)
            ir_print(stdout, g);
        unload(g);
    }
    if (diag_errors(d) && !status)
        status = 1;
    diag_free(d);
    for (int i = 0; i < o.ndefine; i++)
        free((char *)o.defines[i].name);
    for (int i = 0; i < o.ninput; i++)
        free((char *)o.inputs[i].name);
    for (int i = 0; i < o.noutput; i++)
        free((char *)o.outputs[i].name);
    for (int i = 0; i < o.nbound; i++)
        free((char *)o.bounds[i].name);
    return status;
}
