/* test_ckpt.c — unit tests of the safetensors reader and writer
 * (runtime/rt_ckpt.c): a round trip of tensors and metadata, the exact
 * byte layout of a tiny file (checked by hand against the format), files
 * written by hand as another writer would, and one test per kind of damage,
 * each of which must be refused with a message that names the file.
 */
#include "tests/unit/testlib.h"

#include <dirent.h>
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

static void write_raw(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
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

/* A PATH.tmp.PID left in the folder. */
static bool has_temp_file(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;
    while (d && (e = readdir(d)))
        found |= strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return found;
}

TEST(round_trip)
{
    float w[6] = {1, 2, 3, 4, 5, 6};
    int32_t ids[3] = {7, -8, 9};
    unsigned char u[5] = "abcd";
    RtCkptWriter *wr = rt_ckpt_writer_new();
    rt_ckpt_add(wr, "w", RT_DT_F32, 2, (int64_t[]){2, 3}, w);
    rt_ckpt_add(wr, "ids", RT_DT_I32, 1, (int64_t[]){3}, ids);
    rt_ckpt_add(wr, "scalar.u8", RT_DT_U8, 0, NULL, u);
    rt_ckpt_add(wr, "bytes", RT_DT_U8, 1, (int64_t[]){4}, u);
    rt_ckpt_meta(wr, "model", "{\"a\": \"b\\n\",\n \"c\": 1}\t\x01");
    rt_ckpt_metaf(wr, "step", "%d", 42);
    rt_ckpt_meta(wr, "step", "43");                    /* replaces */
    IrError err = {0};
    CHECK(rt_ckpt_write(wr, tmp_path("a.safetensors"), &err));
    rt_ckpt_writer_free(wr);
    RtCkpt *c = rt_ckpt_read(tmp_path("a.safetensors"), &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(c->n == 4);
    const RtCkptTensor *t = rt_ckpt_find(c, "w");
    CHECK(t && t->dtype == RT_DT_F32 && t->rank == 2 && t->shape[1] == 3 && t->bytes == 24);
    CHECK(t && !memcmp(t->data, w, 24));
    t = rt_ckpt_find(c, "ids");
    CHECK(t && t->dtype == RT_DT_I32 && !memcmp(t->data, ids, 12));
    t = rt_ckpt_find(c, "scalar.u8");
    CHECK(t && t->rank == 0 && t->numel == 1 && t->bytes == 1);
    CHECK(rt_ckpt_find(c, "nope") == NULL);
    CHECK_STR(rt_ckpt_meta_get(c, "model"), "{\"a\": \"b\\n\",\n \"c\": 1}\t\x01");
    CHECK_STR(rt_ckpt_meta_get(c, "step"), "43");
    CHECK(rt_ckpt_meta_get(c, "gradc.data_hash") != NULL);
    rt_ckpt_free(c);
    CHECK(!has_temp_file());
}

/* The layout, byte for byte: length word, padded header, data. */
TEST(layout_is_safetensors)
{
    float v[2] = {1.5f, -2};
    RtCkptWriter *wr = rt_ckpt_writer_new();
    rt_ckpt_add(wr, "v", RT_DT_F32, 1, (int64_t[]){2}, v);
    IrError err = {0};
    CHECK(rt_ckpt_write(wr, tmp_path("b.safetensors"), &err));
    rt_ckpt_writer_free(wr);
    size_t n;
    char *buf = read_raw(tmp_path("b.safetensors"), &n);
    uint64_t h = 0;
    for (int b = 7; b >= 0; b--)
        h = h << 8 | (unsigned char)buf[b];
    CHECK(h % 8 == 0 && 8 + h + 8 == n);
    CHECK(!memcmp(buf + 8 + h, v, 8));
    buf[8 + h] = 0;
    CHECK(strstr(buf + 8, "\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"));
    CHECK(strstr(buf + 8, "\"__metadata__\":{\"gradc.data_hash\":\""));
    free(buf);
}

/* Written by hand as another library would: no metadata, no hash,
 * tensors listed out of offset order, other dtypes. */
TEST(reads_foreign_files)
{
    unsigned char data[12] = {0, 0, 0x80, 0x3f, 1, 2, 3, 4, 5, 6, 7, 8};
    write_file(tmp_path("c.safetensors"),
               "{\"b\":{\"dtype\":\"I16\",\"shape\":[2,2],\"data_offsets\":[4,12]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}   ",
               data, 12);
    IrError err = {0};
    RtCkpt *c = rt_ckpt_read(tmp_path("c.safetensors"), &err);
    CHECK(c != NULL);
    if (!c)
        return;
    const RtCkptTensor *a = rt_ckpt_find(c, "a");
    CHECK(a && a->dtype == RT_DT_F32 && *(const float *)a->data == 1.0f);
    CHECK(rt_ckpt_find(c, "b") && rt_ckpt_find(c, "b")->dtype == RT_DT_I16);
    CHECK(c->nmeta == 0);
    rt_ckpt_free(c);
}

/* The file must be refused with a message naming it and containing `want`. */
static void refused(const char *name, const char *want)
{
    IrError err = {0};
    RtCkpt *c = rt_ckpt_read(tmp_path(name), &err);
    CHECK(c == NULL);
    rt_ckpt_free(c);
    if (!strstr(err.msg, want) || !strstr(err.msg, name)) {
        fprintf(stderr, "  %s: message '%s' lacks '%s'\n", name, err.msg, want);
        CHECK(0);
    }
    CHECK(err.hint[0] != 0);
}

static void write_good(const char *name)
{
    float w[256];
    for (int i = 0; i < 256; i++)
        w[i] = (float)i;
    RtCkptWriter *wr = rt_ckpt_writer_new();
    rt_ckpt_add(wr, "w", RT_DT_F32, 2, (int64_t[]){16, 16}, w);
    rt_ckpt_meta(wr, "step", "1");
    IrError err = {0};
    CHECK(rt_ckpt_write(wr, tmp_path(name), &err));
    rt_ckpt_writer_free(wr);
}

TEST(damage_is_refused)
{
    size_t n;
    write_good("good.safetensors");
    char *buf = read_raw(tmp_path("good.safetensors"), &n);
    write_raw(tmp_path("trunc.safetensors"), buf, n - 100);
    refused("trunc.safetensors", "ends at byte 1024 of the data");
    write_raw(tmp_path("tiny.safetensors"), buf, 5);
    refused("tiny.safetensors", "less than the 8-byte header length");
    write_raw(tmp_path("empty.safetensors"), buf, 0);
    refused("empty.safetensors", "less than the 8-byte");
    buf[n - 3] ^= 0x10;                                   /* one bit of data */
    write_raw(tmp_path("flip.safetensors"), buf, n);
    refused("flip.safetensors", "does not match its hash");
    buf[n - 3] ^= 0x10;
    buf[7] = 0x01;                                        /* absurd header length */
    write_raw(tmp_path("len.safetensors"), buf, n);
    refused("len.safetensors", "header length is");
    buf[7] = 0;
    buf[9] = '#';                                         /* JSON damaged */
    write_raw(tmp_path("json.safetensors"), buf, n);
    refused("json.safetensors", "not valid JSON");
    free(buf);
    write_raw(tmp_path("text.safetensors"), "hello, this is not a checkpoint\n", 32);
    refused("text.safetensors", "header length");
}

TEST(bad_headers_are_refused)
{
    char data[16] = {0};
    write_file(tmp_path("h1.safetensors"),
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data, 8);
    refused("h1.safetensors", "has 8 bytes, but its shape and dtype F32 need 12");
    write_file(tmp_path("h2.safetensors"),
               "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8);
    refused("h2.safetensors", "unknown dtype 'Q4'");
    write_file(tmp_path("h3.safetensors"),
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", data, 12);
    refused("h3.safetensors", "overlaps");
    write_file(tmp_path("h4.safetensors"),
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 16);
    refused("h4.safetensors", "8 bytes after the last tensor");
    write_file(tmp_path("h5.safetensors"),
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data, 8);
    refused("h5.safetensors", "not a size");
    write_file(tmp_path("h6.safetensors"), "{\"__metadata__\":{\"step\":3}}", data, 0);
    refused("h6.safetensors", "not a string");
    write_file(tmp_path("h7.safetensors"), "[1,2]", data, 0);
    refused("h7.safetensors", "not a JSON object");
    write_file(tmp_path("h8.safetensors"),
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", data, 4);
    refused("h8.safetensors", "BEGIN <= END");
    /* 2^40 x 2^30 elements wrapped around to 0, which "needed 0 bytes" */
    write_file(tmp_path("h9.safetensors"), "{\"a\":{\"dtype\":\"F32\",\"shape\":"
               "[1099511627776,1073741824],\"data_offsets\":[0,0]}}", data, 0);
    refused("h9.safetensors", "tensor 'a' has too many elements: shape [1099511627776, "
            "1073741824] is 1.18e+21 elements, more than 2^40");
}

TEST(missing_file_and_unwritable_folder)
{
    IrError err = {0};
    CHECK(rt_ckpt_read(tmp_path("none.safetensors"), &err) == NULL);
    CHECK(strstr(err.msg, "cannot open checkpoint") && strstr(err.msg, "none.safetensors"));
    RtCkptWriter *wr = rt_ckpt_writer_new();
    float x = 1;
    rt_ckpt_add(wr, "x", RT_DT_F32, 0, NULL, &x);
    err = (IrError){0};
    CHECK(!rt_ckpt_write(wr, "/nonexistent-dir/x.safetensors", &err));
    CHECK(strstr(err.msg, "checkpoint '/nonexistent-dir/x.safetensors': No such file") != NULL);
    rt_ckpt_add(wr, "x", RT_DT_F32, 0, NULL, &x);
    err = (IrError){0};
    CHECK(!rt_ckpt_write(wr, tmp_path("dup.safetensors"), &err));
    CHECK(strstr(err.msg, "two tensors are named 'x'") != NULL);
    rt_ckpt_writer_free(wr);
}

TEST(hash_streams)
{
    unsigned char b[100];
    for (int i = 0; i < 100; i++)
        b[i] = (unsigned char)(i * 7);
    CHECK(rt_ckpt_hash(b, 100) != rt_ckpt_hash(b, 99));
    /* a writer with two tensors hashes like one buffer */
    RtCkptWriter *wr = rt_ckpt_writer_new();
    rt_ckpt_add(wr, "a", RT_DT_U8, 1, (int64_t[]){13}, b);
    rt_ckpt_add(wr, "b", RT_DT_U8, 1, (int64_t[]){87}, b + 13);
    IrError err = {0};
    CHECK(rt_ckpt_write(wr, tmp_path("h.safetensors"), &err));
    rt_ckpt_writer_free(wr);
    RtCkpt *c = rt_ckpt_read(tmp_path("h.safetensors"), &err);
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)rt_ckpt_hash(b, 100));
    CHECK(c && !strcmp(rt_ckpt_meta_get(c, "gradc.data_hash"), want));
    rt_ckpt_free(c);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/gradc-test-ckpt-XXXXXX");
    if (!mkdtemp(dir))
        TEST_SKIP("cannot make a temporary folder");
    RUN(round_trip);
    RUN(layout_is_safetensors);
    RUN(reads_foreign_files);
    RUN(damage_is_refused);
    RUN(bad_headers_are_refused);
    RUN(missing_file_and_unwritable_folder);
    RUN(hash_streams);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
