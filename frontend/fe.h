/* fe.h — the JSON graph-file frontend (docs/graph-format.md).
 *
 * A model file is JSON with sections config, inputs, params, modules,
 * nodes and outputs.  fe_load_file parses it with cJSON, evaluates config
 * expressions (after --set overrides), expands modules and `repeat`, and
 * builds an IrGraph whose inputs keep their symbolic dims (B, T).  Every
 * error names the file and a place: line:col for malformed JSON, a JSON
 * path such as /modules/block/nodes/3/in/1 for everything else, with a hint.
 *
 *   FeSet sets[] = {{"n_layers", "2"}};
 *   FeOptions opt = {sets, 1};
 *   IrError err = {0};
 *   FeModel *m = fe_load_file("models/gpt2-small.json", &opt, &err);
 *   if (!m) { ir_error_print(&err, stderr); return 1; }
 *   ir_print(m->graph, stdout);
 *   fe_model_free(m);
 */
#ifndef GRADC_FE_H
#define GRADC_FE_H

#include "ir/ir.h"

typedef struct FeSet {
    const char *key;
    const char *value;   /* a number or a config expression */
} FeSet;

typedef struct FeOptions {
    const FeSet *sets;
    int nsets;
} FeOptions;

typedef struct FeConfigEntry {
    const char *key;
    double value;
} FeConfigEntry;

typedef struct FeModel {
    IrGraph *graph;
    const char *path;
    FeConfigEntry *config;   /* every config key after overrides, in file order */
    int nconfig;
} FeModel;

FeModel *fe_load_file(const char *path, const FeOptions *opt, IrError *err);
FeModel *fe_load_string(const char *json, const char *path, const FeOptions *opt, IrError *err);
void fe_model_free(FeModel *m);
/* The model file with its chain of "base" files merged, as compact JSON
 * (malloc'd): what checkpoints store so they do not depend on the files. */
char *fe_flatten_file(const char *path, IrError *err);
/* false when the key is not in the config */
bool fe_config(const FeModel *m, const char *key, double *value);

#endif
