/* test_ckpt_read.c — the safetensors reader on files it must not trust
 * (runtime/rt_ckpt.c, issue 13): an edited header is caught by
 * gradc.header_hash, a gradc checkpoint without its hashes loads with a
 * warning, two entries of one name are refused (JSON readers disagree on
 * which one wins) and so are bytes after the header's JSON (safetensors' own
 * reader refuses them), a directory is named as one, and the reader on bytes
 * in memory (the fuzz harness's entry) makes the same checks.
 */
#define _GNU_SOURCE
#include "tests/unit/testlib.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/rt_ckpt.h"

static char dir[64];

static const char *tmp_path(const char *name)
{
    static char buf[160];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static char *read_raw(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*n + 1);
    *n = fread(buf, 1, *n, f);
    fclose(f);
    return buf;
}

static void write_raw(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* A file with the given header text and data bytes. */
static void write_file(const char *path, const char *hdr, const void *data, size_t n)
{
    size_t h = strlen(hdr);
    unsigned char len8[8] = {0};
    for (int b = 0; b < 8; b++)
        len8[b] = (unsigned char)(h >> (8 * b));
    FILE *f = fopen(path, "wb");
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, h, f);
    fwrite(data, 1, n, f);
    fclose(f);
}

/* A small gradc checkpoint: two tensors and some metadata. */
static void write_good(const char *name)
{
    float w[6] = {1, 2, 3, 4, 5, 6};
    unsigned char v[3] = {'a', 'b', 'c'};
    RtCkptWriter *wr = rt_ckpt_writer_new();
    rt_ckpt_add(wr, "w", RT_DT_F32, 2, (int64_t[]){2, 3}, w);
    rt_ckpt_add(wr, "tokenizer.char_vocab", RT_DT_U8, 1, (int64_t[]){3}, v);
    rt_ckpt_meta(wr, "format", "gradc.train.v1");
    rt_ckpt_meta(wr, "tokenizer", "char");
    IrError err = {0};
    CHECK(rt_ckpt_write(wr, tmp_path(name), &err));
    rt_ckpt_writer_free(wr);
}

/* The file with the first `from` in its header replaced by `to`, which
 * has the same length, so that only that value changes. */
static void edit(const char *src, const char *dst, const char *from, const char *to)
{
    size_t n;
    char *buf = read_raw(tmp_path(src), &n);
    char *at = memmem(buf, n, from, strlen(from));
    CHECK(at != NULL && strlen(from) == strlen(to));
    if (at)
        memcpy(at, to, strlen(to));
    write_raw(tmp_path(dst), buf, n);
    free(buf);
}

static void refused(const char *name, const char *want)
{
    IrError err = {0};
    RtCkpt *c = rt_ckpt_read(tmp_path(name), &err);
    CHECK(c == NULL);
    CHECK(strstr(err.msg, tmp_path(name)) != NULL);
    if (!strstr(err.msg, want))
        fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n", name, err.msg, want);
    CHECK(strstr(err.msg, want) != NULL);
    rt_ckpt_free(c);
}

TEST(header_hash_catches_edits)
{
    write_good("good.safetensors");
    IrError err = {0};
    RtCkpt *c = rt_ckpt_read(tmp_path("good.safetensors"), &err);
    CHECK(c && rt_ckpt_meta_get(c, "gradc.header_hash"));
    CHECK(c && c->nwarning == 0);
    rt_ckpt_free(c);
    /* a metadata value, a shape and a dtype, each edited in place */
    edit("good.safetensors", "tok.safetensors", "\"tokenizer\":\"char\"", "\"tokenizer\":\"gpt2\"");
    refused("tok.safetensors", "was edited or damaged");
    edit("good.safetensors", "shape.safetensors", "\"shape\":[2,3]", "\"shape\":[3,2]");
    refused("shape.safetensors", "was edited or damaged");
    edit("good.safetensors", "dtype.safetensors", "\"dtype\":\"U8\"", "\"dtype\":\"I8\"");
    refused("dtype.safetensors", "was edited or damaged");
    /* deleting the data hash (renaming its key) no longer turns its check off */
    edit("good.safetensors", "nodata.safetensors", "\"gradc.data_hash\"", "\"gradc.data_hasx\"");
    refused("nodata.safetensors", "was edited or damaged");
}

TEST(missing_hashes_warn)
{
    float x[2] = {1, 2};
    char hdr[400];
    /* a gradc checkpoint as an older gradc wrote it: a data hash, no header hash */
    snprintf(hdr, sizeof hdr, "{\"__metadata__\":{\"format\":\"gradc.train.v1\","
             "\"gradc.data_hash\":\"%016llx\"},\"x\":{\"dtype\":\"F32\",\"shape\":[2],"
             "\"data_offsets\":[0,8]}}", (unsigned long long)rt_ckpt_hash(x, 8));
    write_file(tmp_path("old.safetensors"), hdr, x, 8);
    IrError err = {0};
    RtCkpt *c = rt_ckpt_read(tmp_path("old.safetensors"), &err);
    CHECK(c && c->nwarning == 1 && strstr(c->warning[0], "no gradc.header_hash") &&
          strstr(c->warning[0], "old.safetensors"));
    rt_ckpt_free(c);
    /* neither hash: two warnings */
    write_file(tmp_path("bare.safetensors"), "{\"__metadata__\":{\"format\":\"gradc.train.v1\"},"
               "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", x, 8);
    c = rt_ckpt_read(tmp_path("bare.safetensors"), &err);
    CHECK(c && c->nwarning == 2 && strstr(c->warning[1], "no gradc.data_hash"));
    rt_ckpt_free(c);
    /* another writer's file (Hugging Face's "pt" format): nothing was promised */
    write_file(tmp_path("hf.safetensors"), "{\"__metadata__\":{\"format\":\"pt\"},"
               "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", x, 8);
    c = rt_ckpt_read(tmp_path("hf.safetensors"), &err);
    CHECK(c && c->nwarning == 0);
    rt_ckpt_free(c);
}

TEST(duplicate_names_are_refused)
{
    float x[2] = {1, 2};
    write_file(tmp_path("dup.safetensors"),
               "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", x, 8);
    refused("dup.safetensors", "two tensors are named 'x'");
    write_file(tmp_path("dupmeta.safetensors"),
               "{\"__metadata__\":{\"tokenizer\":\"char\",\"tokenizer\":\"gpt2\"},"
               "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", x, 8);
    refused("dupmeta.safetensors", "__metadata__ has two entries 'tokenizer'");
    write_file(tmp_path("twometa.safetensors"),
               "{\"__metadata__\":{},\"__metadata__\":{},"
               "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", x, 8);
    refused("twometa.safetensors", "__metadata__ must be one object");
}

TEST(bytes_after_the_header_json_are_refused)
{
    float x[2] = {1, 2};
    write_file(tmp_path("tail.safetensors"), "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":[0,8]}}  x     ", x, 8);
    refused("tail.safetensors", "its header has bytes after the JSON (at byte 56 of 62)");
    write_file(tmp_path("pad.safetensors"), "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":[0,8]}}  \n    ", x, 8);
    IrError err = {0};
    RtCkpt *c = rt_ckpt_read(tmp_path("pad.safetensors"), &err);
    CHECK(c != NULL);
    rt_ckpt_free(c);
}

TEST(directory_is_named)
{
    IrError err = {0};
    CHECK(rt_ckpt_read(dir, &err) == NULL);
    CHECK(strstr(err.msg, "is a directory") && strstr(err.msg, dir));
}

TEST(read_from_memory)
{
    write_good("mem.safetensors");
    size_t n;
    char *buf = read_raw(tmp_path("mem.safetensors"), &n);
    IrError err = {0};
    RtCkpt *c = rt_ckpt_read_mem(buf, n, "<mem>", 0, &err);
    const RtCkptTensor *t = c ? rt_ckpt_find(c, "w") : NULL;
    CHECK(t && t->numel == 6 && ((const float *)t->data)[5] == 6);
    rt_ckpt_free(c);
    buf[n - 1] ^= 1;      /* a flipped bit in the data */
    c = rt_ckpt_read_mem(buf, n, "<mem>", 0, &err);
    CHECK(!c && strstr(err.msg, "'<mem>' is corrupt") && strstr(err.msg, "hash"));
    c = rt_ckpt_read_mem(buf, n, "<mem>", RT_CKPT_NO_HASH, &err);
    CHECK(c != NULL);
    rt_ckpt_free(c);
    c = rt_ckpt_read_mem(buf, 7, "<mem>", 0, &err);
    CHECK(!c && strstr(err.msg, "less than the 8-byte header length"));
    free(buf);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/gradc_ckpt_read_XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    RUN(header_hash_catches_edits);
    RUN(missing_hashes_warn);
    RUN(duplicate_names_are_refused);
    RUN(bytes_after_the_header_json_are_refused);
    RUN(directory_is_named);
    RUN(read_from_memory);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return test_summary();
}
