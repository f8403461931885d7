/* gpt2_model.h — the model of an imported GPT-2 (cli/gpt2_model.c): the
 * built-in copy of models/gpt2-small.json at a checkpoint's sizes. */
#ifndef GRADC_CLI_GPT2_MODEL_H
#define GRADC_CLI_GPT2_MODEL_H

#include "cli.h"
#include "runtime/rt_hf.h"

/* The metadata "format" of a checkpoint that holds weights only: no
 * optimizer state, no run (so `train --resume` refuses it; --init-from and
 * generate take it). */
#define CLI_GPT2_WEIGHTS_FORMAT "gradc.weights.v1"
#define CLI_GPT2_MODEL_PATH "models/gpt2-small.json"

/* models/gpt2-small.json, compiled in by CMakeLists.txt. */
extern const char cli_model_gpt2_small[];

typedef struct CliGpt2Model {
    char *json;        /* the model file as compact JSON (metadata model.json) */
    char *sets_json;   /* {"vocab_size":"50257",...} (metadata model.sets) */
    FeModel *fe;       /* loaded at those sets */
} CliGpt2Model;

/* Loads the built-in model at cfg's sizes with qkv_bias=1,
 * tie_embeddings=1 and drop_rate=0.1 (GPT-2's own). */
bool cli_gpt2_model_load(CliGpt2Model *m, const RtHfConfig *cfg, IrError *err);
/* Every param of the model is in ts with its shape, and ts holds nothing
 * else (a mismatch is a bug of the mapping: an internal error). */
bool cli_gpt2_model_check(const CliGpt2Model *m, const RtHfTensors *ts, IrError *err);
void cli_gpt2_model_free(CliGpt2Model *m);

#endif
