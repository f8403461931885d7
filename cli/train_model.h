/* train_model.h — the model of `gradc train`, loaded by the command
 * (cli/train_model.c) and handed to the runtime as an RtTrainModel. */
#ifndef GRADC_CLI_TRAIN_MODEL_H
#define GRADC_CLI_TRAIN_MODEL_H

#include "cli.h"
#include "runtime/rt_train.h"

#define CLI_TRAIN_CKPT_SETS 64   /* at most this many of a checkpoint's model.sets */

typedef struct CliTrainModel {
    RtCkpt *ckpt;              /* --resume's checkpoint; NULL without */
    FeModel *fe;
    FeSet sets[CLI_TRAIN_CKPT_SETS + CLI_MAX_SETS];   /* the checkpoint's, then the flags' */
    int nsets;
    char *json, *name, *sets_json;
} CliTrainModel;

/* Opens --resume's checkpoint (o->resume, if any: its warnings printed, its
 * format checked) and loads the model: `path` with the flags' --set values,
 * or without a path the model.json of that checkpoint (or of
 * o->init_from_ckpt, --init-from's, opened by the caller) with its
 * model.sets and then the flags' (which win).  Fills o->model and o->resume_ckpt, which borrow
 * from m until cli_train_model_free.  false + err. */
bool cli_train_model_load(CliTrainModel *m, const char *path, const CliModelArgs *flags,
                          RtTrainOptions *o, IrError *err);
void cli_train_model_free(CliTrainModel *m);

#endif
