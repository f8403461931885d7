/* test_bpe_files.c — the GPT-2 BPE loader (runtime/rt_bpe.c) on files from
 * anywhere (issue 13): a small vocabulary written here loads and round-trips;
 * an encoder.json whose largest id is far past its size (which sized the
 * loader's arrays: {"<|x|>": 9999999} cost 80 MB), a NUL byte (which hid the
 * rest of the file), a merge that makes a token past 256 bytes (the pair map
 * costs its length squared) and a directory in place of a file are refused
 * with a message that names the file.  Needs no data.
 */
#include "tests/unit/testlib.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/rt_tok.h"
#include "runtime/rt_utf8.h"

static char dir[64];

/* GPT-2's bytes_to_unicode: the code point that stands for byte b. */
static int byte_cp(int b)
{
    int n = 0;
    for (int c = 0; c < 256; c++) {
        bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
        if (c == b)
            return printable ? c : 256 + n;
        n += !printable;
    }
    return -1;
}

/* The 256 single bytes with their ranks as ids, merges "a a", "aa aa", ...
 * (nmerge of them: tokens of 2, 4, ... bytes), <|endoftext|>, and `extra`
 * (more JSON entries, or ""). */
static void write_vocab(int nmerge, const char *extra, const char *merges_tail)
{
    char path[128];
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    FILE *f = fopen(path, "wb");
    fputs("#version: 0.2\n", f);
    for (int m = 0, len = 1; m < nmerge; m++, len *= 2) {
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < len; i++)
                fputs(k && !i ? " a" : "a", f);
        fputs("\n", f);
    }
    fputs(merges_tail, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    f = fopen(path, "wb");
    fputs("{", f);
    int rank = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            bool printable = byte_cp(b) == b;
            if (printable != (pass == 0))
                continue;
            unsigned char u[4];
            size_t n = rt_utf8_encode(byte_cp(b), u);
            fputs("\"", f);
            if (b == '"' || b == '\\')
                fputs("\\", f);
            fwrite(u, 1, n, f);
            fprintf(f, "\": %d, ", rank++);
        }
    for (int m = 0, len = 2; m < nmerge; m++, len *= 2) {
        fputs("\"", f);
        for (int i = 0; i < len; i++)
            fputs("a", f);
        fprintf(f, "\": %d, ", rank++);
    }
    fprintf(f, "\"<|endoftext|>\": %d%s}", rank, extra);
    fclose(f);
}

/* rt_bpe_load(dir) fails with a message holding want. */
static void refused(const char *want)
{
    char *err = NULL;
    RtBpe *b = rt_bpe_load(dir, &err);
    CHECK(b == NULL);
    if (!err || !strstr(err, want))
        fprintf(stderr, "  got \"%s\", want \"%s\"\n", err ? err : "(none)", want);
    CHECK(err && strstr(err, want) && strstr(err, dir));
    free(err);
    rt_bpe_free(b);
}

TEST(small_vocabulary_loads)
{
    write_vocab(3, "", "");
    char *err = NULL;
    RtBpe *b = rt_bpe_load(dir, &err);
    CHECK(b && rt_bpe_vocab_size(b) == 256 + 3 + 1 && rt_bpe_eot_id(b) == 259);
    int32_t *ids = NULL;
    size_t n = 0;
    const char text[] = "aaaaaaaaaaa\xff b";
    CHECK(b && rt_bpe_encode(b, text, sizeof text - 1, false, &ids, &n) == 0);
    CHECK(n == 6 && ids[0] == 258 && ids[1] == 256 && ids[2] == byte_cp('a') - '!');
    char *back = b ? rt_bpe_decode(b, ids, n) : NULL;
    CHECK(back && !strcmp(back, text));
    free(back);
    free(ids);
    free(err);
    rt_bpe_free(b);
}

TEST(sparse_ids_are_refused)
{
    write_vocab(3, ", \"<|x|>\": 9999999", "");
    refused("the largest id is 9999999, but there are only 261 tokens");
}

TEST(nul_byte_is_refused)
{
    write_vocab(3, "", "");
    char path[128];
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    FILE *f = fopen(path, "ab");
    fputs("a", f);
    fputc(0, f);
    fputs("not a merge line\n", f);
    fclose(f);
    refused("vocab.bpe: a NUL byte at offset");
}

TEST(long_tokens_are_refused)
{
    write_vocab(9, "", "");                           /* tokens of up to 512 bytes */
    refused("vocab.bpe:10: the merge makes a token of 512 bytes, more than the 256");
    write_vocab(8, "", "");                           /* up to 256: fine */
    char *err = NULL;
    RtBpe *b = rt_bpe_load(dir, &err);
    CHECK(b != NULL);
    rt_bpe_free(b);
    free(err);
}

TEST(directory_is_named)
{
    write_vocab(1, "", "");
    char path[128];
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    remove(path);
    mkdir(path, 0755);
    refused("encoder.json: it is a directory");
    rmdir(path);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/gradc_bpe_files_XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    RUN(small_vocabulary_loads);
    RUN(sparse_ids_are_refused);
    RUN(nul_byte_is_refused);
    RUN(long_tokens_are_refused);
    RUN(directory_is_named);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return test_summary();
}
