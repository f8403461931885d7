/* bpe_encode.c — a tiny driver for rt_bpe.c, used by tests/scripts/bpe_vs_tiktoken.sh
 * until the gradc CLI has `gradc tokenize`.  For each FILE it prints "# FILE"
 * and the ids one per line, the same output as encode.js, so the two diff.
 *
 *   bpe_encode [--special] [--bench] [--roundtrip] BPE_DIR FILE...
 *     --special    <|endoftext|> is the special token 50256 (allow_special)
 *     --bench      print "FILE: N tokens, B bytes, S s, R MB/s" instead of the
 *                  ids; the time covers encoding only (the first file starts
 *                  from a cold piece cache)
 *     --roundtrip  also check decode(encode(FILE)) == FILE; exit 1 if not
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/rt_tok.h"

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Encodes one file: prints its ids (or the speed) and checks the round trip. */
static int encode_file(RtBpe *bpe, const char *path, int special, int bench, int roundtrip)
{
    size_t len, n;
    char *text = read_all(path, &len);
    if (!text) { fprintf(stderr, "bpe_encode: cannot read %s\n", path); return 1; }
    int32_t *ids;
    double t0 = now_s();
    if (rt_bpe_encode(bpe, text, len, special, &ids, &n) != 0) {
        fprintf(stderr, "bpe_encode: out of memory\n");
        free(text);
        return 1;
    }
    double dt = now_s() - t0;
    if (bench) {
        printf("%s: %zu tokens, %zu bytes, %.4f s, %.2f MB/s\n", path, n, len, dt,
               (double)len / dt / 1e6);
    } else {
        printf("# %s\n", path);
        for (size_t i = 0; i < n; i++) printf("%d\n", ids[i]);
    }
    int rc = 0;
    if (roundtrip) {
        size_t dlen;
        char *back = rt_bpe_decode_len(bpe, ids, n, &dlen);
        rc = !back || dlen != len || memcmp(back, text, len) != 0;
        if (rc) fprintf(stderr, "bpe_encode: decode(encode(%s)) differs from the file\n", path);
        free(back);
    }
    free(ids);
    free(text);
    return rc;
}

int main(int argc, char **argv)
{
    int special = 0, bench = 0, roundtrip = 0, a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "--special")) special = 1;
        else if (!strcmp(argv[a], "--bench")) bench = 1;
        else if (!strcmp(argv[a], "--roundtrip")) roundtrip = 1;
        else break;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: bpe_encode [--special] [--bench] [--roundtrip] BPE_DIR FILE...\n");
        return 2;
    }
    char *err = NULL;
    RtBpe *bpe = rt_bpe_load(argv[a], &err);
    if (!bpe) { fprintf(stderr, "bpe_encode: %s\n", err); free(err); return 1; }
    int rc = 0;
    for (int i = a + 1; i < argc; i++) rc |= encode_file(bpe, argv[i], special, bench, roundtrip);
    rt_bpe_free(bpe);
    return rc;
}
