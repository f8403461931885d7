/* error.c — user errors and broken invariants.
 *
 * Two kinds of failure (STYLE.md practice 5).  A user error is an IrError:
 * a message, a place (file:line:col or a JSON path) and a hint, filled by
 * library code and printed by the CLI, which exits 1.  A broken invariant is
 * an IR_ASSERT, which prints file:line and aborts: that is a bug in gradc.
 */
#include "ir.h"

#include <stdarg.h>
#include <stdlib.h>

void ir_error(IrError *e, const char *fmt, ...)
{
    if (!e)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->set = true;
}

void ir_error_where(IrError *e, const char *fmt, ...)
{
    if (!e)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->where, sizeof e->where, fmt, ap);
    va_end(ap);
}

void ir_error_hint(IrError *e, const char *fmt, ...)
{
    if (!e)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->hint, sizeof e->hint, fmt, ap);
    va_end(ap);
}

void ir_error_print(const IrError *e, FILE *f)
{
    if (e->where[0])
        fprintf(f, "gradc: error: %s: %s\n", e->where, e->msg);
    else
        fprintf(f, "gradc: error: %s\n", e->msg);
    if (e->hint[0])
        fprintf(f, "  hint: %s\n", e->hint);
}

_Noreturn void ir_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "gradc: internal error: %s:%d: assertion failed: %s\n", file, line, cond);
    fflush(stderr);
    abort();
}
