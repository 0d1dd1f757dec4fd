/* arena.c: one bump allocator per compilation.
 *
 * Every node, shape and string of a graph lives in its graph's arena and is released with it in one
 * call: passes never free single nodes, so no pointer in the IR can dangle while the graph lives.
 * The cost is memory held until the end of the compilation, which for a model file is small next to
 * its weights (which are mapped, not copied).
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

typedef struct Chunk {
    struct Chunk *next;
    size_t used, cap;
    _Alignas(64) unsigned char data[];
} Chunk;

struct Arena {
    Chunk *head;
    size_t next_cap; /* the next chunk's size: 64 KiB, doubling to 1 MiB (a small model's graph fits
                        in the first; a chunk is a fresh mapping of pages to fault in and clear) */
};

_Noreturn void kiln_panic(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "kiln: internal error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

Arena *arena_new(void)
{
    Arena *a = calloc(1, sizeof *a);
    KILN_ASSERT(a);
    return a;
}

void arena_free(Arena *a)
{
    if (!a)
        return;
    for (Chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

void *arena_alloc(Arena *a, size_t n)
{
    n = (n + 63) & ~(size_t)63;
    Chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        if (a->next_cap < ((size_t)64 << 10))
            a->next_cap = (size_t)64 << 10;
        size_t cap = n > a->next_cap ? n : a->next_cap;
        if (a->next_cap < ((size_t)1 << 20))
            a->next_cap *= 2;
        c = aligned_alloc(64, (sizeof(Chunk) + cap + 63) & ~(size_t)63);
        KILN_ASSERT(c);
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(Arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(Arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}
