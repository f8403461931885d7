/* error.c — user errors and broken invariants.
 *
 * There are two kinds of failure.  A user error is an IrError:
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

/* Bytes of the UTF-8 sequence of a printable character at s (a code point
 * past the C1 controls), or 0: a control byte, a stray or truncated byte. */
static int printable_len(const unsigned char *s)
{
    if (s[0] >= 0x20 && s[0] < 0x7F)
        return 1;
    int n = s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : s[0] >= 0xE0 && s[0] < 0xF0 ? 3
          : s[0] >= 0xF0 && s[0] < 0xF5 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (n == 2 && s[0] == 0xC2 && s[1] < 0xA0)
        return 0;   /* U+0080..U+009F */
    return n;
}

/* s with every byte that is not printable text written as \xNN: messages
 * quote names and bytes from files (a JSON key, a tensor name, a line of
 * vocab.bpe), and a file is not to drive the terminal. */
static void put_escaped(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = printable_len(p);
        if (n)
            fwrite(p, 1, (size_t)n, f), p += n;
        else
            fprintf(f, "\\x%02x", *p++);
    }
}

void ir_error_print(const IrError *e, FILE *f)
{
    fputs("gradc: error: ", f);
    if (e->where[0])
        put_escaped(f, e->where), fputs(": ", f);
    put_escaped(f, e->msg);
    fputc('\n', f);
    if (e->hint[0])
        fputs("  hint: ", f), put_escaped(f, e->hint), fputc('\n', f);
}

_Noreturn void ir_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "gradc: internal error: %s:%d: assertion failed: %s\n", file, line, cond);
    fflush(stderr);
    abort();
}
