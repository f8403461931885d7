/* ckpt_model.h — the model, tokenizer and window that a checkpoint records,
 * for the commands that run a trained model (generate, respond, score):
 * cli/ckpt_model.c. */
#ifndef GRADC_CLI_CKPT_MODEL_H
#define GRADC_CLI_CKPT_MODEL_H

#include "cli.h"
#include "runtime/rt_ckpt.h"
#include "runtime/rt_data.h"
#include "runtime/rt_inst_data.h"

typedef struct CliCkptModel {
    RtCkpt *c;
    FeModel *model;
    FeSet sets[CLI_MAX_SETS * 2];
    int nsets;
    RtTokenizer *tok;
    int64_t window;            /* the model's context_length (256 without one) */
} CliCkptModel;

/* Reads the checkpoint at path (its warnings printed to stderr), loads its
 * metadata model.json at its model.sets and then the flags' --set values
 * (sets may be NULL), and its tokenizer (bpe_dir: NULL for the data cache).
 * A training checkpoint (gradc train, import-gpt2) and a fine-tuning one
 * both record these.  false + err naming the checkpoint; m is then still to
 * be closed. */
bool cli_ckpt_model_open(CliCkptModel *m, const char *path, const CliModelArgs *sets,
                         const char *bpe_dir, IrError *err);
void cli_ckpt_model_close(CliCkptModel *m);

/* The prompt style: the flag's, else the checkpoint's metadata
 * inst.prompt_style (a finetune instruct checkpoint), else alpaca
 * (cmd_respond.c). */
bool cli_prompt_style(const RtCkpt *c, const char *flag, RtPromptStyle *s, IrError *err);

#endif
