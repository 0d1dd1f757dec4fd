/* test_safetensors.c: unit tests for ir/weights.c (the safetensors reader).
 *
 * A round trip through st_write and st_open (data, shapes, dtypes, metadata), st_find and st_meta
 * hits and misses, the order of st_closest, then one hand-made malformed file per check st_open
 * makes: each must give NULL and exactly one error naming the file (and the tensor, where there is
 * one). Finally every file of the saved corpus in tests/fuzz/safetensors/ must be rejected without
 * a crash (the test runs with the repository root as its working directory). Temporary files are
 * made with mkstemp under /tmp and removed. Exits non-zero with a message at the first failure.
 */
#include "check.h"
#include "frontend/frontend.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh file under /tmp holding n bytes of p; the caller removes it. */
static char *temp_file(const void *p, size_t n)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/kiln_test_st_XXXXXX");
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(n == 0 || write(fd, p, n) == (ssize_t)n);
    REQUIRE(close(fd) == 0);
    return path;
}

/* A safetensors file with the given header (length as written, or hlen when not -1) and ndata
 * zero bytes of data. */
static char *st_file(const char *header, long long hlen, size_t ndata)
{
    static unsigned char buf[8192];
    size_t n = strlen(header);
    unsigned long long len = hlen < 0 ? n : (unsigned long long)hlen;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(len >> (8 * i));
    REQUIRE(8 + n + ndata <= sizeof buf);
    memcpy(buf + 8, header, n);
    memset(buf + 8 + n, 0, ndata);
    return temp_file(buf, 8 + n + ndata);
}

/* Opening path must fail with exactly one error line naming the file and containing each word. */
static void expect_fail(const char *path, const char *const *words)
{
    char *msg = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&msg, &len);
    REQUIRE(f);
    Diag *d = diag_new(f);
    Weights *w = st_open(path, d);
    fflush(f);
    int nerr = diag_errors(d), lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += msg[i] == '\n';
    if (w || nerr != 1 || lines != 1 || !strstr(msg, path)) {
        fprintf(stderr, "test_safetensors: %s: expected one error naming the file, got %s, %d "
                        "errors: %s\n", path, w ? "a Weights" : "NULL", nerr, msg);
        exit(1);
    }
    for (; *words; words++)
        if (!strstr(msg, *words)) {
            fprintf(stderr, "test_safetensors: %s: message \"%s\" lacks \"%s\"\n", path, msg,
                    *words);
            exit(1);
        }
    st_close(w);
    diag_free(d);
    fclose(f);
    free(msg);
}
#define EXPECT_FAIL(path, ...) expect_fail(path, (const char *const[]){__VA_ARGS__, NULL})

/* The header is written as given; the file is removed after the check. */
#define BAD(header, ndata, ...)                                   \
    do {                                                          \
        char *p_ = st_file(header, -1, ndata);                    \
        expect_fail(p_, (const char *const[]){__VA_ARGS__, NULL}); \
        remove(p_);                                               \
    } while (0)

static void test_round_trip(void)
{
    float f32[6] = {1, -2, 3.5f, 4, 5, 6};
    uint16_t f16[4] = {0x3c00, 0x4000, 0xbc00, 0};
    double f64 = 3.25;
    int64_t i64[2] = {-1, 1LL << 40};
    int32_t i32[3] = {7, -8, 9};
    int8_t i8[2] = {-3, 4};
    uint8_t u8[5] = {1, 2, 3, 4, 255}, b[2] = {1, 0};
    uint16_t bf16[2] = {0x3f80, 0xc000};
    WTensor ts[] = {
        {"z.last", DT_F32, 2, {2, 3}, f32, sizeof f32},
        {"a.first", DT_F16, 1, {4}, f16, sizeof f16},
        {"scalar", DT_F64, 0, {0}, &f64, sizeof f64},
        {"m.i64", DT_I64, 1, {2}, i64, sizeof i64},
        {"m.i32", DT_I32, 3, {1, 3, 1}, i32, sizeof i32},
        {"m.i8", DT_I8, 1, {2}, i8, sizeof i8},
        {"m.u8", DT_U8, 1, {5}, u8, sizeof u8},
        {"m.bool", DT_BOOL, 2, {2, 1}, b, sizeof b},
        {"m.bf16", DT_BF16, 1, {2}, bf16, sizeof bf16},
        {"empty", DT_F32, 2, {0, 7}, NULL, 0},
        {"quote\"and\\slash\n", DT_U8, 1, {1}, u8, 1},
    };
    int n = (int)(sizeof ts / sizeof ts[0]);
    const char *keys[] = {"format", "note"}, *vals[] = {"pt", "a \"quoted\" value\twith a tab"};
    char *path = temp_file("", 0);
    REQUIRE(st_write(path, n, ts, 2, keys, vals) == 0);

    Diag *d = diag_new(stderr);
    Weights *w = st_open(path, d);
    REQUIRE(w && diag_errors(d) == 0);
    REQUIRE(w->n == n && w->nmeta == 2);
    for (int i = 1; i < w->n; i++)
        REQUIRE(strcmp(w->t[i - 1].name, w->t[i].name) < 0);
    for (int i = 0; i < n; i++) {
        const WTensor *t = st_find(w, ts[i].name);
        REQUIRE(t && !strcmp(t->name, ts[i].name));
        REQUIRE(t->dtype == ts[i].dtype && t->rank == ts[i].rank && t->nbytes == ts[i].nbytes);
        for (int k = 0; k < t->rank; k++)
            REQUIRE(t->shape[k] == ts[i].shape[k]);
        REQUIRE(t->nbytes == 0 || !memcmp(t->data, ts[i].data, t->nbytes));
    }
    /* the header is padded so the data section starts at a multiple of 8 */
    const unsigned char *m = w->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | m[i];
    REQUIRE(hlen % 8 == 0 && 8 + hlen < w->size);
    REQUIRE(!strcmp(st_meta(w, "format"), "pt"));
    REQUIRE(!strcmp(st_meta(w, "note"), vals[1]));
    REQUIRE(st_meta(w, "missing") == NULL);
    REQUIRE(st_find(w, "z.las") == NULL && st_find(w, "") == NULL && st_find(w, "zz") == NULL);
    REQUIRE(st_find(w, "a") == NULL && st_find(w, NULL) == NULL);
    st_close(w);
    st_close(NULL);

    /* no metadata, no tensors */
    REQUIRE(st_write(path, 0, NULL, 0, NULL, NULL) == 0);
    w = st_open(path, d);
    REQUIRE(w && w->n == 0 && w->nmeta == 0 && st_find(w, "x") == NULL && st_meta(w, "x") == NULL);
    const char *out[2];
    REQUIRE(st_closest(w, "x", out, 2) == 0);
    st_close(w);

    /* st_write refuses what st_open would refuse */
    WTensor bad = {"w", DT_F32, 1, {3}, f32, 8}; /* 3 x f32 is 12 bytes */
    REQUIRE(st_write(path, 1, &bad, 0, NULL, NULL) != 0);
    WTensor twice[2] = {{"w", DT_U8, 1, {1}, u8, 1}, {"w", DT_U8, 1, {1}, u8, 1}};
    REQUIRE(st_write(path, 2, twice, 0, NULL, NULL) != 0);
    WTensor neg = {"w", DT_U8, 1, {-1}, u8, 1};
    REQUIRE(st_write(path, 1, &neg, 0, NULL, NULL) != 0);
    REQUIRE(st_write("/nonexistent-dir/x.safetensors", 1, &twice[0], 0, NULL, NULL) != 0);

    REQUIRE(diag_errors(d) == 0);
    diag_free(d);
    remove(path);
}

static void test_closest(void)
{
    uint8_t u8[1] = {0};
    const char *names[] = {"xyz", "abe", "ab", "abd", "abc"};
    WTensor ts[5];
    for (int i = 0; i < 5; i++)
        ts[i] = (WTensor){names[i], DT_U8, 0, {0}, u8, 1};
    char *path = temp_file("", 0);
    REQUIRE(st_write(path, 5, ts, 0, NULL, NULL) == 0);
    Diag *d = diag_new(stderr);
    Weights *w = st_open(path, d);
    REQUIRE(w);
    const char *out[8];
    /* abc 0; ab, abd, abe 1 (ties by name); xyz 3 */
    REQUIRE(st_closest(w, "abc", out, 8) == 5);
    REQUIRE(!strcmp(out[0], "abc") && !strcmp(out[1], "ab") && !strcmp(out[2], "abd") &&
          !strcmp(out[3], "abe") && !strcmp(out[4], "xyz"));
    REQUIRE(st_closest(w, "abc", out, 2) == 2 && !strcmp(out[1], "ab"));
    REQUIRE(st_closest(w, "abc", out, 0) == 0);
    /* insertion, deletion and substitution each cost one */
    REQUIRE(st_closest(w, "xy", out, 1) == 1 && !strcmp(out[0], "xyz"));
    REQUIRE(st_closest(w, "", out, 3) == 3 && !strcmp(out[0], "ab") && !strcmp(out[1], "abc"));
    REQUIRE(st_closest(w, "xbz", out, 1) == 1 && !strcmp(out[0], "xyz"));
    st_close(w);
    diag_free(d);
    remove(path);
}

static void test_malformed(void)
{
    /* the file itself */
    char *p = temp_file("\x10\0\0\0\0", 5);
    EXPECT_FAIL(p, "5 bytes", "too short");
    remove(p);
    p = temp_file("", 0);
    EXPECT_FAIL(p, "too short");
    remove(p);
    EXPECT_FAIL("/nonexistent-dir/w.safetensors", "cannot open");
    EXPECT_FAIL("/tmp", "not a regular file");
    p = st_file("{}", 100, 0);
    EXPECT_FAIL(p, "header length 100", "beyond the end of the file");
    remove(p);
    p = st_file("{}", 1LL << 62, 0);
    EXPECT_FAIL(p, "beyond the end of the file");
    remove(p);

    /* the header */
    BAD("{\"w\": [1, 2", 0, "not valid JSON");
    BAD("", 0, "not valid JSON");
    BAD("[1, 2]", 0, "header is an array, expected a JSON object");
    BAD("\"text\"  ", 0, "expected a JSON object");
    BAD("{} x", 0, "bytes after the JSON object");
    BAD("{\"w\": \x01{}}", 0, "not valid JSON", "control byte 0x01");
    BAD("{\"__metadata__\": [1]}", 0, "__metadata__ is an array");
    BAD("{\"__metadata__\": {\"format\": 1}}", 0, "__metadata__ key 'format' is 1");
    BAD("{\"__metadata__\": {}, \"__metadata__\": {}}", 0, "__metadata__ twice");

    /* one entry */
#define E(dt, shape, off) \
    "{\"w.0\": {\"dtype\": " dt ", \"shape\": " shape ", \"data_offsets\": " off "}}"
    BAD("{\"w.0\": 7}", 0, "tensor 'w.0'", "entry is 7");
    BAD("{\"w.0\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "tensor 'w.0'", "no \"dtype\"");
    BAD(E("5", "[1]", "[0, 4]"), 4, "tensor 'w.0'", "dtype is 5");
    BAD(E("\"F8_E4M3\"", "[1]", "[0, 1]"), 4, "tensor 'w.0'", "unknown dtype \"F8_E4M3\"");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "tensor 'w.0'",
        "no \"shape\"");
    BAD(E("\"F32\"", "4", "[0, 4]"), 4, "tensor 'w.0'", "shape is 4");
    BAD(E("\"F32\"", "[1, -2]", "[0, 4]"), 4, "tensor 'w.0'", "dimension 1", "-2");
    BAD(E("\"F32\"", "[2.5]", "[0, 4]"), 4, "tensor 'w.0'", "dimension 0", "2.5");
    BAD(E("\"F32\"", "[\"2\"]", "[0, 4]"), 4, "tensor 'w.0'", "dimension 0", "a string");
    BAD(E("\"U8\"", "[1, 1, 1, 1, 1, 1, 1, 1, 1]", "[0, 1]"), 4, "tensor 'w.0'",
        "9 dimensions", "at most 8");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "tensor 'w.0'",
        "no \"data_offsets\"");
    BAD(E("\"F32\"", "[1]", "[0]"), 4, "tensor 'w.0'", "data_offsets must be two");
    BAD(E("\"F32\"", "[1]", "[0, 4, 8]"), 8, "tensor 'w.0'", "data_offsets must be two");
    BAD(E("\"F32\"", "[1]", "[-4, 0]"), 4, "tensor 'w.0'", "data_offsets must be two");
    BAD(E("\"F32\"", "[1]", "[0.5, 4]"), 4, "tensor 'w.0'", "data_offsets must be two");
    BAD(E("\"F32\"", "[1]", "{}"), 4, "tensor 'w.0'", "data_offsets must be two");
    BAD(E("\"F32\"", "[1]", "[4, 0]"), 4, "tensor 'w.0'", "[4, 0] are reversed");
    BAD(E("\"F32\"", "[2]", "[0, 8]"), 4, "tensor 'w.0'", "[0, 8] go beyond the data section",
        "4 bytes");
    BAD(E("\"F32\"", "[768, 2304]", "[0, 100]"), 100,
        ": tensor 'w.0': data_offsets [0, 100] give 100 bytes but F32 [768, 2304] needs 7077888");
    BAD(E("\"BF16\"", "[]", "[0, 4]"), 4, "tensor 'w.0'", "give 4 bytes but BF16 [] needs 2");
    BAD(E("\"F64\"", "[4294967296, 4294967296, 4294967296]", "[0, 8]"), 8, "tensor 'w.0'",
        "too many elements");
#undef E

    /* between entries */
    BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
        " \"b\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", 16,
        "tensor 'b'", "overlaps tensor 'a'", "[8, 16]", "[0, 16]");
    BAD("{\"a\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8]},"
        " \"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [2, 4]},"
        " \"c\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [4, 6]}}", 8,
        "overlaps tensor 'a'");
    BAD("{\"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]},"
        " \"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]}}", 2,
        "tensor 'a' appears twice");

    /* legal oddities: zero-byte tensors anywhere, unused bytes, extra keys in an entry */
    char *ok = st_file("{\"a\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8]},"
                       " \"z\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [4, 4]},"
                       " \"y\": {\"dtype\": \"F32\", \"shape\": [2, 0], \"data_offsets\": [4, 4],"
                       " \"extra\": true},"
                       " \"__metadata__\": {}}      ", -1, 20);
    Diag *d = diag_new(stderr);
    Weights *w = st_open(ok, d);
    REQUIRE(w && w->n == 3 && diag_errors(d) == 0);
    REQUIRE(st_find(w, "z") && st_find(w, "z")->nbytes == 0 && st_find(w, "z")->rank == 2);
    st_close(w);
    diag_free(d);
    remove(ok);
}

/* Every file of the saved corpus must be rejected with one message, without a crash. */
static void test_corpus(void)
{
    const char *dir = "tests/fuzz/safetensors";
    DIR *dp = opendir(dir);
    if (!dp) {
        fprintf(stderr, "test_safetensors: cannot open %s (run from the repository root)\n", dir);
        exit(1);
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        EXPECT_FAIL(path, "");
        n++;
    }
    closedir(dp);
    REQUIRE(n >= 15);
}

int main(void)
{
    test_round_trip();
    test_closest();
    test_malformed();
    test_corpus();
    printf("test_safetensors: OK\n");
    return 0;
}
