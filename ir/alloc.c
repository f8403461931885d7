/* alloc.c — checked allocation: ir_malloc, ir_calloc, ir_realloc.
 *
 * The heap allocations of the compiler (the arena's blocks, the passes'
 * arrays sized by the graph: schedule, memplan, fuse, the Graphviz writer)
 * have nothing useful to do when one fails but to stop with a message.
 * These wrappers do that, naming the call site (the macros in ir.h pass
 * __FILE__ and __LINE__, as QBE's emalloc and llm.c's mallocCheck do) and
 * the bytes asked for, and exit with status 1: a machine out of memory is
 * not a bug in gradc, so it is not an IR_ASSERT.  A request of zero bytes
 * returns a unique pointer (of one element, for ir_calloc), so that NULL
 * always means failure.
 */
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>

static _Noreturn void out_of_memory(size_t n, const char *file, int line)
{
    fflush(stdout);
    fprintf(stderr, "gradc: error: out of memory: %zu bytes at %s:%d\n"
            "  hint: free memory, or use a smaller model, batch or sequence length\n",
            n, file, line);
    exit(1);
}

void *ir_malloc_at(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory(n, file, line);
    return p;
}

void *ir_calloc_at(size_t count, size_t size, const char *file, int line)
{
    if (size && count > (size_t)-1 / size)
        out_of_memory((size_t)-1, file, line);
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory(count * size, file, line);
    return p;
}

void *ir_realloc_at(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        out_of_memory(n, file, line);
    return q;
}
