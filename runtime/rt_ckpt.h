/* rt_ckpt.h — safetensors files: gradc's checkpoint format (runtime/rt_ckpt.c).
 *
 * A safetensors file is
 *
 *   8 bytes     N, the header length, unsigned little-endian
 *   N bytes     a JSON object: for every tensor NAME
 *                 "NAME": {"dtype": "F32", "shape": [768, 50257],
 *                          "data_offsets": [BEGIN, END]}
 *               and optionally "__metadata__": {"key": "string", ...};
 *               gradc pads it with spaces to a multiple of 8 bytes
 *   the rest    the byte buffer: tensor NAME is bytes [BEGIN, END) of it,
 *               row-major, little-endian; tensors tile the buffer exactly
 *
 * so Hugging Face's safetensors library, PyTorch and numpy read gradc's
 * checkpoints, and gradc reads theirs.  gradc adds two metadata keys and
 * checks them when present: "gradc.data_hash", a 64-bit hash of the byte
 * buffer, and "gradc.header_hash", one of the rest of the header (every other
 * metadata entry, and each tensor's name, dtype, shape and offsets).  So a
 * flipped bit in the tensors, an edited metadata value or a torn copy is
 * reported, not trained on.  What a training checkpoint holds (weights,
 * AdamW moments, step, data position, model file) is decided by rt_train.c
 * (docs/training.md).
 *
 * Writing is atomic: PATH.tmp.PID is written, fsync'd and renamed over
 * PATH, then the folder is fsync'd, so a crash leaves the old checkpoint or
 * the new one, never half of one.  Reading maps the file and checks every
 * header field, bound and overlap against the file's size before using it;
 * any problem is an IrError that names the file and the problem, with a hint.
 *
 *   RtCkptWriter *w = rt_ckpt_writer_new();
 *   rt_ckpt_add(w, "wte", RT_DT_F32, 2, (int64_t[]){50257, 768}, wte);  // borrowed
 *   rt_ckpt_meta(w, "step", "90");
 *   if (!rt_ckpt_write(w, "ckpt.safetensors", &err)) ...;
 *   rt_ckpt_writer_free(w);
 *
 *   RtCkpt *c = rt_ckpt_read("ckpt.safetensors", &err);
 *   const RtCkptTensor *t = rt_ckpt_find(c, "wte");     // t->data, t->bytes
 *   const char *step = rt_ckpt_meta_get(c, "step");
 *   rt_ckpt_free(c);
 */
#ifndef GRADC_RT_CKPT_H
#define GRADC_RT_CKPT_H

#include "ir/ir.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The dtypes of the format (names as in the header). */
typedef enum RtDType {
    RT_DT_F32, RT_DT_F16, RT_DT_BF16, RT_DT_F64, RT_DT_I64, RT_DT_I32, RT_DT_I16,
    RT_DT_I8, RT_DT_U8, RT_DT_BOOL, RT_DT_COUNT
} RtDType;

const char *rt_dtype_name(RtDType t);      /* "F32" */
size_t rt_dtype_size(RtDType t);
RtDType rt_dtype_lookup(const char *name); /* RT_DT_COUNT when unknown */

typedef struct RtCkptTensor {
    const char *name;
    RtDType dtype;
    int rank;
    int64_t shape[IR_MAX_RANK];
    int64_t numel;
    const void *data;   /* into the mapped file (reader) or borrowed (writer) */
    int64_t bytes;
} RtCkptTensor;

/* ---------------------------------------------------------------- writer */

typedef struct RtCkptWriter RtCkptWriter;

RtCkptWriter *rt_ckpt_writer_new(void);
void rt_ckpt_writer_free(RtCkptWriter *w);
/* Adds a tensor; name is copied, data is borrowed until rt_ckpt_write. */
void rt_ckpt_add(RtCkptWriter *w, const char *name, RtDType dt, int rank, const int64_t *shape,
                 const void *data);
/* Adds (or replaces) a metadata string; both are copied. */
void rt_ckpt_meta(RtCkptWriter *w, const char *key, const char *value);
void rt_ckpt_metaf(RtCkptWriter *w, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes the file atomically (see the top).  False + err on an I/O error
 * or a duplicate tensor name. */
bool rt_ckpt_write(RtCkptWriter *w, const char *path, IrError *err);

/* ---------------------------------------------------------------- reader */

typedef struct RtCkptMeta {
    char *key, *value;
} RtCkptMeta;

typedef struct RtCkpt {
    char *path;
    int n;
    RtCkptTensor *t;     /* in file order (by offset) */
    int nmeta;
    RtCkptMeta *meta;
    void *map;           /* the mapped file (or the caller's bytes) */
    size_t size;
    bool mapped;         /* map is ours to unmap */
    int nwarning;        /* checks that could not be made (rt_ckpt_print_warnings) */
    char warning[2][320];
} RtCkpt;

RtCkpt *rt_ckpt_read(const char *path, IrError *err);
/* The same checks on bytes in memory, borrowed until rt_ckpt_free; `name`
 * stands for the file in messages.  RT_CKPT_NO_HASH skips the two hashes
 * (for the fuzz harness, which must get past them to reach what follows). */
#define RT_CKPT_NO_HASH 1u
RtCkpt *rt_ckpt_read_mem(const void *data, size_t size, const char *name, unsigned flags,
                         IrError *err);
void rt_ckpt_free(RtCkpt *c);
/* "gradc: warning: ..." for each check the reader could not make: a gradc
 * checkpoint without gradc.header_hash (an older gradc wrote it) or without
 * gradc.data_hash. */
void rt_ckpt_print_warnings(const RtCkpt *c, FILE *f);
const RtCkptTensor *rt_ckpt_find(const RtCkpt *c, const char *name);
const char *rt_ckpt_meta_get(const RtCkpt *c, const char *key);

/* The hash stored as gradc.data_hash (exposed for tests). */
uint64_t rt_ckpt_hash(const void *data, size_t n);
/* The hash stored as gradc.header_hash, of what c's header says: every
 * metadata entry but that one, and every tensor's name, dtype, shape and
 * offsets (exposed for tests). */
uint64_t rt_ckpt_header_hash(const RtCkpt *c);

#endif
