/* gpt2_model.c — the model of an imported GPT-2.
 *
 * import-gpt2 writes checkpoints of models/gpt2-small.json, whatever the
 * folder it runs in: the file is compiled into gradc (CMakeLists.txt makes
 * cli_model_gpt2_small[] from it), stored compact in the checkpoint's
 * model.json as `gradc train` stores a model file, and loaded here through
 * the frontend at the imported sizes so that the params written are checked
 * against the very graph that `generate` and `train --init-from` will build.
 */
#include "cli/gpt2_model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *sets_json(const RtHfConfig *c)
{
    const char *keys[] = {"vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"};
    const int64_t vals[] = {c->vocab, c->ctx, c->dim, c->heads, c->layers};
    cJSON *o = cJSON_CreateObject();
    char num[32];
    for (int k = 0; k < 5; k++) {
        snprintf(num, sizeof num, "%lld", (long long)vals[k]);
        cJSON_AddStringToObject(o, keys[k], num);
    }
    cJSON_AddStringToObject(o, "qkv_bias", "1");
    cJSON_AddStringToObject(o, "tie_embeddings", "1");
    cJSON_AddStringToObject(o, "drop_rate", "0.1");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

bool cli_gpt2_model_load(CliGpt2Model *m, const RtHfConfig *cfg, IrError *err)
{
    cJSON *doc = cJSON_Parse(cli_model_gpt2_small);
    IR_ASSERT(doc);
    m->json = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    m->sets_json = sets_json(cfg);
    cJSON *o = cJSON_Parse(m->sets_json);
    FeSet sets[16];
    int n = 0;
    for (const cJSON *e = o->child; e && n < 16; e = e->next)
        sets[n++] = (FeSet){e->string, e->valuestring};
    FeOptions fo = {sets, n};
    m->fe = fe_load_string(m->json, CLI_GPT2_MODEL_PATH " (built into gradc)", &fo, err);
    cJSON_Delete(o);
    return m->fe != NULL;
}

static const RtHfTensor *find(const RtHfTensors *ts, const char *name)
{
    for (int i = 0; i < ts->n; i++)
        if (!strcmp(ts->t[i].name, name))
            return &ts->t[i];
    return NULL;
}

static bool same_shape(const IrNode *n, const RtHfTensor *t)
{
    int64_t d;
    if (n->shape.rank != t->rank)
        return false;
    for (int k = 0; k < t->rank; k++)
        if (!ir_dim_is_const(n->shape.d[k], &d) || d != t->shape[k])
            return false;
    return true;
}

bool cli_gpt2_model_check(const CliGpt2Model *m, const RtHfTensors *ts, IrError *err)
{
    const IrGraph *g = m->fe->graph;
    int nparams = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_PARAM)
            continue;
        nparams++;
        const RtHfTensor *t = find(ts, n->name);
        if (!t || !same_shape(n, t)) {
            ir_error(err, "internal: the GPT-2 mapping gives no param '%s' of the model's "
                     "shape", n->name);
            return false;
        }
    }
    if (nparams == ts->n)
        return true;
    ir_error(err, "internal: the GPT-2 mapping gives %d params, the model has %d", ts->n,
             nparams);
    return false;
}

void cli_gpt2_model_free(CliGpt2Model *m)
{
    if (m->fe)
        fe_model_free(m->fe);
    free(m->json);
    free(m->sets_json);
    *m = (CliGpt2Model){0};
}
