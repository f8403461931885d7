/* rt_hf.h — GPT-2 weights in the Hugging Face layout, both ways (runtime/rt_hf.c).
 *
 * Hugging Face's GPT-2 (transformers' GPT2Model) names and lays out its
 * weights differently from gradc's GPT (the book's GPTModel, whose names
 * gradc's param names are: docs/graph-format.md).  With D = n_embd:
 *
 *   HF (optional prefix "transformer.")    gradc
 *   wte.weight          [V, D]             tok_emb.weight      [V, D]
 *   wpe.weight          [P, D]             pos_emb.weight      [P, D]
 *   h.N.ln_1.weight/bias [D]               trf_blocks.N.norm1.scale/shift
 *   h.N.attn.c_attn.weight [D, 3D]         trf_blocks.N.att.W_query/W_key/W_value.weight
 *                                            [D, D] each: the transpose of columns
 *                                            0:D, D:2D, 2D:3D (Conv1D is [in, out],
 *                                            gradc's matmul reads [out, in] with tb=1)
 *   h.N.attn.c_attn.bias [3D]              ...W_query/W_key/W_value.bias [D]
 *   h.N.attn.c_proj.weight [D, D] + bias   ...att.out_proj.weight (transposed) + bias
 *   h.N.ln_2.weight/bias                   ...norm2.scale/shift
 *   h.N.mlp.c_fc.weight [D, 4D] + bias     ...ff.layers.0.weight [4D, D] + bias
 *   h.N.mlp.c_proj.weight [4D, D] + bias   ...ff.layers.2.weight [D, 4D] + bias
 *   ln_f.weight/bias    [D]                final_norm.scale/shift
 *   lm_head.weight      [V, D] (optional)  out_head.weight, tied to tok_emb.weight
 *
 * Import accepts F32, F16 and BF16 tensors (converted exactly to f32), the
 * optional lm_head.weight only when it equals wte.weight (gradc ties them),
 * and ignores by name the causal-mask buffers h.N.attn.bias and
 * h.N.attn.masked_bias that older files carry.  Any other tensor, a missing
 * one or one of the wrong shape is an error naming the file and the tensor.
 * Export writes F32 tensors in the same layout; the mapping is exact both
 * ways (a transpose and a split or concatenation), so export then import
 * gives back the same values bit for bit.
 *
 *   RtHfConfig cfg;
 *   RtCkpt *hf = rt_ckpt_read("model.safetensors", &err);
 *   if (rt_hf_infer(hf, NULL, &cfg, &err) && rt_hf_import(hf, &cfg, &params, &err)) ...
 *   rt_hf_params_free(&params);
 */
#ifndef GRADC_RT_HF_H
#define GRADC_RT_HF_H

#include "runtime/rt_ckpt.h"

#include <stdbool.h>
#include <stdint.h>

/* A GPT-2's sizes, with config.json's names in comments. */
typedef struct RtHfConfig {
    int64_t vocab;    /* vocab_size */
    int64_t ctx;      /* n_positions */
    int64_t dim;      /* n_embd */
    int64_t layers;   /* n_layer */
    int64_t heads;    /* n_head */
} RtHfConfig;

/* One converted tensor: its name, shape and f32 data (malloc'd). */
typedef struct RtHfTensor {
    char name[96];
    int rank;
    int64_t shape[2];
    float *data;
} RtHfTensor;

typedef struct RtHfTensors {
    int n, cap;
    RtHfTensor *t;
} RtHfTensors;

void rt_hf_tensors_free(RtHfTensors *ts);

/* Reads a Hugging Face config.json (n_embd, n_layer, n_head, n_positions or
 * n_ctx, vocab_size) and refuses settings gradc's GPT-2 does not have (another
 * activation_function than gelu_new, layer_norm_epsilon other than 1e-5,
 * n_inner other than 4 n_embd, untied embeddings).  false + err naming the
 * file and the key. */
bool rt_hf_config_read(const char *path, RtHfConfig *cfg, IrError *err);

/* The sizes of the GPT-2 in hf: with `given` (from config.json) checked
 * against wte.weight and wpe.weight; without, read from the shapes (D and V
 * from wte, P from wpe, the layers from the h.N names) with GPT-2's head
 * count for D (768: 12, 1024: 16, 1280: 20, 1600: 25; any other D is an
 * error that asks for --config). */
bool rt_hf_infer(const RtCkpt *hf, const RtHfConfig *given, RtHfConfig *cfg, IrError *err);

/* Every gradc param of the model (names above), converted from hf, which
 * must hold exactly the tensors of cfg's GPT-2 (see the top). */
bool rt_hf_import(const RtCkpt *hf, const RtHfConfig *cfg, RtHfTensors *out, IrError *err);

/* Returns param P of a gradc checkpoint as f32 (numel elements; *owned set
 * when the caller must free it), or NULL with *found = false when absent;
 * NULL + err on a bad checkpoint.  rt_hf_export reads every param through
 * it, so that LoRA adapters can be folded in first. */
typedef const float *(*RtHfParamFn)(void *ctx, const RtCkpt *c, const char *P, bool *found,
                                    float **owned, IrError *err);

/* The HF tensors of a gradc GPT-2 checkpoint c (with "transformer." before
 * every name when `prefix`), params read through get (NULL: c's f32
 * tensors, with any LoRA adapters of a param folded in by rt_lora_merged).
 * A model without attention biases (qkv_bias=0) gets zero
 * c_attn.bias, which computes the same; an untied out_head.weight [V, D]
 * becomes lm_head.weight, and so does a tied head with LoRA adapters
 * (tok_emb.weight.lora_A/B, which the embedding lookup does not use).
 * Refuses, naming the tensor, a checkpoint that lacks a param of GPT-2 or
 * holds a param GPT-2 has no place for (AdamW
 * moments adam.m.* / adam.v.* and tokenizer.* are left out silently, LoRA
 * adapters *.lora_A / *.lora_B are get's to fold in).  The sizes found are
 * returned in *cfg (heads 0: the tensors do not say). */
bool rt_hf_export(const RtCkpt *c, bool prefix, RtHfParamFn get, void *ctx, RtHfTensors *out,
                  RtHfConfig *cfg, IrError *err);

#endif
