/* rt_chartok.c — the character-level tokenizer (for char-level GPTs).
 *
 * The vocabulary is the sorted set of distinct code points of a text, and a
 * character's id is its place in that order, so the same text always gives
 * the same ids.  Raw bytes are accepted: a byte that is not part of valid
 * UTF-8 becomes the pseudo code point 0x110000 + byte, past all real ones, so
 * decoding gives the bytes back exactly.
 *
 * The saved form of a vocabulary is its characters in id order, as UTF-8 (the
 * pseudo code points as their raw byte).  It reads back unambiguously: real
 * characters are complete sequences, and the stray bytes, sorted, can never
 * combine into one (continuation bytes sort before lead bytes).
 *
 * Encoding looks ASCII up in a table and other characters by binary search.
 */
#include "runtime/rt_tok.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt_utf8.h"

#define RT_CT_RAW_BYTE 0x110000   /* + byte: a byte outside valid UTF-8 */

struct RtCharTok {
    int n;              /* vocabulary size */
    int32_t *cp;        /* (n) code points, strictly increasing */
    int32_t ascii[128]; /* id of each ASCII character, or -1 */
};

/* The error formatter of both tokenizers (rt_utf8.h). */
void rt_errf(char **err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    *err = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (*err) vsnprintf(*err, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
}

/* The code point at s[0..len) (or the pseudo one of a stray byte). */
static int32_t rt_ct_next(const unsigned char *s, size_t len, size_t *adv)
{
    int32_t cp = rt_utf8_decode(s, len, adv);
    return cp >= 0 ? cp : RT_CT_RAW_BYTE + s[0];
}

static size_t rt_ct_put(int32_t cp, unsigned char *out)
{
    if (cp >= RT_CT_RAW_BYTE) { out[0] = (unsigned char)(cp - RT_CT_RAW_BYTE); return 1; }
    return rt_utf8_encode(cp, out);
}

static int rt_ct_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Takes ownership of cp[0..n), strictly increasing. */
static RtCharTok *rt_ct_new(int32_t *cp, int n)
{
    RtCharTok *ct = malloc(sizeof *ct);
    if (!ct) { free(cp); return NULL; }
    ct->n = n;
    ct->cp = cp;
    for (int c = 0; c < 128; c++) ct->ascii[c] = -1;
    for (int i = 0; i < n && cp[i] < 128; i++) ct->ascii[cp[i]] = i;
    return ct;
}

/* All code points of text, sorted and deduplicated, into *out. */
static int rt_ct_distinct(const unsigned char *s, size_t len, int32_t **out)
{
    bool seen_ascii[128] = {0};
    size_t n = 0, adv;
    int32_t *cp = malloc((len + 1) * sizeof *cp);
    if (!cp) return -1;
    for (size_t i = 0; i < len; i += adv) {
        int32_t c = rt_ct_next(s + i, len - i, &adv);
        if (c < 128 && seen_ascii[c]) continue;
        if (c < 128) seen_ascii[c] = true;
        cp[n++] = c;
    }
    qsort(cp, n, sizeof *cp, rt_ct_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || cp[i] != cp[k - 1]) cp[k++] = cp[i];
    *out = cp;
    return (int)k;
}

RtCharTok *rt_chartok_build(const char *text, size_t len)
{
    int32_t *cp;
    int n = rt_ct_distinct((const unsigned char *)text, len, &cp);
    return n < 0 ? NULL : rt_ct_new(cp, n);
}

void rt_chartok_free(RtCharTok *ct)
{
    if (!ct) return;
    free(ct->cp);
    free(ct);
}

int rt_chartok_vocab_size(const RtCharTok *ct) { return ct->n; }

static int32_t rt_ct_id(const RtCharTok *ct, int32_t c)
{
    if (c < 128) return ct->ascii[c];
    int lo = 0, hi = ct->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ct->cp[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < ct->n && ct->cp[lo] == c ? lo : -1;
}

int rt_chartok_encode(const RtCharTok *ct, const char *text, size_t len,
                      int32_t **ids, size_t *n, char **err)
{
    const unsigned char *s = (const unsigned char *)text;
    int32_t *out = malloc((len + 1) * sizeof *out);
    size_t k = 0, adv;
    *ids = NULL;
    *n = 0;
    if (!out) { rt_errf(err, "out of memory encoding %zu bytes", len); return -1; }
    for (size_t i = 0; i < len; i += adv) {
        int32_t c = rt_ct_next(s + i, len - i, &adv);
        int32_t id = rt_ct_id(ct, c);
        if (id < 0) {
            if (c >= RT_CT_RAW_BYTE)
                rt_errf(err, "byte 0x%02X at offset %zu (not valid UTF-8) is not in the "
                        "char vocabulary; build the vocabulary from a text that has it",
                        c - RT_CT_RAW_BYTE, i);
            else
                rt_errf(err, "character U+%04X at byte offset %zu is not in the char "
                        "vocabulary; build the vocabulary from a text that has it", c, i);
            free(out);
            return -1;
        }
        out[k++] = id;
    }
    *ids = out;
    *n = k;
    return 0;
}

char *rt_chartok_decode(const RtCharTok *ct, const int32_t *ids, size_t n, size_t *len)
{
    char *out = malloc(4 * n + 1);
    size_t k = 0;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= ct->n) { free(out); return NULL; }
        k += rt_ct_put(ct->cp[ids[i]], (unsigned char *)out + k);
    }
    out[k] = 0;
    if (len) *len = k;
    return out;
}

char *rt_chartok_save(const RtCharTok *ct, size_t *len)
{
    int32_t *ids = malloc(((size_t)ct->n + 1) * sizeof *ids);
    if (!ids) return NULL;
    for (int i = 0; i < ct->n; i++) ids[i] = i;
    char *s = rt_chartok_decode(ct, ids, (size_t)ct->n, len);
    free(ids);
    return s;
}

RtCharTok *rt_chartok_load(const char *vocab, size_t len, char **err)
{
    const unsigned char *s = (const unsigned char *)vocab;
    int32_t *cp = malloc((len + 1) * sizeof *cp);
    size_t n = 0, adv;
    if (err) *err = NULL;
    if (!cp) { rt_errf(err, "out of memory loading a char vocabulary"); return NULL; }
    for (size_t i = 0; i < len; i += adv) {
        cp[n] = rt_ct_next(s + i, len - i, &adv);
        if (n > 0 && cp[n] <= cp[n - 1]) {
            rt_errf(err, "char vocabulary: character at byte offset %zu is out of order or "
                       "repeated; the vocabulary string must come from rt_chartok_save", i);
            free(cp);
            return NULL;
        }
        n++;
    }
    RtCharTok *ct = rt_ct_new(cp, (int)n);
    if (!ct) rt_errf(err, "out of memory loading a char vocabulary");
    return ct;
}
