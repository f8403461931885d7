/* ft_model.h — the model of a fine-tuning run (`gradc finetune`), loaded by
 * the command (cli/ft_model.c) and handed to the runtime as an RtFtModel. */
#ifndef GRADC_CLI_FT_MODEL_H
#define GRADC_CLI_FT_MODEL_H

#include "cli.h"
#include "runtime/rt_data.h"
#include "runtime/rt_finetune.h"

#define CLI_FT_MAX_SETS 16

typedef struct CliFtModelArgs {
    const char *init;          /* --init-from CKPT */
    const char *model_path;    /* --model; NULL: models/gpt2-classifier.json */
    const char *bpe_dir;       /* NULL: the data cache */
    CliModelArgs model;        /* --set and --lora-* */
} CliFtModelArgs;

typedef struct CliFtModel {
    RtCkpt *init;
    RtTokenizer *tok;          /* GPT-2 BPE */
    FeSet sets[CLI_FT_MAX_SETS + 1 + CLI_MAX_SETS];  /* the checkpoint's sizes, n_classes,
                                                     * then the flags' */
    char values[CLI_FT_MAX_SETS][32];
    int nsets, nsize;
    int64_t context_length, n_layers;
    char n_classes[32];
    FeModel *fe;
    char *json, *name, *sets_json;
    char *lora_json;           /* metadata `lora` (runtime/rt_lora.h); NULL without LoRA */
    RtFtModel model;           /* what rt_ft_new takes; borrows from here */
} CliFtModel;

/* Opens --init-from's checkpoint (its warnings printed), checks that it is
 * a GPT-2-tokenizer model, reads its sizes (its model.json at its
 * model.sets: vocab_size, context_length, emb_dim, n_heads, n_layers,
 * qkv_bias, tie_embeddings; the flags' --set win) and loads the GPT-2 BPE.
 * false + err naming the checkpoint. */
bool cli_ft_model_open(CliFtModel *m, const CliFtModelArgs *a, IrError *err);
/* Loads the classifier model file at those sizes with n_classes and the
 * flags' --set values, and adds LoRA adapters with --lora-rank. */
bool cli_ft_model_load(CliFtModel *m, const CliFtModelArgs *a, int n_classes, IrError *err);
/* The language model of `finetune instruct`: --model FILE at the
 * checkpoint's sizes, or else the checkpoint's own model (its metadata
 * model.json at its model.sets) with drop_rate 0, as the book's chapter 7;
 * the flags' --set values win; LoRA adapters with --lora-rank. */
bool cli_ft_model_load_lm(CliFtModel *m, const CliFtModelArgs *a, IrError *err);
void cli_ft_model_free(CliFtModel *m);
/* The model a checkpoint records: its metadata model.json at its model.sets
 * (errors name the checkpoint).  NULL + err. */
FeModel *cli_ft_ckpt_model(const RtCkpt *c, IrError *err);

#endif
