/* rt_bpe.c — GPT-2 byte-level BPE, token-exact with tiktoken's "gpt2".
 *
 * Loading follows tiktoken: the 256 single bytes get ranks 0..255 in the
 * order of GPT-2's bytes_to_unicode table, and merge line i of vocab.bpe makes
 * the token left+right with rank 256+i.  encoder.json must give every such
 * token that same id (it does for GPT-2), so rank == id throughout; the other
 * entries of encoder.json are special tokens such as <|endoftext|>.  Tokens
 * are kept as raw bytes (the printable-unicode disguise of bytes_to_unicode is
 * undone on load), so encoding works on bytes and never on that disguise.
 *
 * Encoding a piece merges, at each step, the adjacent pair of parts whose
 * concatenation is a token of lowest rank (tiktoken looks up concatenations,
 * not merge lines).  The pair map holds every split of every token into two
 * tokens, (left id, right id) -> token id, so one hash lookup answers "is this
 * concatenation a token, and of which rank".  The merge loop keeps the parts
 * in a linked list and the candidate pairs in a min-heap keyed (rank, offset),
 * so a long piece costs O(m log m), not O(m^2).  Finished pieces go into a
 * cache keyed by their bytes.
 *
 * The pre-tokenizer is GPT-2's regex
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * written out by hand in rt_bpe_piece_end: every code point is a letter, a
 * number, white space or "other", and the alternatives reduce to a few runs
 * over those classes.  Bytes that are not valid UTF-8 are "other".
 */
#include "runtime/rt_tok.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "runtime/rt_utf8.h"

/* ---- Unicode classes ---- */

typedef enum { RT_UC_O = 0, RT_UC_L, RT_UC_N, RT_UC_S } RtUcClass;
typedef struct { int32_t lo, hi; RtUcClass cls; } RtUcRange;
#include "runtime/rt_unicode_tab.h"

static RtUcClass rt_uc_class(int32_t cp)
{
    size_t lo = 0, hi = sizeof rt_uc_ranges / sizeof rt_uc_ranges[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < rt_uc_ranges[mid].lo) hi = mid;
        else if (cp > rt_uc_ranges[mid].hi) lo = mid + 1;
        else return rt_uc_ranges[mid].cls;
    }
    return RT_UC_O;
}

/* Class of the code point at s[pos], its length in *adv. */
static RtUcClass rt_class_at(const unsigned char *s, size_t len, size_t pos, size_t *adv)
{
    if (s[pos] < 0x80) {
        *adv = 1;
        return (RtUcClass)rt_uc_ascii[s[pos]];
    }
    int32_t cp = rt_utf8_decode(s + pos, len - pos, adv);
    return cp < 0 ? RT_UC_O : rt_uc_class(cp);
}

/* ---- the pre-tokenizer ---- */

/* Length of the contraction after an apostrophe at s[0] ('s 't 're 've 'm 'll
 * 'd, lowercase only, as in GPT-2), or 0. */
static size_t rt_contraction_len(const unsigned char *s, size_t len)
{
    static const char *const sfx[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        size_t k = strlen(sfx[i]);
        if (k + 1 <= len && memcmp(s + 1, sfx[i], k) == 0) return k + 1;
    }
    return 0;
}

/* End of the run of code points of class cls that starts at pos. */
static size_t rt_run_end(const unsigned char *s, size_t len, size_t pos, RtUcClass cls)
{
    size_t adv;
    while (pos < len && rt_class_at(s, len, pos, &adv) == cls) pos += adv;
    return pos;
}

/* \s+(?!\S)|\s+ at pos: the whole white-space run if it ends the text,
 * otherwise all of it but its last code point (which then starts the next
 * piece), but never less than one code point. */
static size_t rt_space_end(const unsigned char *s, size_t len, size_t pos)
{
    size_t end = pos, last = pos, adv;
    while (end < len && rt_class_at(s, len, end, &adv) == RT_UC_S) {
        last = end;
        end += adv;
    }
    if (end == len || last == pos) return end;
    return last;
}

size_t rt_bpe_piece_end(const char *text, size_t len, size_t pos)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t adv, k;
    if (s[pos] == '\'' && (k = rt_contraction_len(s + pos, len - pos)) > 0) return pos + k;
    RtUcClass c = rt_class_at(s, len, pos, &adv);
    size_t start = pos;
    if (s[pos] == ' ' && pos + 1 < len) {
        RtUcClass d = rt_class_at(s, len, pos + 1, &adv);
        if (d != RT_UC_S) { c = d; start = pos + 1; }
    }
    if (c != RT_UC_S) return rt_run_end(s, len, start, c);
    return rt_space_end(s, len, pos);
}

/* ---- errors and files ---- */

/* The largest files and tokens gradc takes: GPT-2's vocab.bpe has 456 KB,
 * its encoder.json 1 MB and its longest token 128 bytes.  Building the pair
 * map costs (token length)^2 per token, so the bounds also bound the time a
 * hostile file can take. */
#define RT_BPE_MAX_MERGES_FILE (8u << 20)
#define RT_BPE_MAX_JSON_FILE (16u << 20)
#define RT_BPE_MAX_TOKEN 256

/* Reads DIR/NAME whole into a malloc'd NUL-terminated buffer; a directory or
 * a file past `max` bytes is refused before anything is read. */
static char *rt_read_file(const char *dir, const char *name, size_t max, size_t *len, char **err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            rt_errf(err, "gpt2 BPE files not found in %s: expected encoder.json and "
                    "vocab.bpe; pass --bpe-dir", dir);
        else
            rt_errf(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        rt_errf(err, "cannot read %s: it is a directory; --bpe-dir names the folder that "
                "holds encoder.json and vocab.bpe", path);
        fclose(f);
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 65536 + 1 > cap) {
            char *nb = realloc(buf, cap = 2 * cap + 65536 + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                rt_errf(err, "out of memory reading %s", path);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, 65536, f);
        n += got;
    } while (got > 0 && n <= max);
    int bad = ferror(f), e = errno;
    fclose(f);
    if (bad)
        rt_errf(err, "cannot read %s: %s", path, strerror(e));
    else if (n > max)
        rt_errf(err, "%s has more than the %zu MB gradc reads (GPT-2's has about 1 MB); is "
                "this GPT-2's %s?", path, max >> 20, name);
    if (bad || n > max) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* ---- hash maps ---- */

static uint64_t rt_hash_bytes(const unsigned char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;                /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t rt_hash_u64(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull;           /* murmur3 finalizer */
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static size_t rt_pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

/* Token bytes -> id: open addressing over ids; the keys are the token bytes. */
typedef struct { int32_t *slot; size_t mask; } RtTokMap;

/* (left id, right id) -> merged id, which is also the merge's rank. */
typedef struct { uint64_t *key; int32_t *val; size_t mask; } RtPairMap;
#define RT_PAIR_EMPTY UINT64_MAX

/* Finished pieces: bytes -> ids, both stored in growing pools. */
typedef struct { uint64_t hash; uint32_t key_off, key_len, ids_off, ids_n; } RtCacheEnt;
typedef struct {
    RtCacheEnt *ent; size_t mask, count;
    unsigned char *keys; size_t keys_len, keys_cap;
    int32_t *ids; size_t ids_len, ids_cap;
} RtPieceCache;
#define RT_CACHE_MAX_ENTRIES (1u << 18)   /* then the cache starts over */
#define RT_CACHE_MAX_PIECE 256            /* longer pieces are not cached */

/* Scratch space of the merge loop, grown to the longest piece seen. */
typedef struct {
    int32_t *id, *rank; uint32_t *next, *prev; uint64_t *heap; size_t cap;
} RtMergeScratch;

struct RtBpe {
    int n_vocab;                /* ids are 0..n_vocab-1 */
    int n_merge_tok;            /* tokens made from bytes and merges: 0..n-1 */
    int32_t eot;                /* <|endoftext|> */
    uint32_t *tok_off, *tok_len;  /* bytes of id i: pool[tok_off[i] ..]; len UINT32_MAX:
                                   * unused id */
    unsigned char *pool; size_t pool_len, pool_cap;
    int32_t byte_id[256];
    RtTokMap tokmap;            /* merge tokens only, never special tokens */
    RtPairMap pairs;
    RtPieceCache cache;
    RtMergeScratch scratch;
};

static int32_t rt_tokmap_find(const RtBpe *b, const unsigned char *s, size_t n)
{
    size_t i = rt_hash_bytes(s, n) & b->tokmap.mask;
    for (;; i = (i + 1) & b->tokmap.mask) {
        int32_t id = b->tokmap.slot[i];
        if (id < 0) return -1;
        if (b->tok_len[id] == n && memcmp(b->pool + b->tok_off[id], s, n) == 0) return id;
    }
}

/* Inserts id (whose bytes are in the pool); returns the id already there, or -1. */
static int32_t rt_tokmap_insert(RtBpe *b, int32_t id)
{
    const unsigned char *s = b->pool + b->tok_off[id];
    size_t n = b->tok_len[id];
    size_t i = rt_hash_bytes(s, n) & b->tokmap.mask;
    for (;; i = (i + 1) & b->tokmap.mask) {
        int32_t old = b->tokmap.slot[i];
        if (old < 0) { b->tokmap.slot[i] = id; return -1; }
        if (b->tok_len[old] == n && memcmp(b->pool + b->tok_off[old], s, n) == 0) return old;
    }
}

static int32_t rt_pair_find(const RtPairMap *m, int32_t a, int32_t b)
{
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = rt_hash_u64(k) & m->mask;; i = (i + 1) & m->mask) {
        if (m->key[i] == k) return m->val[i];
        if (m->key[i] == RT_PAIR_EMPTY) return -1;
    }
}

static void rt_pair_insert(RtPairMap *m, int32_t a, int32_t b, int32_t v)
{
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = rt_hash_u64(k) & m->mask;
    while (m->key[i] != RT_PAIR_EMPTY && m->key[i] != k) i = (i + 1) & m->mask;
    m->key[i] = k;
    m->val[i] = v;
}

/* ---- loading ---- */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
 * other 68 bytes get the code points 256, 257, ... in byte order.  Fills both
 * directions (cp_byte: code point < 324 -> byte, or -1) and the rank order of
 * the single bytes (printable ones first, in byte order, then the rest). */
static void rt_byte_unicode(int32_t byte_cp[256], int cp_byte[324], int rank_byte[256])
{
    int n = 0, r = 0;
    for (int cp = 0; cp < 324; cp++) cp_byte[cp] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        if (printable) { byte_cp[b] = b; rank_byte[r++] = b; }
    }
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        if (!printable) { byte_cp[b] = 256 + n++; rank_byte[r++] = b; }
    }
    for (int b = 0; b < 256; b++) cp_byte[byte_cp[b]] = b;
}

/* Appends the raw bytes of a token written in bytes_to_unicode form (s[0..n))
 * to the pool.  Returns false if s holds a code point that is not in the map. */
static bool rt_pool_put_token(RtBpe *b, const int cp_byte[324], const char *s, size_t n)
{
    if (b->pool_len + n > b->pool_cap) {
        size_t cap = 2 * b->pool_cap + n + 4096;
        unsigned char *np = realloc(b->pool, cap);
        if (!np) return false;
        b->pool = np;
        b->pool_cap = cap;
    }
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0, adv; i < n; i += adv) {
        int32_t cp = rt_utf8_decode(u + i, n - i, &adv);
        if (cp < 0 || cp >= 324 || cp_byte[cp] < 0) return false;
        b->pool[b->pool_len++] = (unsigned char)cp_byte[cp];
    }
    return true;
}

static bool rt_tok_arrays(RtBpe *b, size_t n)
{
    b->tok_off = malloc(n * sizeof *b->tok_off);
    b->tok_len = malloc(n * sizeof *b->tok_len);
    if (!b->tok_off || !b->tok_len) return false;
    for (size_t i = 0; i < n; i++) b->tok_len[i] = UINT32_MAX;
    return true;
}

/* Counts the merge lines of vocab.bpe (lines after the "#version" header). */
static size_t rt_count_merges(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++) n += *p == '\n';
    return n + 1;
}

/* Token 256+i = left + right of merge line i; checks both halves are tokens. */
static bool rt_add_merge(RtBpe *b, const int cp_byte[324], const char *line, size_t n,
                         int32_t id)
{
    const char *sp = memchr(line, ' ', n);
    if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - line))) return false;
    b->tok_off[id] = (uint32_t)b->pool_len;
    if (!rt_pool_put_token(b, cp_byte, line, (size_t)(sp - line))) return false;
    size_t split = b->pool_len - b->tok_off[id];
    if (!rt_pool_put_token(b, cp_byte, sp + 1, n - (size_t)(sp + 1 - line))) return false;
    b->tok_len[id] = (uint32_t)(b->pool_len - b->tok_off[id]);
    const unsigned char *t = b->pool + b->tok_off[id];
    return split > 0 && split < b->tok_len[id] && rt_tokmap_find(b, t, split) >= 0 &&
           rt_tokmap_find(b, t + split, b->tok_len[id] - split) >= 0 &&
           rt_tokmap_insert(b, id) < 0;
}

static bool rt_parse_vocab_bpe(RtBpe *b, const char *text, const char *path, char **err)
{
    int32_t byte_cp[256];
    int cp_byte[324], rank_byte[256];
    rt_byte_unicode(byte_cp, cp_byte, rank_byte);
    size_t max_tok = 256 + rt_count_merges(text);
    b->tokmap.mask = rt_pow2_at_least(2 * max_tok) - 1;
    b->tokmap.slot = malloc((b->tokmap.mask + 1) * sizeof(int32_t));
    if (!b->tokmap.slot || !rt_tok_arrays(b, max_tok)) {
        rt_errf(err, "out of memory loading %s", path);
        return false;
    }
    memset(b->tokmap.slot, 0xff, (b->tokmap.mask + 1) * sizeof(int32_t));
    for (int r = 0; r < 256; r++) {
        unsigned char c = (unsigned char)rank_byte[r];
        b->tok_off[r] = (uint32_t)b->pool_len;
        char u[4];
        size_t un = rt_utf8_encode(byte_cp[c], (unsigned char *)u);
        if (!rt_pool_put_token(b, cp_byte, u, un)) {
            rt_errf(err, "out of memory loading %s", path);
            return false;
        }
        b->tok_len[r] = 1;
        b->byte_id[c] = r;
        rt_tokmap_insert(b, r);
    }
    int32_t id = 256;
    size_t lineno = 0;
    for (const char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        lineno++;
        if (n > 0 && line[n - 1] == '\r') n--;
        if (n == 0 || (lineno == 1 && line[0] == '#')) continue;
        if (!rt_add_merge(b, cp_byte, line, n, id)) {
            rt_errf(err, "%s:%zu: bad merge line \"%.*s\" (expected two known tokens "
                    "separated by one space); is this GPT-2's vocab.bpe?", path, lineno,
                    (int)(n > 60 ? 60 : n), line);
            return false;
        }
        if (b->tok_len[id] > RT_BPE_MAX_TOKEN) {
            rt_errf(err, "%s:%zu: the merge makes a token of %u bytes, more than the %d gradc "
                    "takes (GPT-2's longest has 128); is this GPT-2's vocab.bpe?", path,
                    lineno, b->tok_len[id], RT_BPE_MAX_TOKEN);
            return false;
        }
        id++;
    }
    b->n_merge_tok = id;
    return true;
}

/* Checks one encoder.json entry against the tokens from vocab.bpe, or takes it
 * as a special token "<|...|>" with an id of its own. */
static bool rt_check_encoder_entry(RtBpe *b, const int cp_byte[324], const cJSON *e,
                                   int *n_found, const char *path, char **err)
{
    size_t klen = strlen(e->string), save = b->pool_len;
    double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
    if (v < 0 || v >= b->n_vocab || v != (int32_t)v) {
        rt_errf(err, "%s: token \"%s\" has no valid id; is this GPT-2's encoder.json?", path,
                e->string);
        return false;
    }
    if (!rt_pool_put_token(b, cp_byte, e->string, klen)) {
        rt_errf(err, "%s: token \"%s\" is not in byte-level form", path, e->string);
        return false;
    }
    int32_t id = (int32_t)v, found = rt_tokmap_find(b, b->pool + save, b->pool_len - save);
    if (found >= 0) {
        b->pool_len = save;
        if (found == id) { (*n_found)++; return true; }
        rt_errf(err, "%s: token \"%s\" has id %d but rank %d in vocab.bpe; the two files "
                "must come from the same GPT-2 release", path, e->string, id, found);
        return false;
    }
    if (klen < 4 || strncmp(e->string, "<|", 2) != 0 || strcmp(e->string + klen - 2, "|>") != 0 ||
        id < b->n_merge_tok || b->tok_len[id] != UINT32_MAX) {
        rt_errf(err, "%s: token \"%s\" (id %d) is not made by the merges of vocab.bpe; the "
                "two files must come from the same GPT-2 release", path, e->string, id);
        return false;
    }
    b->tok_off[id] = (uint32_t)save;
    b->tok_len[id] = (uint32_t)(b->pool_len - save);
    if (strcmp(e->string, RT_BPE_ENDOFTEXT) == 0) b->eot = id;
    return true;
}

static int rt_max_json_id(const cJSON *root)
{
    int max = -1;
    for (const cJSON *e = root->child; e; e = e->next)
        if (cJSON_IsNumber(e) && e->valuedouble > max && e->valuedouble < 1e7)
            max = (int)e->valuedouble;
    return max;
}

static bool rt_parse_encoder_json(RtBpe *b, const char *text, const char *path, char **err)
{
    int32_t byte_cp[256];
    int cp_byte[324], rank_byte[256], n_found = 0;
    rt_byte_unicode(byte_cp, cp_byte, rank_byte);
    cJSON *root = cJSON_Parse(text);
    if (!cJSON_IsObject(root)) {
        rt_errf(err, "%s: not a JSON object of token -> id; is this GPT-2's encoder.json?", path);
        cJSON_Delete(root);
        return false;
    }
    b->n_vocab = rt_max_json_id(root) + 1;
    if (b->n_vocab > cJSON_GetArraySize(root)) {
        /* ids are distinct (checked below), so this says they are 0..n-1, and the
         * arrays sized by the largest id stay within the size of the file */
        rt_errf(err, "%s: the largest id is %d, but there are only %d tokens: ids must be "
                "0..%d; is this GPT-2's encoder.json?", path, b->n_vocab - 1,
                cJSON_GetArraySize(root), cJSON_GetArraySize(root) - 1);
        cJSON_Delete(root);
        return false;
    }
    if (b->n_vocab < b->n_merge_tok) b->n_vocab = b->n_merge_tok;
    uint32_t *off = realloc(b->tok_off, (size_t)b->n_vocab * sizeof *off);
    uint32_t *len = off ? realloc(b->tok_len, (size_t)b->n_vocab * sizeof *len) : NULL;
    if (off) b->tok_off = off;
    if (len) b->tok_len = len;
    bool ok = off && len;
    if (!ok) rt_errf(err, "out of memory loading %s", path);
    for (int i = b->n_merge_tok; ok && i < b->n_vocab; i++) b->tok_len[i] = UINT32_MAX;
    for (const cJSON *e = root->child; ok && e; e = e->next)
        ok = rt_check_encoder_entry(b, cp_byte, e, &n_found, path, err);
    cJSON_Delete(root);
    if (ok && n_found != b->n_merge_tok) {
        rt_errf(err, "%s has %d of the %d tokens of vocab.bpe; the two files must come from "
                "the same GPT-2 release", path, n_found, b->n_merge_tok);
        ok = false;
    }
    if (ok && b->eot < 0) {
        rt_errf(err, "%s has no %s token; is this GPT-2's encoder.json?", path, RT_BPE_ENDOFTEXT);
        ok = false;
    }
    return ok;
}

/* Every split of every merge token into two tokens goes into the pair map. */
static bool rt_build_pairs(RtBpe *b)
{
    size_t n = 0;
    for (int t = 0; t < b->n_merge_tok; t++) n += b->tok_len[t] - 1;
    b->pairs.mask = rt_pow2_at_least(2 * n) - 1;
    b->pairs.key = malloc((b->pairs.mask + 1) * sizeof *b->pairs.key);
    b->pairs.val = malloc((b->pairs.mask + 1) * sizeof *b->pairs.val);
    if (!b->pairs.key || !b->pairs.val) return false;
    memset(b->pairs.key, 0xff, (b->pairs.mask + 1) * sizeof *b->pairs.key);
    for (int t = 256; t < b->n_merge_tok; t++) {
        const unsigned char *s = b->pool + b->tok_off[t];
        size_t len = b->tok_len[t];
        for (size_t k = 1; k < len; k++) {
            int32_t l = rt_tokmap_find(b, s, k), r = rt_tokmap_find(b, s + k, len - k);
            if (l >= 0 && r >= 0) rt_pair_insert(&b->pairs, l, r, t);
        }
    }
    return true;
}

static bool rt_cache_init(RtPieceCache *c)
{
    memset(c, 0, sizeof *c);
    c->mask = 4096 - 1;
    c->ent = calloc(c->mask + 1, sizeof *c->ent);
    return c->ent != NULL;
}

/* The parsers read C strings: a NUL byte inside a file would hide the rest. */
static bool rt_no_nul(const char *text, size_t len, const char *path, char **err)
{
    const char *z = memchr(text, 0, len);
    if (!z) return true;
    rt_errf(err, "%s: a NUL byte at offset %zu; is this a GPT-2 BPE file?", path,
            (size_t)(z - text));
    return false;
}

static RtBpe *rt_bpe_new(char **err)
{
    RtBpe *b = calloc(1, sizeof *b);
    if (!b || !rt_cache_init(&b->cache)) {
        rt_bpe_free(b);
        rt_errf(err, "out of memory loading GPT-2 BPE");
        return NULL;
    }
    b->eot = -1;
    return b;
}

/* vocab.bpe, NUL-terminated at its length; dir names it in messages. */
static bool rt_bpe_merges(RtBpe *b, const char *text, size_t len, const char *dir, char **err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    return rt_no_nul(text, len, path, err) && rt_parse_vocab_bpe(b, text, path, err);
}

/* encoder.json likewise, then the pair map. */
static bool rt_bpe_encoder(RtBpe *b, const char *text, size_t len, const char *dir, char **err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    if (!rt_no_nul(text, len, path, err) || !rt_parse_encoder_json(b, text, path, err))
        return false;
    if (rt_build_pairs(b)) return true;
    rt_errf(err, "out of memory loading GPT-2 BPE");
    return false;
}

RtBpe *rt_bpe_load(const char *dir, char **err)
{
    if (err) *err = NULL;
    size_t mlen = 0, jlen = 0;
    RtBpe *b = rt_bpe_new(err);
    char *merges = b ? rt_read_file(dir, "vocab.bpe", RT_BPE_MAX_MERGES_FILE, &mlen, err) : NULL;
    bool ok = merges && rt_bpe_merges(b, merges, mlen, dir, err);
    char *json = ok ? rt_read_file(dir, "encoder.json", RT_BPE_MAX_JSON_FILE, &jlen, err) : NULL;
    ok = json && rt_bpe_encoder(b, json, jlen, dir, err);
    free(merges);
    free(json);
    if (!ok) { rt_bpe_free(b); return NULL; }
    return b;
}

static char *rt_copy_z(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c) { memcpy(c, s, n); c[n] = 0; }
    return c;
}

RtBpe *rt_bpe_load_mem(const char *merges, size_t mlen, const char *json, size_t jlen,
                       const char *name, char **err)
{
    if (err) *err = NULL;
    if (mlen > RT_BPE_MAX_MERGES_FILE || jlen > RT_BPE_MAX_JSON_FILE) {
        rt_errf(err, "%s: the BPE files have %zu and %zu bytes, more than gradc reads", name,
                mlen, jlen);
        return NULL;
    }
    char *m = rt_copy_z(merges, mlen), *j = rt_copy_z(json, jlen);
    RtBpe *b = m && j ? rt_bpe_new(err) : NULL;
    bool ok = b && rt_bpe_merges(b, m, mlen, name, err) && rt_bpe_encoder(b, j, jlen, name, err);
    if (!m || !j) rt_errf(err, "out of memory loading GPT-2 BPE");
    free(m);
    free(j);
    if (!ok) { rt_bpe_free(b); return NULL; }
    return b;
}

void rt_bpe_free(RtBpe *b)
{
    if (!b) return;
    free(b->tok_off); free(b->tok_len); free(b->pool);
    free(b->tokmap.slot); free(b->pairs.key); free(b->pairs.val);
    free(b->cache.ent); free(b->cache.keys); free(b->cache.ids);
    free(b->scratch.id); free(b->scratch.rank); free(b->scratch.next);
    free(b->scratch.prev); free(b->scratch.heap);
    free(b);
}

int rt_bpe_vocab_size(const RtBpe *b) { return b->n_vocab; }
int32_t rt_bpe_eot_id(const RtBpe *b) { return b->eot; }

/* ---- the merge loop ---- */

static bool rt_scratch_reserve(RtMergeScratch *s, size_t m)
{
    if (m <= s->cap) return true;
    size_t cap = rt_pow2_at_least(m);
    int32_t *id = realloc(s->id, cap * sizeof *id);
    if (id) s->id = id;
    int32_t *rank = realloc(s->rank, cap * sizeof *rank);
    if (rank) s->rank = rank;
    uint32_t *next = realloc(s->next, cap * sizeof *next);
    if (next) s->next = next;
    uint32_t *prev = realloc(s->prev, cap * sizeof *prev);
    if (prev) s->prev = prev;
    uint64_t *heap = realloc(s->heap, 2 * cap * sizeof *heap);   /* <= 2 pushes per merge */
    if (heap) s->heap = heap;
    if (!id || !rank || !next || !prev || !heap) return false;
    s->cap = cap;
    return true;
}

static void rt_heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = v;
}

static uint64_t rt_heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Ranks the pair that starts at part p (its right neighbour is next[p]) and
 * queues it as (rank, p): the heap's minimum is the lowest rank, leftmost. */
static void rt_rank_pair(const RtBpe *b, RtMergeScratch *s, uint32_t p, uint32_t m, size_t *nh)
{
    uint32_t q = s->next[p];
    s->rank[p] = q < m ? rt_pair_find(&b->pairs, s->id[p], s->id[q]) : -1;
    if (s->rank[p] >= 0) rt_heap_push(s->heap, nh, (uint64_t)s->rank[p] << 32 | p);
}

/* BPE of piece s[0..m) (m >= 2) into s->id, as a list from part 0 via next.
 * A merged token's id is its rank, so the pair map's value is both. */
static void rt_merge_piece(const RtBpe *b, RtMergeScratch *s, const unsigned char *t, uint32_t m)
{
    size_t nh = 0;
    for (uint32_t p = 0; p < m; p++) {
        s->id[p] = b->byte_id[t[p]];
        s->next[p] = p + 1;
        s->prev[p] = p - 1;          /* UINT32_MAX for the first part */
    }
    for (uint32_t p = 0; p < m; p++) rt_rank_pair(b, s, p, m, &nh);
    while (nh > 0) {
        uint64_t top = rt_heap_pop(s->heap, &nh);
        uint32_t p = (uint32_t)top, q = s->next[p];
        if (s->id[p] < 0 || s->rank[p] != (int32_t)(top >> 32)) continue;   /* stale */
        s->id[p] = s->rank[p];
        s->id[q] = -1;
        s->next[p] = s->next[q];
        if (s->next[q] < m) s->prev[s->next[q]] = p;
        rt_rank_pair(b, s, p, m, &nh);
        if (s->prev[p] != UINT32_MAX) rt_rank_pair(b, s, s->prev[p], m, &nh);
    }
}

/* ---- encoding ---- */

typedef struct { int32_t *v; size_t n, cap; bool oom; } RtIdVec;

static void rt_idvec_push(RtIdVec *v, const int32_t *ids, size_t n)
{
    if (v->n + n > v->cap) {
        size_t cap = v->cap ? v->cap : 256;
        while (cap < v->n + n) cap *= 2;
        int32_t *nv = realloc(v->v, cap * sizeof *nv);
        if (!nv) { v->oom = true; return; }
        v->v = nv;
        v->cap = cap;
    }
    memcpy(v->v + v->n, ids, n * sizeof *ids);
    v->n += n;
}

static RtCacheEnt *rt_cache_slot(RtPieceCache *c, const unsigned char *s, size_t n, uint64_t h)
{
    for (size_t i = h & c->mask;; i = (i + 1) & c->mask) {
        RtCacheEnt *e = &c->ent[i];
        if (e->key_len == 0) return e;
        if (e->hash == h && e->key_len == n && memcmp(c->keys + e->key_off, s, n) == 0) return e;
    }
}

static void rt_cache_clear(RtPieceCache *c)
{
    memset(c->ent, 0, (c->mask + 1) * sizeof *c->ent);
    c->count = c->keys_len = c->ids_len = 0;
}

static bool rt_cache_grow(RtPieceCache *c)
{
    size_t cap = 2 * (c->mask + 1);
    RtCacheEnt *ne = calloc(cap, sizeof *ne), *old = c->ent;
    if (!ne) return false;
    size_t old_cap = c->mask + 1;
    c->ent = ne;
    c->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key_len)
            *rt_cache_slot(c, c->keys + old[i].key_off, old[i].key_len, old[i].hash) = old[i];
    free(old);
    return true;
}

static bool rt_pool_reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return false;
    *p = np;
    *cap = nc;
    return true;
}

/* Remembers piece s[0..n) -> ids; failing quietly is fine (it is a cache). */
static void rt_cache_put(RtPieceCache *c, const unsigned char *s, size_t n, uint64_t h,
                         const int32_t *ids, size_t k)
{
    if (c->count >= RT_CACHE_MAX_ENTRIES) rt_cache_clear(c);
    if (2 * (c->count + 1) > c->mask + 1 && !rt_cache_grow(c)) return;
    if (!rt_pool_reserve((void **)&c->keys, &c->keys_cap, c->keys_len + n, 1) ||
        !rt_pool_reserve((void **)&c->ids, &c->ids_cap, c->ids_len + k, sizeof(int32_t)))
        return;
    RtCacheEnt *e = rt_cache_slot(c, s, n, h);
    *e = (RtCacheEnt){h, (uint32_t)c->keys_len, (uint32_t)n, (uint32_t)c->ids_len, (uint32_t)k};
    memcpy(c->keys + c->keys_len, s, n);
    memcpy(c->ids + c->ids_len, ids, k * sizeof *ids);
    c->keys_len += n;
    c->ids_len += k;
    c->count++;
}

/* Runs the merge loop on s[0..n) and appends the ids to out (and the cache). */
static void rt_encode_merged(RtBpe *b, const unsigned char *s, size_t n, uint64_t h, RtIdVec *out)
{
    RtMergeScratch *sc = &b->scratch;
    if (n >= UINT32_MAX || !rt_scratch_reserve(sc, n)) { out->oom = true; return; }
    rt_merge_piece(b, sc, s, (uint32_t)n);
    size_t start = out->n;
    for (uint32_t p = 0; p < n; p = sc->next[p]) rt_idvec_push(out, &sc->id[p], 1);
    if (!out->oom && n <= RT_CACHE_MAX_PIECE)
        rt_cache_put(&b->cache, s, n, h, out->v + start, out->n - start);
}

/* One piece: a whole token, a cached piece, or the merge loop. */
static void rt_encode_piece(RtBpe *b, const unsigned char *s, size_t n, RtIdVec *out)
{
    int32_t id = rt_tokmap_find(b, s, n);
    if (id >= 0) { rt_idvec_push(out, &id, 1); return; }
    uint64_t h = rt_hash_bytes(s, n);
    if (n <= RT_CACHE_MAX_PIECE) {
        RtCacheEnt *e = rt_cache_slot(&b->cache, s, n, h);
        if (e->key_len) { rt_idvec_push(out, b->cache.ids + e->ids_off, e->ids_n); return; }
    }
    rt_encode_merged(b, s, n, h, out);
}

/* Ordinary text: pieces from the pre-tokenizer, each encoded on its own. */
static void rt_encode_ordinary(RtBpe *b, const char *text, size_t len, RtIdVec *out)
{
    for (size_t pos = 0; pos < len && !out->oom;) {
        size_t end = rt_bpe_piece_end(text, len, pos);
        rt_encode_piece(b, (const unsigned char *)text + pos, end - pos, out);
        pos = end;
    }
}

/* Offset of the first <|endoftext|> in text[0..len), or len. */
static size_t rt_find_eot(const char *text, size_t len)
{
    const size_t k = sizeof RT_BPE_ENDOFTEXT - 1;
    for (const char *p = text; (p = memchr(p, '<', len - (size_t)(p - text))) != NULL; p++) {
        if ((size_t)(text + len - p) < k) break;
        if (memcmp(p, RT_BPE_ENDOFTEXT, k) == 0) return (size_t)(p - text);
    }
    return len;
}

int rt_bpe_encode(RtBpe *b, const char *text, size_t len, bool allow_special,
                  int32_t **ids, size_t *n)
{
    RtIdVec out = {0};
    const size_t k = sizeof RT_BPE_ENDOFTEXT - 1;
    while (allow_special && !out.oom) {
        size_t at = rt_find_eot(text, len);
        if (at == len) break;
        rt_encode_ordinary(b, text, at, &out);
        rt_idvec_push(&out, &b->eot, 1);
        text += at + k;
        len -= at + k;
    }
    rt_encode_ordinary(b, text, len, &out);
    if (!out.oom && !out.v) out.v = malloc(sizeof(int32_t));   /* non-NULL for "" too */
    if (out.oom || !out.v) { free(out.v); *ids = NULL; *n = 0; return -1; }
    *ids = out.v;
    *n = out.n;
    return 0;
}

/* ---- decoding ---- */

char *rt_bpe_decode_len(const RtBpe *b, const int32_t *ids, size_t n, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= b->n_vocab || b->tok_len[ids[i]] == UINT32_MAX) return NULL;
        total += b->tok_len[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out) return NULL;
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, b->pool + b->tok_off[ids[i]], b->tok_len[ids[i]]);
        p += b->tok_len[ids[i]];
    }
    *p = 0;
    if (len) *len = total;
    return out;
}

char *rt_bpe_decode(const RtBpe *b, const int32_t *ids, size_t n)
{
    return rt_bpe_decode_len(b, ids, n, NULL);
}
