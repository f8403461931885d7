/* rt_ckpt.c — safetensors reader and writer (rt_ckpt.h), written for gradc.
 *
 * Writer.  Tensors are laid out in the order they were added, back to
 * back; the header is built with cJSON (which escapes names and metadata,
 * such as a whole model file) and padded with spaces to 8 bytes so that the
 * buffer starts aligned.  The file goes through ir/outfile.c: to
 * PATH.tmp.PID, which becomes PATH only after fsync, so a crash or a full
 * disk mid-write never leaves a torn checkpoint (a device such as
 * /dev/null is written in place).
 *
 * Reader.  The file is mapped read-only and every claim of the header is
 * checked against it before anything is used: the length word, the JSON,
 * each entry's dtype, shape and offsets (END - BEGIN must equal the shape's
 * element count times the dtype size), overlaps and holes (the tensors must
 * tile the buffer, as the format requires), names (two entries of one name
 * are refused: JSON readers differ on which one wins), then the two hashes
 * when the writer stored them: gradc.header_hash over what the header says,
 * gradc.data_hash over the tensor bytes.  A gradc checkpoint without them
 * loads with a warning (rt_ckpt_print_warnings).  Each failure says which
 * file, which tensor and what was wrong.
 */
#define _GNU_SOURCE
#include "runtime/rt_ckpt.h"

#include "ir/outfile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CK_MAX_HEADER (100u << 20)   /* the format's own limit: 100 MB */
#define CK_HASH_KEY "gradc.data_hash"
#define CK_HEADER_KEY "gradc.header_hash"

/* ---------------------------------------------------------------- dtypes */

static const struct {
    const char *name;
    size_t size;
} ck_dtypes[RT_DT_COUNT] = {
    [RT_DT_F32] = {"F32", 4}, [RT_DT_F16] = {"F16", 2}, [RT_DT_BF16] = {"BF16", 2},
    [RT_DT_F64] = {"F64", 8}, [RT_DT_I64] = {"I64", 8}, [RT_DT_I32] = {"I32", 4},
    [RT_DT_I16] = {"I16", 2}, [RT_DT_I8] = {"I8", 1},   [RT_DT_U8] = {"U8", 1},
    [RT_DT_BOOL] = {"BOOL", 1},
};

const char *rt_dtype_name(RtDType t)
{
    return t < RT_DT_COUNT ? ck_dtypes[t].name : "?";
}

size_t rt_dtype_size(RtDType t)
{
    return t < RT_DT_COUNT ? ck_dtypes[t].size : 0;
}

RtDType rt_dtype_lookup(const char *name)
{
    for (int t = 0; t < RT_DT_COUNT; t++)
        if (name && !strcmp(ck_dtypes[t].name, name))
            return (RtDType)t;
    return RT_DT_COUNT;
}

/* ---------------------------------------------------------------- hash */

static uint64_t rotl(uint64_t x, int k)
{
    return x << k | x >> (64 - k);
}

/* A word-at-a-time multiplicative hash, streamed so that the writer can
 * hash tensor after tensor: not cryptographic, only there to catch damaged
 * bytes, and fast enough for gigabytes. */
typedef struct CkHash {
    uint64_t h, total;
    unsigned char tail[8];
    int ntail;
} CkHash;

static void hash_word(CkHash *s, const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    s->h = rotl(s->h ^ (w * 0xC2B2AE3D27D4EB4Full), 31) * 0x9E3779B185EBCA87ull;
}

static void hash_update(CkHash *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    s->total += n;
    while (n > 0 && s->ntail > 0 && s->ntail < 8)
        s->tail[s->ntail++] = *p++, n--;
    if (s->ntail == 8)
        hash_word(s, s->tail), s->ntail = 0;
    for (; n >= 8; p += 8, n -= 8)
        hash_word(s, p);
    while (n > 0)
        s->tail[s->ntail++] = *p++, n--;
}

static uint64_t hash_final(CkHash *s)
{
    uint64_t h = s->h;
    for (int i = 0; i < s->ntail; i++)
        h = (h ^ s->tail[i]) * 0x100000001B3ull;
    h ^= s->total;
    h ^= h >> 33;
    return h * 0xFF51AFD7ED558CCDull;
}

uint64_t rt_ckpt_hash(const void *data, size_t n)
{
    CkHash s = {.h = 0x9E3779B97F4A7C15ull};
    hash_update(&s, data, n);
    return hash_final(&s);
}

/* ---------------------------------------------------------------- header hash */

/* gradc.header_hash covers what the header says, not how its JSON is spelt:
 * the metadata sorted by key (the hash's own entry left out) and the tensor
 * table sorted by name, each string with its length first so that no two
 * headers hash alike by where their strings split.  gradc.data_hash is one
 * of the entries, so the two hashes together cover every byte that counts. */

static void hash_int(CkHash *s, int64_t v)
{
    unsigned char b8[8];
    for (int b = 0; b < 8; b++)
        b8[b] = (unsigned char)((uint64_t)v >> (8 * b));
    hash_update(s, b8, 8);
}

static void hash_str(CkHash *s, const char *str)
{
    size_t n = strlen(str);
    hash_int(s, (int64_t)n);
    hash_update(s, str, n);
}

typedef struct CkEntry {
    const RtCkptTensor *t;
    int64_t begin;
} CkEntry;

static int meta_by_key(const void *a, const void *b)
{
    return strcmp((*(const RtCkptMeta *const *)a)->key, (*(const RtCkptMeta *const *)b)->key);
}

static int entry_by_name(const void *a, const void *b)
{
    return strcmp(((const CkEntry *)a)->t->name, ((const CkEntry *)b)->t->name);
}

static uint64_t header_hash(const RtCkptMeta *meta, int nmeta, CkEntry *e, int n)
{
    CkHash s = {.h = 0x9E3779B97F4A7C15ull};
    const RtCkptMeta **m = malloc(sizeof *m * (size_t)(nmeta + 1));
    int k = 0;
    for (int i = 0; i < nmeta; i++)
        if (strcmp(meta[i].key, CK_HEADER_KEY))
            m[k++] = &meta[i];
    qsort(m, (size_t)k, sizeof *m, meta_by_key);
    qsort(e, (size_t)n, sizeof *e, entry_by_name);
    hash_str(&s, "gradc.header.v1");
    hash_int(&s, k);
    for (int i = 0; i < k; i++)
        hash_str(&s, m[i]->key), hash_str(&s, m[i]->value);
    hash_int(&s, n);
    for (int i = 0; i < n; i++) {
        hash_str(&s, e[i].t->name);
        hash_str(&s, rt_dtype_name(e[i].t->dtype));
        hash_int(&s, e[i].t->rank);
        for (int d = 0; d < e[i].t->rank; d++)
            hash_int(&s, e[i].t->shape[d]);
        hash_int(&s, e[i].begin);
        hash_int(&s, e[i].begin + e[i].t->bytes);
    }
    free(m);
    return hash_final(&s);
}

uint64_t rt_ckpt_header_hash(const RtCkpt *c)
{
    uint64_t hlen = 0;
    for (int b = 7; b >= 0 && c->size >= 8; b--)
        hlen = hlen << 8 | ((const unsigned char *)c->map)[b];
    const char *data = (const char *)c->map + 8 + hlen;
    CkEntry *e = malloc(sizeof *e * (size_t)(c->n + 1));
    for (int i = 0; i < c->n; i++)
        e[i] = (CkEntry){&c->t[i], (const char *)c->t[i].data - data};
    uint64_t h = header_hash(c->meta, c->nmeta, e, c->n);
    free(e);
    return h;
}

/* ---------------------------------------------------------------- writer */

struct RtCkptWriter {
    RtCkptTensor *t;
    int n, cap;
    RtCkptMeta *meta;
    int nmeta, metacap;
};

RtCkptWriter *rt_ckpt_writer_new(void)
{
    return calloc(1, sizeof(RtCkptWriter));
}

void rt_ckpt_writer_free(RtCkptWriter *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        free((char *)w->t[i].name);
    for (int i = 0; i < w->nmeta; i++)
        free(w->meta[i].key), free(w->meta[i].value);
    free(w->t);
    free(w->meta);
    free(w);
}

static int64_t shape_numel(int rank, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < rank; d++)
        n *= shape[d];
    return n;
}

void rt_ckpt_add(RtCkptWriter *w, const char *name, RtDType dt, int rank, const int64_t *shape,
                 const void *data)
{
    IR_ASSERT(rank >= 0 && rank <= IR_MAX_RANK && dt < RT_DT_COUNT);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->t = realloc(w->t, sizeof *w->t * (size_t)w->cap);
    }
    RtCkptTensor *t = &w->t[w->n++];
    *t = (RtCkptTensor){.name = strdup(name), .dtype = dt, .rank = rank, .data = data};
    if (rank > 0)
        memcpy(t->shape, shape, sizeof *shape * (size_t)rank);
    t->numel = shape_numel(rank, shape);
    t->bytes = t->numel * (int64_t)rt_dtype_size(dt);
}

void rt_ckpt_meta(RtCkptWriter *w, const char *key, const char *value)
{
    for (int i = 0; i < w->nmeta; i++)
        if (!strcmp(w->meta[i].key, key)) {
            free(w->meta[i].value);
            w->meta[i].value = strdup(value);
            return;
        }
    if (w->nmeta == w->metacap) {
        w->metacap = w->metacap ? 2 * w->metacap : 16;
        w->meta = realloc(w->meta, sizeof *w->meta * (size_t)w->metacap);
    }
    w->meta[w->nmeta++] = (RtCkptMeta){strdup(key), strdup(value)};
}

void rt_ckpt_metaf(RtCkptWriter *w, const char *key, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rt_ckpt_meta(w, key, buf);
}

/* Hash of the buffer the tensors make, in file order. */
static uint64_t writer_hash(const RtCkptWriter *w)
{
    CkHash s = {.h = 0x9E3779B97F4A7C15ull};
    for (int i = 0; i < w->n; i++)
        hash_update(&s, w->t[i].data, (size_t)w->t[i].bytes);
    return hash_final(&s);
}

/* Hash of the header the writer is about to write (see header_hash). */
static uint64_t writer_header_hash(const RtCkptWriter *w)
{
    CkEntry *e = malloc(sizeof *e * (size_t)(w->n + 1));
    int64_t off = 0;
    for (int i = 0; i < w->n; off += w->t[i++].bytes)
        e[i] = (CkEntry){&w->t[i], off};
    uint64_t h = header_hash(w->meta, w->nmeta, e, w->n);
    free(e);
    return h;
}

static cJSON *tensor_entry(const RtCkptTensor *t, int64_t begin)
{
    cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *off = cJSON_CreateArray();
    cJSON_AddStringToObject(e, "dtype", rt_dtype_name(t->dtype));
    for (int d = 0; d < t->rank; d++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
    cJSON_AddItemToObject(e, "shape", shape);
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)begin));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(begin + t->bytes)));
    cJSON_AddItemToObject(e, "data_offsets", off);
    return e;
}

/* The header JSON, padded with spaces to a multiple of 8; NULL on a
 * duplicate name (err). */
static char *build_header(RtCkptWriter *w, const char *path, size_t *len, IrError *err)
{
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    rt_ckpt_metaf(w, CK_HASH_KEY, "%016llx", (unsigned long long)writer_hash(w));
    rt_ckpt_metaf(w, CK_HEADER_KEY, "%016llx", (unsigned long long)writer_header_hash(w));
    for (int i = 0; i < w->nmeta; i++)
        cJSON_AddStringToObject(meta, w->meta[i].key, w->meta[i].value);
    cJSON_AddItemToObject(root, "__metadata__", meta);
    int64_t off = 0;
    for (int i = 0; i < w->n; i++, off += w->t[i - 1].bytes) {
        if (cJSON_GetObjectItemCaseSensitive(root, w->t[i].name)) {
            ir_error(err, "cannot write checkpoint '%s': two tensors are named '%s'", path,
                     w->t[i].name);
            cJSON_Delete(root);
            return NULL;
        }
        cJSON_AddItemToObject(root, w->t[i].name, tensor_entry(&w->t[i], off));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t n = strlen(json), padded = (n + 7) / 8 * 8;
    json = realloc(json, padded + 1);
    memset(json + n, ' ', padded - n);
    json[padded] = 0;
    *len = padded;
    return json;
}

/* The length word, the header and the tensors, in file order. */
static void write_body(FILE *f, const RtCkptWriter *w, const char *hdr, size_t hlen)
{
    unsigned char len8[8];
    for (int b = 0; b < 8; b++)
        len8[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, hlen, f);
    for (int i = 0; i < w->n; i++)
        fwrite(w->t[i].data, 1, (size_t)w->t[i].bytes, f);
}

bool rt_ckpt_write(RtCkptWriter *w, const char *path, IrError *err)
{
    size_t hlen;
    char *hdr = build_header(w, path, &hlen, err);
    if (!hdr)
        return false;
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, path, "checkpoint", err);
    if (f)
        write_body(f, w, hdr, hlen);
    free(hdr);
    return f && ir_outfile_commit(&o, err);
}

/* ---------------------------------------------------------------- reader */

static bool corrupt(IrError *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool corrupt(IrError *err, const char *path, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ir_error(err, "checkpoint '%s' is corrupt: %s", path, msg);
    ir_error_hint(err, "the file is damaged, truncated or not a safetensors file; use another "
                  "checkpoint (training writes them atomically, so the previous one is whole)");
    return false;
}

static bool open_fail(RtCkpt *c, const char *why, IrError *err)
{
    ir_error(err, "cannot open checkpoint '%s': %s", c->path, why);
    ir_error_hint(err, "check the path (gradc train writes OUT/ckpt.safetensors, or --ckpt PATH)");
    return false;
}

static bool map_file(RtCkpt *c, IrError *err)
{
    int fd = open(c->path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        bool ok = open_fail(c, strerror(errno), err);
        if (fd >= 0)
            close(fd);
        return ok;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return open_fail(c, S_ISDIR(st.st_mode) ? "it is a directory" : "it is not a regular "
                         "file", err);
    }
    c->size = (size_t)st.st_size;
    if (c->size > 0)
        c->map = mmap(NULL, c->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (c->map == MAP_FAILED) {
        c->map = NULL;
        return corrupt(err, c->path, "cannot map it: %s", strerror(errno));
    }
    c->mapped = c->map != NULL;
    return true;
}

/* The header length word, checked against the file size. */
static bool header_len(const RtCkpt *c, uint64_t *n, IrError *err)
{
    if (c->size < 8)
        return corrupt(err, c->path, "it has %zu bytes, less than the 8-byte header length",
                       c->size);
    const unsigned char *p = c->map;
    *n = 0;
    for (int b = 7; b >= 0; b--)
        *n = *n << 8 | p[b];
    if (*n > CK_MAX_HEADER || *n > c->size - 8)
        return corrupt(err, c->path, "the header length is %llu bytes, but the file has %zu "
                       "bytes", (unsigned long long)*n, c->size);
    return true;
}

/* A non-negative integer JSON number (exact below 2^53). */
static bool json_int(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

/* The shape as written and the element count it makes, in double precision
 * (a product that does not fit in 64 bits must not wrap around to a small
 * size). */
static bool too_many(RtCkpt *c, const RtCkptTensor *t, const cJSON *shape, IrError *err)
{
    char dims[200] = "";
    double n = 1;
    size_t k = 0;
    for (const cJSON *e = shape->child; e && k < sizeof dims - 24; e = e->next) {
        k += (size_t)snprintf(dims + k, sizeof dims - k, "%s%.0f", e == shape->child ? "" : ", ",
                              e->valuedouble);
        n *= e->valuedouble;
    }
    return corrupt(err, c->path, "tensor '%s' has too many elements: shape [%s] is %.3g "
                   "elements, more than 2^40", t->name, dims, n);
}

static bool parse_shape(RtCkpt *c, RtCkptTensor *t, const cJSON *shape, IrError *err)
{
    int rank = cJSON_GetArraySize(shape);
    if (!cJSON_IsArray(shape) || rank > IR_MAX_RANK)
        return corrupt(err, c->path, "tensor '%s': 'shape' must be an array of at most %d "
                       "dims", t->name, IR_MAX_RANK);
    t->rank = rank;
    t->numel = 1;
    for (int d = 0; d < rank; d++) {
        if (!json_int(cJSON_GetArrayItem(shape, d), &t->shape[d]) ||
            t->shape[d] > ((int64_t)1 << 40))
            return corrupt(err, c->path, "tensor '%s': dim %d of 'shape' is not a size",
                           t->name, d);
        if (t->shape[d] && t->numel > ((int64_t)1 << 40) / t->shape[d])
            return too_many(c, t, shape, err);   /* before the product can wrap around */
        t->numel *= t->shape[d];
    }
    return true;
}

static bool parse_offsets(RtCkpt *c, RtCkptTensor *t, const cJSON *off, int64_t avail,
                          int64_t *begin, IrError *err)
{
    int64_t b, e;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !json_int(cJSON_GetArrayItem(off, 0), &b) || !json_int(cJSON_GetArrayItem(off, 1), &e) ||
        e < b)
        return corrupt(err, c->path, "tensor '%s': 'data_offsets' must be [BEGIN, END] with "
                       "0 <= BEGIN <= END", t->name);
    if (e > avail)
        return corrupt(err, c->path, "tensor '%s' ends at byte %lld of the data, which has "
                       "only %lld bytes (truncated?)", t->name, (long long)e, (long long)avail);
    t->bytes = e - b;
    if (t->bytes != t->numel * (int64_t)rt_dtype_size(t->dtype))
        return corrupt(err, c->path, "tensor '%s' has %lld bytes, but its shape and dtype %s "
                       "need %lld", t->name, (long long)t->bytes, rt_dtype_name(t->dtype),
                       (long long)(t->numel * (int64_t)rt_dtype_size(t->dtype)));
    *begin = b;
    return true;
}

static bool parse_tensor(RtCkpt *c, const cJSON *e, const char *data, int64_t avail,
                         RtCkptTensor *t, IrError *err)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt))
        return corrupt(err, c->path, "entry '%s' is not a tensor (no \"dtype\")", e->string);
    t->dtype = rt_dtype_lookup(dt->valuestring);
    if (t->dtype == RT_DT_COUNT)
        return corrupt(err, c->path, "tensor '%s' has unknown dtype '%s'", t->name,
                       dt->valuestring);
    int64_t begin = 0;
    if (!parse_shape(c, t, cJSON_GetObjectItemCaseSensitive(e, "shape"), err) ||
        !parse_offsets(c, t, cJSON_GetObjectItemCaseSensitive(e, "data_offsets"), avail,
                       &begin, err))
        return false;
    t->data = data + begin;
    return true;
}

static bool parse_meta(RtCkpt *c, const cJSON *m, IrError *err)
{
    if (!cJSON_IsObject(m) || c->meta)
        return corrupt(err, c->path, "__metadata__ must be one object of strings");
    c->meta = calloc((size_t)cJSON_GetArraySize(m) + 1, sizeof *c->meta);
    for (const cJSON *e = m->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return corrupt(err, c->path, "__metadata__ entry '%s' is not a string", e->string);
        c->meta[c->nmeta++] = (RtCkptMeta){strdup(e->string), strdup(e->valuestring)};
    }
    return true;
}

static int by_offset(const void *a, const void *b)
{
    const RtCkptTensor *x = a, *y = b;
    return (x->data > y->data) - (x->data < y->data);
}

/* Sorted by offset, the tensors must tile [data, data + avail). */
static bool check_tiling(RtCkpt *c, const char *data, int64_t avail, IrError *err)
{
    qsort(c->t, (size_t)c->n, sizeof *c->t, by_offset);
    const char *at = data;
    for (int i = 0; i < c->n; i++) {
        if ((const char *)c->t[i].data != at)
            return corrupt(err, c->path, "tensor '%s' starts at data byte %lld, expected %lld "
                           "(%s)", c->t[i].name, (long long)((const char *)c->t[i].data - data),
                           (long long)(at - data),
                           (const char *)c->t[i].data < at ? "it overlaps the previous one"
                                                           : "a hole before it");
        at += c->t[i].bytes;
    }
    if (at != data + avail)
        return corrupt(err, c->path, "%lld bytes after the last tensor are not part of any",
                       (long long)(data + avail - at));
    return true;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice in names[0..n) (sorted in place), or NULL:
 * JSON readers differ on which of two equal keys wins, so gradc takes none. */
static const char *first_duplicate(const char **names, int n)
{
    qsort(names, (size_t)n, sizeof *names, by_string);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i]))
            return names[i];
    return NULL;
}

static bool check_unique(RtCkpt *c, IrError *err)
{
    int n = c->n > c->nmeta ? c->n : c->nmeta;
    const char **names = malloc(sizeof *names * (size_t)(n + 1)), *dup;
    for (int i = 0; i < c->n; i++)
        names[i] = c->t[i].name;
    dup = first_duplicate(names, c->n);
    bool ok = !dup || corrupt(err, c->path, "two tensors are named '%s'", dup);
    for (int i = 0; ok && i < c->nmeta; i++)
        names[i] = c->meta[i].key;
    dup = ok ? first_duplicate(names, c->nmeta) : NULL;
    ok = ok && (!dup || corrupt(err, c->path, "__metadata__ has two entries '%s'", dup));
    free(names);
    return ok;
}

static void warn(RtCkpt *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(RtCkpt *c, const char *fmt, ...)
{
    if (c->nwarning == 2)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->warning[c->nwarning++], sizeof c->warning[0], fmt, ap);
    va_end(ap);
}

static bool check_data_hash(RtCkpt *c, const char *data, int64_t avail, IrError *err)
{
    const char *want = rt_ckpt_meta_get(c, CK_HASH_KEY);
    if (!want)
        return true;
    char got[32];
    snprintf(got, sizeof got, "%016llx",
             (unsigned long long)rt_ckpt_hash(data, (size_t)avail));
    if (!strcmp(got, want))
        return true;
    return corrupt(err, c->path, "the tensor data does not match its hash (%s stored, %s "
                   "computed): some bytes were changed", want, got);
}

static bool check_header_hash(RtCkpt *c, IrError *err)
{
    const char *want = rt_ckpt_meta_get(c, CK_HEADER_KEY);
    char got[32];
    snprintf(got, sizeof got, "%016llx", (unsigned long long)rt_ckpt_header_hash(c));
    if (!strcmp(got, want))
        return true;
    ir_error(err, "checkpoint '%s' was edited or damaged: its metadata and tensor table do "
             "not match %s (%s stored, %s computed)", c->path, CK_HEADER_KEY, want, got);
    ir_error_hint(err, "use an unedited copy; gradc takes no changed settings from a "
                  "checkpoint, give them as flags instead (--set, --data, ...)");
    return false;
}

/* The two hashes: each is checked when present; a gradc checkpoint (its
 * format says so) without them gets a warning, a file of another writer
 * (Hugging Face's, PyTorch's) has none to check. */
static bool check_hashes(RtCkpt *c, const char *data, int64_t avail, IrError *err)
{
    const char *format = rt_ckpt_meta_get(c, "format");
    bool ours = format && !strncmp(format, "gradc", 5);
    bool header = rt_ckpt_meta_get(c, CK_HEADER_KEY) != NULL;
    bool body = rt_ckpt_meta_get(c, CK_HASH_KEY) != NULL;
    if (header && !check_header_hash(c, err))
        return false;
    if (header && !body)
        return corrupt(err, c->path, "it has a %s but no %s", CK_HEADER_KEY, CK_HASH_KEY);
    if (!check_data_hash(c, data, avail, err))
        return false;
    if (ours && !header)
        warn(c, "checkpoint '%s' has no %s (an older gradc wrote it, or it was removed): "
             "its metadata cannot be checked for edits", c->path, CK_HEADER_KEY);
    if (ours && !body)
        warn(c, "checkpoint '%s' has no %s: its tensor bytes cannot be checked for damage",
             c->path, CK_HASH_KEY);
    return true;
}

/* Parses the header (owned by root) into c. */
static bool parse_header(RtCkpt *c, cJSON *root, const char *data, int64_t avail,
                         unsigned flags, IrError *err)
{
    if (!cJSON_IsObject(root))
        return corrupt(err, c->path, "the header is not a JSON object");
    c->t = calloc((size_t)cJSON_GetArraySize(root) + 1, sizeof *c->t);
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!parse_meta(c, e, err))
                return false;
            continue;
        }
        RtCkptTensor *t = &c->t[c->n++];
        t->name = strdup(e->string);
        if (!parse_tensor(c, e, data, avail, t, err))
            return false;
    }
    return check_unique(c, err) && check_tiling(c, data, avail, err) &&
           ((flags & RT_CKPT_NO_HASH) || check_hashes(c, data, avail, err));
}

static bool read_header(RtCkpt *c, unsigned flags, IrError *err)
{
    uint64_t n = 0;
    if (!header_len(c, &n, err))
        return false;
    const char *hdr = (const char *)c->map + 8;
    const char *end = hdr;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, false);
    if (!root)
        return corrupt(err, c->path, "its %llu-byte header is not valid JSON",
                       (unsigned long long)n);
    /* after the JSON only the padding (safetensors' own reader refuses more) */
    while (end < hdr + n && strchr(" \t\r\n", *end) && *end)
        end++;
    if (end < hdr + n) {
        cJSON_Delete(root);
        return corrupt(err, c->path, "its header has bytes after the JSON (at byte %lld of "
                       "%llu)", (long long)(end - hdr), (unsigned long long)n);
    }
    bool ok = parse_header(c, root, hdr + n, (int64_t)(c->size - 8 - n), flags, err);
    cJSON_Delete(root);
    return ok;
}

RtCkpt *rt_ckpt_read(const char *path, IrError *err)
{
    RtCkpt *c = calloc(1, sizeof *c);
    c->path = strdup(path);
    if (!map_file(c, err) || !read_header(c, 0, err)) {
        rt_ckpt_free(c);
        return NULL;
    }
    return c;
}

RtCkpt *rt_ckpt_read_mem(const void *data, size_t size, const char *name, unsigned flags,
                         IrError *err)
{
    RtCkpt *c = calloc(1, sizeof *c);
    c->path = strdup(name);
    c->map = (void *)data;
    c->size = size;
    if (!read_header(c, flags, err)) {
        rt_ckpt_free(c);
        return NULL;
    }
    return c;
}

void rt_ckpt_print_warnings(const RtCkpt *c, FILE *f)
{
    for (int i = 0; i < c->nwarning; i++)
        fprintf(f, "gradc: warning: %s\n", c->warning[i]);
}

void rt_ckpt_free(RtCkpt *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        free((char *)c->t[i].name);
    for (int i = 0; i < c->nmeta; i++)
        free(c->meta[i].key), free(c->meta[i].value);
    if (c->mapped)
        munmap(c->map, c->size);
    free(c->t);
    free(c->meta);
    free(c->path);
    free(c);
}

const RtCkptTensor *rt_ckpt_find(const RtCkpt *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->t[i].name, name))
            return &c->t[i];
    return NULL;
}

const char *rt_ckpt_meta_get(const RtCkpt *c, const char *key)
{
    for (int i = 0; i < c->nmeta; i++)
        if (!strcmp(c->meta[i].key, key))
            return c->meta[i].value;
    return NULL;
}
