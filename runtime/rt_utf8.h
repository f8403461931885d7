/* rt_utf8.h — the strict UTF-8 decoder and the error formatter shared by
 * the tokenizers (internal).
 *
 * Both tokenizers take raw bytes and must handle any of them, so the decoder
 * never fails: it returns the code point and its length in bytes, or -1 with
 * length 1 for a byte that does not start a well-formed sequence (a stray
 * continuation byte, an overlong form, a surrogate, a value past U+10FFFF or a
 * truncated sequence).  Callers decide what such a byte means.
 *
 *   size_t adv; int32_t cp = rt_utf8_decode(s + i, len - i, &adv); i += adv;
 */
#ifndef GRADC_RT_UTF8_H
#define GRADC_RT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* *err = a malloc'd message (printf format), when err is not NULL: how the
 * tokenizers, which know no IrError, report (rt_chartok.c). */
void rt_errf(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The bounds on the second byte of a sequence that starts with lead byte b
 * (Unicode Table 3-7); the later bytes are plain continuation bytes. */
static inline int rt_utf8_second_ok(unsigned char b, unsigned char c)
{
    if (b == 0xE0) return c >= 0xA0 && c <= 0xBF;
    if (b == 0xED) return c >= 0x80 && c <= 0x9F;
    if (b == 0xF0) return c >= 0x90 && c <= 0xBF;
    if (b == 0xF4) return c >= 0x80 && c <= 0x8F;
    return c >= 0x80 && c <= 0xBF;
}

static inline int32_t rt_utf8_decode(const unsigned char *s, size_t len, size_t *adv)
{
    unsigned char b = s[0];
    size_t n = b < 0x80 ? 1 : b < 0xC2 ? 0 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF5 ? 4 : 0;
    *adv = 1;
    if (n == 1) return b;
    if (n == 0 || n > len || !rt_utf8_second_ok(b, s[1])) return -1;
    int32_t cp = b & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *adv = n;
    return cp;
}

/* Writes cp (< 0x110000) as UTF-8 into out (room for 4) and returns its length. */
static inline size_t rt_utf8_encode(int32_t cp, unsigned char *out)
{
    if (cp < 0x80) { out[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

#endif
