/* arena.c — bump allocation for graphs.
 *
 * Nodes, shapes, strings and node lists of a graph come from one arena and
 * are freed together (QBE pools, ggml contexts).  Blocks grow geometrically;
 * nothing is freed one by one, so passes that drop nodes just forget them.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

typedef struct IrBlock {
    struct IrBlock *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} IrBlock;

struct IrArena {
    IrBlock *head;
    size_t total;
};

IrArena *ir_arena_new(void)
{
    return ir_calloc(1, sizeof(IrArena));
}

void ir_arena_free(IrArena *a)
{
    if (!a)
        return;
    for (IrBlock *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(a);
}

static IrBlock *arena_grow(IrArena *a, size_t need)
{
    size_t size = a->head ? a->head->size * 2 : 64 * 1024;
    while (size < need)
        size *= 2;
    IrBlock *b = ir_malloc(sizeof *b + size);
    b->next = a->head;
    b->size = size;
    b->used = 0;
    a->head = b;
    a->total += size;
    return b;
}

void *ir_arena_alloc(IrArena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    IrBlock *b = a->head;
    if (!b || b->size - b->used < n)
        b = arena_grow(a, n);
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *ir_arena_strndup(IrArena *a, const char *s, size_t n)
{
    char *p = ir_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *ir_arena_strdup(IrArena *a, const char *s)
{
    return s ? ir_arena_strndup(a, s, strlen(s)) : NULL;
}

size_t ir_arena_bytes(const IrArena *a)
{
    return a->total;
}
