/* rt_init_from.c — a model's params from another run's checkpoint: what
 * `gradc finetune --init-from` and `gradc train --init-from` start from.
 *
 * Unlike a resume (rt_train_io.c), the checkpoint may be of another model
 * of the same size: a pretrained GPT for a classifier, a checkpoint without
 * the LoRA adapters a pass has just added.  So it is matched by name only:
 *
 *   a param the checkpoint holds      copied, after its shape is checked;
 *   a param it lacks (or holds at     keeps its init when it matches one of
 *     another shape) that is new       the caller's new-param globs (the
 *                                      classifier head, the adapters);
 *   any other param it lacks          an error that names it;
 *   its other tensors                 ignored (AdamW moments, a pretrained
 *                                      LM head, a char vocabulary).
 *
 * A mismatched shape is reported as a size mismatch: the usual cause is a
 * checkpoint pretrained at another emb_dim or context length.
 */
#include "runtime/rt_train.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

static bool is_new(const char *name, const char *const *globs, int n)
{
    for (int k = 0; k < n; k++)
        if (!fnmatch(globs[k], name, 0))
            return true;
    return false;
}

static bool same_shape(const IrNode *n, const RtCkptTensor *t)
{
    if (t->rank != n->shape.rank)
        return false;
    for (int d = 0; d < t->rank; d++) {
        int64_t v;
        if (!ir_dim_is_const(n->shape.d[d], &v) || v != t->shape[d])
            return false;
    }
    return true;
}

static void ckpt_shape_str(const RtCkptTensor *t, char *buf, size_t cap)
{
    int len = snprintf(buf, cap, "[");
    for (int d = 0; d < t->rank && len < (int)cap; d++)
        len += snprintf(buf + len, cap - (size_t)len, d ? ",%lld" : "%lld",
                        (long long)t->shape[d]);
    if (len < (int)cap)
        snprintf(buf + len, cap - (size_t)len, "]");
}

static bool bad_shape(const RtCkpt *c, const IrNode *n, const RtCkptTensor *t, IrError *err)
{
    char got[128], want[128];
    IrShape s = n->shape;
    ckpt_shape_str(t, got, sizeof got);
    ir_shape_str(&s, NULL, want, sizeof want);
    ir_error(err, "checkpoint '%s': tensor %s has shape %s, the model wants %s: was it "
             "pretrained at another size?", c->path, n->name, got, want);
    ir_error_hint(err, "pass the --set values the checkpoint was made with (its metadata "
                  "model.sets lists them)");
    return false;
}

static bool bad_dtype(const RtCkpt *c, const IrNode *n, const RtCkptTensor *t, IrError *err)
{
    ir_error(err, "checkpoint '%s': tensor %s is %s, the model wants F32", c->path, n->name,
             rt_dtype_name(t->dtype));
    ir_error_hint(err, "convert the checkpoint to f32 (gradc import-gpt2 does for HF files)");
    return false;
}

static bool missing(const RtCkpt *c, const IrGraph *g, const char *first, int nmissing,
                    IrError *err)
{
    ir_error(err, "checkpoint '%s' has no tensor %s%s (%d param%s of model '%s' missing)",
             c->path, first, nmissing > 1 ? " and others" : "", nmissing,
             nmissing > 1 ? "s" : "", g->name ? g->name : "?");
    ir_error_hint(err, "initialize from a checkpoint of the same model family (a GPT "
                  "pretrained with gradc train, or one from gradc import-gpt2)");
    return false;
}

/* One param: copied (+1 to *copied), left at its init (new), or an error;
 * *miss counts the absent params that are not new. */
static bool init_one(RtExec *ex, const IrNode *n, const RtCkpt *c, const char *const *globs,
                     int nglobs, RtInitFromStats *st, IrError *err)
{
    const RtCkptTensor *t = rt_ckpt_find(c, n->name);
    bool fresh = is_new(n->name, globs, nglobs);
    if (t && !same_shape(n, t) && !fresh)
        return bad_shape(c, n, t, err);
    if (t && same_shape(n, t) && t->dtype != RT_DT_F32)
        return bad_dtype(c, n, t, err);
    if (t && same_shape(n, t)) {
        memcpy(rt_exec_param(ex, n->name), t->data, (size_t)t->bytes);
        st->copied++;
        st->copied_values += t->numel;
    } else if (fresh) {
        st->kept++;
    } else {
        st->missing++;
    }
    return true;
}

bool rt_params_init_from(RtExec *ex, const IrGraph *g, const RtCkpt *c,
                         const char *const *new_globs, int nnew, RtInitFromStats *stats,
                         IrError *err)
{
    RtInitFromStats st = {0};
    const char *first = NULL;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if (n->op != OP_PARAM || !n->name)
            continue;
        int before = st.missing;
        if (!init_one(ex, n, c, new_globs, nnew, &st, err))
            return false;
        if (st.missing > before && !first)
            first = n->name;
    }
    if (stats)
        *stats = st;
    return st.missing ? missing(c, g, first, st.missing, err) : true;
}
