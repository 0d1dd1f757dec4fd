/* fuzz_common.c: the scratch directory and files of the fuzz targets (see fuzz.h). */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

static char dir[256];

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

const char *fuzz_dir(void)
{
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/kiln-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("kiln fuzz: mkdtemp");
            abort();
        }
        atexit(remove_dir);
    }
    return dir;
}

const char *fuzz_write(const char *name, const uint8_t *data, size_t size)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
        perror("kiln fuzz: writing the scratch file");
        abort();
    }
    return p;
}

FILE *fuzz_null(void)
{
    static FILE *f;
    if (!f) /* KILN_FUZZ_VERBOSE=1 shows what the compiler says about each input */
        f = getenv("KILN_FUZZ_VERBOSE") ? stderr : fopen("/dev/null", "w");
    if (!f)
        abort();
    return f;
}

const char *fuzz_weights_for(const uint8_t *data, size_t size)
{
    static const char *const known[][2] = {
        {"charlm", KILN_SOURCE_DIR "/examples/charlm/charlm.safetensors"},
        {"llama", KILN_SOURCE_DIR "/examples/llama/llama-tiny.safetensors"},
        {"vit-mnist", KILN_SOURCE_DIR "/examples/vit-mnist/vit-mnist.safetensors"},
        {"vit-small", KILN_SOURCE_DIR "/examples/vit/vit-small-random.safetensors"},
    };
    const char *w = memmem(data, size, "weights", 7);
    if (w) {
        size_t rest = size - (size_t)(w - (const char *)data), line = 0;
        while (line < rest && w[line] != '\n')
            line++;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (memmem(w, line, known[i][0], strlen(known[i][0])))
                return known[i][1];
    }
    return KILN_SOURCE_DIR "/examples/gpt2/gpt2-tiny.safetensors";
}
