/* rt_lora.h — LoRA adapters in checkpoints: describing them, folding them in
 * (runtime/rt_lora.c).
 *
 * The lora pass (passes/lora.c) gives a weight P the params P.lora_A [in, r]
 * and P.lora_B [r, out] and computes x.P + s.(x.A).B.  A checkpoint of such
 * a model holds the adapters under those names and, in its metadata `lora`,
 * what folding them back needs:
 *
 *   {"rank":16,"alpha":16,"scale":1,"scale_mode":"alpha/r","globs":[],
 *    "targets":{"trf_blocks.0.att.W_query.weight":{"tb":1},...}}
 *
 * scale is s; each target's tb is P's layout in its matmul (1: P is [out, in],
 * nn.Linear's; 0: [in, out]); globs are the --lora-targets given (none: the
 * default, every linear layer), so that rank, alpha, scale_mode and globs
 * run the pass again on the same model to the same graph.  The merged
 * weight is P + s.A.B (tb=0) or P + s.(A.B)^T (tb=1).
 *
 *   // writing a checkpoint of an adapted model (after pass_lora / cli_load):
 *   char *meta = rt_lora_meta_json(graph, &lora_opts);     // NULL: no adapters
 *   if (meta) rt_ckpt_meta(writer, "lora", meta);
 *   free(meta);
 *
 *   // reading one: the weights as a model without adapters sees them
 *   bool found;
 *   float *w = rt_lora_merged(ckpt, "trf_blocks.0.att.W_query.weight", &found, &err);
 *   if (!w && !found && !err.set) ... P has no adapters: use P as it is
 *   free(w);
 *
 *   rt_lora_merge_file("lora.safetensors", "merged.safetensors", &err);
 */
#ifndef GRADC_RT_LORA_H
#define GRADC_RT_LORA_H

#include "passes/pass.h"
#include "runtime/rt_ckpt.h"

#include <stdbool.h>

/* The metadata key. */
#define RT_LORA_META "lora"

/* Whether name is an adapter's, or an adapter's AdamW moment: it ends in
 * ".lora_A" or ".lora_B". */
bool rt_lora_is_adapter(const char *name);

/* The JSON of the metadata `lora` for the adapted graph g (the model graph
 * right after the lora pass with options o, before autodiff and the other
 * passes: each target's tb is read from the matmul that reads it), or NULL
 * when g has no adapters.  malloc'd. */
char *rt_lora_meta_json(const IrGraph *g, const PassLoraOpts *o);

/* The metadata `lora` of a checkpoint, parsed. */
typedef struct RtLoraMeta {
    PassLoraOpts opts;          /* rank, alpha, scale mode and globs: the pass again */
    double scale;               /* s */
    int ntargets;
    char **target;              /* [ntargets] the adapted weights */
    int *tb;                    /* [ntargets] their layouts */
    char *globs[PASS_MAX_LORA_TARGETS]; /* owned; opts.targets point at them */
} RtLoraMeta;

/* c's metadata `lora` into m (free with rt_lora_meta_free): true with
 * *found=false when c has none (and no adapter tensors: then it is an
 * error), false + err when it is malformed. */
bool rt_lora_meta_read(const RtCkpt *c, RtLoraMeta *m, bool *found, IrError *err);
void rt_lora_meta_free(RtLoraMeta *m);

/* P's f32 data with its adapters folded in (malloc'd, numel of P), or NULL
 * with *found=false when the checkpoint has no adapters for P; NULL with
 * *found=true and err on a bad checkpoint (missing metadata, a missing,
 * misshaped or non-F32 tensor: the message names it). */
float *rt_lora_merged(const RtCkpt *c, const char *P, bool *found, IrError *err);

/* Writes a copy of checkpoint `in` to `out` (atomically) with every adapter
 * folded into its weight and removed, with the adapters' AdamW moments, and
 * the metadata `lora` dropped; model.json, model.sets and every other tensor
 * and metadata entry unchanged (the adapters come from the pass, not the
 * model file, so the merged checkpoint loads as the plain model).  A
 * checkpoint without adapters is copied as it is. */
bool rt_lora_merge_file(const char *in, const char *out, IrError *err);

#endif
