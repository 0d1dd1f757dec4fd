/* test_npy.c: unit tests for runtime/npy.c.
 *
 * Round trips every supported dtype at ranks 0 to 4, reads headers of versions 1.0, 2.0 and 3.0
 * written byte by byte, checks that each kind of bad file is rejected with a message naming the
 * file and the problem, and replays the saved fuzz corpus in tests/fuzz/npy/ (the test runs with
 * the repository root as its working directory). Files go to a fresh directory under /tmp, removed
 * at the end. Exits non-zero with a message at the first failure.
 */
#include "check.h"
#include "runtime/kiln_rt.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static char paths[128][128]; /* every file made, to remove at the end */
static int npaths;

static const char *tmp_path(const char *name)
{
    REQUIRE(npaths < 128);
    snprintf(paths[npaths], sizeof paths[npaths], "%s/%s", tmpdir, name);
    return paths[npaths++];
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(p, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
}

/* A .npy file made by hand: magic, version, header length of the version's width, header, data. */
static const char *raw_npy(const char *name, int major, int minor, const char *header,
                           const void *data, size_t ndata)
{
    static unsigned char buf[4096];
    size_t hl = strlen(header), k = 0;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major, buf[7] = (unsigned char)minor;
    k = 8;
    buf[k++] = (unsigned char)hl, buf[k++] = (unsigned char)(hl >> 8);
    if (major >= 2)
        buf[k++] = (unsigned char)(hl >> 16), buf[k++] = (unsigned char)(hl >> 24);
    REQUIRE(k + hl + ndata <= sizeof buf);
    memcpy(buf + k, header, hl);
    if (ndata)
        memcpy(buf + k + hl, data, ndata);
    const char *path = tmp_path(name);
    write_bytes(path, buf, k + hl + ndata);
    return path;
}

/* Reading path must fail with a message naming the file and containing each of words. */
static void expect_error(const char *path, const char *const *words)
{
    RtNpy a;
    char err[512] = "";
    int r = rt_npy_read(path, &a, err, sizeof err);
    if (r != -1 || !strstr(err, path)) {
        fprintf(stderr, "test_npy: %s: expected an error naming the file, got %d \"%s\"\n", path, r,
                err);
        exit(1);
    }
    for (; *words; words++)
        if (!strstr(err, *words)) {
            fprintf(stderr, "test_npy: %s: message \"%s\" lacks \"%s\"\n", path, err, *words);
            exit(1);
        }
    REQUIRE(a.data == NULL && a.rank == 0);
}
#define EXPECT_ERROR(path, ...) expect_error(path, (const char *const[]){__VA_ARGS__, NULL})

static void test_round_trip(void)
{
    static const char *const descrs[] = {"<f4", "<f2", "<f8", "<i8", "<i4", "|i1", "|u1", "|b1", "<u8"};
    static const size_t sizes[] = {4, 2, 8, 8, 4, 1, 1, 1, 8};
    const int64_t dims[4] = {2, 3, 1, 4};
    unsigned char data[2 * 3 * 1 * 4 * 8];
    for (int t = 0; t < 9; t++)
        for (int rank = 0; rank <= 4; rank++) {
            size_t numel = 1;
            for (int i = 0; i < rank; i++)
                numel *= (size_t)dims[i];
            size_t n = numel * sizes[t];
            for (size_t i = 0; i < n; i++)
                data[i] = t == 7 ? (unsigned char)(i % 2) : (unsigned char)(i * 37 + 11);
            char name[32], err[256] = "";
            snprintf(name, sizeof name, "rt%d_%d.npy", t, rank);
            const char *path = tmp_path(name);
            if (rt_npy_write(path, descrs[t], rank, dims, data, err, sizeof err)) {
                fprintf(stderr, "test_npy: write %s: %s\n", descrs[t], err);
                exit(1);
            }
            RtNpy a;
            if (rt_npy_read(path, &a, err, sizeof err)) {
                fprintf(stderr, "test_npy: read %s: %s\n", descrs[t], err);
                exit(1);
            }
            REQUIRE(!strcmp(a.descr, descrs[t]));
            REQUIRE(a.rank == rank);
            for (int i = 0; i < rank; i++)
                REQUIRE(a.shape[i] == dims[i]);
            REQUIRE(a.elem_size == sizes[t]);
            REQUIRE(a.nbytes == n);
            REQUIRE(a.data && !memcmp(a.data, data, n));
            rt_npy_free(&a);
            REQUIRE(a.data == NULL);

            /* the data of a version 1.0 file written by kiln starts at a multiple of 64 */
            FILE *f = fopen(path, "rb");
            REQUIRE(f);
            REQUIRE(fseek(f, 0, SEEK_END) == 0);
            REQUIRE((size_t)ftell(f) >= n && ((size_t)ftell(f) - n) % 64 == 0);
            fclose(f);
        }
}

static void test_forms(void)
{
    char err[256] = "";
    RtNpy a;
    /* '<' and '=' forms of one-byte types are normalised to '|'; '=' of others to '<' */
    static const char *const in[] = {"<i1", "=u1", "<b1", "=f4", ">i1"};
    static const char *const want[] = {"|i1", "|u1", "|b1", "<f4", "|i1"};
    for (int i = 0; i < 5; i++) {
        const char *path = tmp_path(i == 0 ? "f0.npy" : i == 1 ? "f1.npy" : i == 2 ? "f2.npy"
                                    : i == 3 ? "f3.npy" : "f4.npy");
        int64_t shape[1] = {4};
        unsigned char d[16] = {1, 0, 1, 1};
        REQUIRE(rt_npy_write(path, in[i], 1, shape, d, err, sizeof err) == 0);
        REQUIRE(rt_npy_read(path, &a, err, sizeof err) == 0);
        REQUIRE(!strcmp(a.descr, want[i]));
        rt_npy_free(&a);
    }
    /* a zero-element array */
    int64_t z[2] = {3, 0};
    const char *path = tmp_path("zero.npy");
    REQUIRE(rt_npy_write(path, "<f4", 2, z, NULL, err, sizeof err) == 0);
    REQUIRE(rt_npy_read(path, &a, err, sizeof err) == 0);
    REQUIRE(a.rank == 2 && a.shape[0] == 3 && a.shape[1] == 0 && a.nbytes == 0 && a.data);
    rt_npy_free(&a);
    rt_npy_free(NULL);

    /* the writer refuses what the reader would refuse */
    int64_t s1[1] = {2}, neg[1] = {-1}, big[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    float f2[2] = {1, 2};
    path = tmp_path("bad_write.npy");
    REQUIRE(rt_npy_write(path, ">f4", 1, s1, f2, err, sizeof err) == -1 && strstr(err, "big-endian"));
    REQUIRE(rt_npy_write(path, "<c8", 1, s1, f2, err, sizeof err) == -1 && strstr(err, "<c8"));
    REQUIRE(rt_npy_write(path, "<f4", 1, neg, f2, err, sizeof err) == -1 && strstr(err, "negative"));
    REQUIRE(rt_npy_write(path, "<f4", 9, big, f2, err, sizeof err) == -1 && strstr(err, "rank 9"));
    REQUIRE(rt_npy_write(path, "<f4", 1, s1, NULL, err, sizeof err) == -1 && strstr(err, path));
    REQUIRE(rt_npy_write("/nonexistent-dir/x.npy", "<f4", 1, s1, f2, err, sizeof err) == -1 &&
          strstr(err, "/nonexistent-dir/x.npy"));
    /* a NULL or zero-length error buffer is allowed */
    REQUIRE(rt_npy_write(path, ">f4", 1, s1, f2, NULL, 0) == -1);
    REQUIRE(rt_npy_read("/nonexistent-dir/x.npy", &a, NULL, 0) == -1);
}

static void test_versions(void)
{
    float v[6] = {1, 2, 3, 4, 5, 6.5f};
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n";
    const char *files[] = {
        raw_npy("v1.npy", 1, 0, h, v, sizeof v),
        raw_npy("v2.npy", 2, 0, h, v, sizeof v),
        raw_npy("v3.npy", 3, 0, h, v, sizeof v),
        /* other spellings NumPy (or Python 2) may produce */
        raw_npy("v1b.npy", 1, 0,
                "{\"shape\": (2L, 3L), \"fortran_order\": False, \"descr\": \"<f4\"}", v,
                sizeof v),
        raw_npy("v1c.npy", 1, 0, "{'descr':'<f4','fortran_order':False,'shape':(2,3,)}\n", v,
                sizeof v),
    };
    for (int i = 0; i < 5; i++) {
        RtNpy a;
        char err[256] = "";
        if (rt_npy_read(files[i], &a, err, sizeof err)) {
            fprintf(stderr, "test_npy: %s: %s\n", files[i], err);
            exit(1);
        }
        REQUIRE(!strcmp(a.descr, "<f4") && a.rank == 2 && a.shape[0] == 2 && a.shape[1] == 3);
        REQUIRE(a.nbytes == sizeof v && !memcmp(a.data, v, sizeof v));
        rt_npy_free(&a);
    }
    /* rank 0 and rank 1 */
    double s = 2.5;
    RtNpy a;
    char err[256];
    const char *p = raw_npy("scalar.npy", 1, 0,
                            "{'descr': '<f8', 'fortran_order': False, 'shape': (), }\n", &s,
                            sizeof s);
    REQUIRE(rt_npy_read(p, &a, err, sizeof err) == 0);
    REQUIRE(a.rank == 0 && a.nbytes == 8 && *(double *)a.data == 2.5);
    rt_npy_free(&a);
    p = raw_npy("vec.npy", 2, 0, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }\n",
                "abc", 3);
    REQUIRE(rt_npy_read(p, &a, err, sizeof err) == 0);
    REQUIRE(a.rank == 1 && a.shape[0] == 3 && !memcmp(a.data, "abc", 3));
    rt_npy_free(&a);
}

static void test_errors(void)
{
    float v[4] = {0};
    const char *p;
#define H(descr, fo, shape) "{'descr': " descr ", 'fortran_order': " fo ", 'shape': " shape ", }\n"
    p = raw_npy("be.npy", 1, 0, H("'>f4'", "False", "(4,)"), v, 16);
    EXPECT_ERROR(p, "big-endian", "'>f4'");
    p = raw_npy("fortran.npy", 1, 0, H("'<f4'", "True", "(2, 2)"), v, 16);
    EXPECT_ERROR(p, "only C order is supported");
    p = raw_npy("object.npy", 1, 0, H("'|O'", "False", "(2,)"), v, 16);
    EXPECT_ERROR(p, "object");
    p = raw_npy("struct.npy", 1, 0, H("[('a', '<f4'), ('b', '<i4')]", "False", "(2,)"), v, 16);
    EXPECT_ERROR(p, "structured");
    p = raw_npy("void.npy", 1, 0, H("'|V8'", "False", "(2,)"), v, 16);
    EXPECT_ERROR(p, "void");
    p = raw_npy("c8.npy", 1, 0, H("'<c8'", "False", "(2,)"), v, 16);
    EXPECT_ERROR(p, "'<c8' is not supported");
    p = raw_npy("trunc.npy", 1, 0, H("'<f4'", "False", "(32, 32)"), v, 16);
    EXPECT_ERROR(p,
                 "file is truncated: header says 4096 bytes of float32 data [32, 32], file has 16");
    p = raw_npy("extra.npy", 1, 0, H("'<f4'", "False", "(3,)"), v, 16);
    EXPECT_ERROR(p, "extra bytes", "12 bytes");
    p = raw_npy("version.npy", 4, 0, H("'<f4'", "False", "(4,)"), v, 16);
    EXPECT_ERROR(p, "version 4.0");
    p = raw_npy("minor.npy", 1, 1, H("'<f4'", "False", "(4,)"), v, 16);
    EXPECT_ERROR(p, "version 1.1");
    p = raw_npy("noshape.npy", 1, 0, "{'descr': '<f4', 'fortran_order': False}", v, 16);
    EXPECT_ERROR(p, "no 'shape'");
    p = raw_npy("nodescr.npy", 1, 0, "{'fortran_order': False, 'shape': (4,)}", v, 16);
    EXPECT_ERROR(p, "no 'descr'");
    p = raw_npy("twice.npy", 1, 0, "{'descr': '<f4', 'descr': '<f4', 'shape': (4,)}", v, 16);
    EXPECT_ERROR(p, "'descr' twice");
    p = raw_npy("key.npy", 1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}",
                v, 16);
    EXPECT_ERROR(p, "key 'x'");
    p = raw_npy("neg.npy", 1, 0, H("'<f4'", "False", "(-4,)"), v, 16);
    EXPECT_ERROR(p, "negative");
    p = raw_npy("rank9.npy", 1, 0, H("'<f4'", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 4)"), v, 16);
    EXPECT_ERROR(p, "more than 8 dimensions");
    p = raw_npy("huge.npy", 1, 0, H("'<f4'", "False", "(4294967296, 4294967296)"), v, 16);
    EXPECT_ERROR(p, "too many elements");
    p = raw_npy("bigdim.npy", 1, 0, H("'<f4'", "False", "(99999999999999999999,)"), v, 16);
    EXPECT_ERROR(p, "too large");
    p = raw_npy("syntax.npy", 1, 0, "{'descr' '<f4', 'fortran_order': False, 'shape': (4,)}", v,
                16);
    EXPECT_ERROR(p, "malformed header", "':'", "byte 9");
    p = raw_npy("after.npy", 1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} x", v,
                16);
    EXPECT_ERROR(p, "malformed header", "'x'");
    p = raw_npy("bool.npy", 1, 0, H("'<f4'", "false", "(4,)"), v, 16);
    EXPECT_ERROR(p, "True or False");
    p = raw_npy("unterminated.npy", 1, 0, "{'descr': '<f4", v, 16);
    EXPECT_ERROR(p, "malformed header");
#undef H

    /* the preamble */
    p = tmp_path("empty.npy");
    write_bytes(p, "", 0);
    EXPECT_ERROR(p, "not a .npy file");
    p = tmp_path("magic.npy");
    write_bytes(p, "\x93NUMPZ\x01\x00\x10\x00{}", 12);
    EXPECT_ERROR(p, "not a .npy file");
    p = tmp_path("hlen.npy");
    write_bytes(p, "\x93NUMPY\x01\x00\xff\x7f{}", 12);
    EXPECT_ERROR(p, "truncated", "32767");
    p = tmp_path("v2short.npy");
    write_bytes(p, "\x93NUMPY\x02\x00\x10\x00", 10);
    EXPECT_ERROR(p, "truncated");
    EXPECT_ERROR("/nonexistent-dir/missing.npy", "cannot open");
    EXPECT_ERROR(tmpdir, "");
}

/* Every file of the saved corpus must be rejected, with a message, without a crash. */
static void test_corpus(void)
{
    const char *dir = "tests/fuzz/npy";
    DIR *dp = opendir(dir);
    if (!dp) {
        fprintf(stderr, "test_npy: cannot open %s (run from the repository root)\n", dir);
        exit(1);
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        EXPECT_ERROR(path, "");
        n++;
    }
    closedir(dp);
    REQUIRE(n >= 10);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln_test_npy_XXXXXX");
    REQUIRE(mkdtemp(tmpdir));
    test_round_trip();
    test_forms();
    test_versions();
    test_errors();
    test_corpus();
    for (int i = 0; i < npaths; i++)
        remove(paths[i]);
    REQUIRE(rmdir(tmpdir) == 0);
    printf("test_npy: OK\n");
    return 0;
}
