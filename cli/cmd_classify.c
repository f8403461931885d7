/* cmd_classify.c — `gradc classify`: the label of each text, by a model of
 * `gradc finetune classify`.
 *
 * The checkpoint holds all it needs (rt_finetune_io.c): the model file and
 * --set values (model.json, model.sets), the label names in id order
 * (cls.labels), the padded length and the pad id (cls.pad_len,
 * cls.pad_id).  Each text is encoded with GPT-2's BPE, truncated or padded
 * as in training (rt_cls_encode_text), and run through the forward at B = 1
 * (rt_classify.c); the line printed is the label of the largest logit and
 * its softmax probability.
 */
#include "cli.h"
#include "cli/ft_model.h"
#include "runtime/rt_cls_data.h"
#include "runtime/rt_finetune.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc classify CKPT --text TEXT [--text TEXT ...] [flags]\n"
    "       gradc classify CKPT --file FILE [flags]\n"
    "\n"
    "Classifies texts with a checkpoint of `gradc finetune classify`: each text is\n"
    "tokenized, truncated and padded as in fine-tuning, and the line printed is\n"
    "LABEL<TAB>PROB, the predicted label and its softmax probability, one line per\n"
    "text in order.\n"
    "\n";

static const char tail[] =
    "examples:\n"
    "  gradc classify runs/spam/ckpt.safetensors --text 'WIN a FREE prize! Call now'\n"
    "  gradc classify runs/spam/ckpt.safetensors --file messages.txt\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

#define CLS_MAX_TEXTS 256

typedef struct ClsArgs {
    const char *ckpt, *file, *bpe_dir;
    const char *text[CLS_MAX_TEXTS];
    int ntext;
    int threads;
} ClsArgs;

static const CliFlag flags[] = {
    {"--text", CLI_LIST, CLI_AT(ClsArgs, text), .count = offsetof(ClsArgs, ntext),
     .meta = "TEXT", .help = "a text to classify (repeatable)"},
    {"--file", CLI_STR, CLI_AT(ClsArgs, file), .meta = "FILE",
     .help = "classify every line of FILE (blank lines are skipped)"},
    {"--bpe-dir", CLI_STR, CLI_AT(ClsArgs, bpe_dir), .meta = "DIR", .def = "the data cache",
     .help = "encoder.json + vocab.bpe"},
    CLI_FLAG_THREADS(ClsArgs, threads, "threads"),
    {0}};

const CliSpec cmd_classify_spec = {"classify", usage, flags, tail,
                                   CLI_ONE_INPUT(ClsArgs, ckpt)};

typedef struct Classify {
    RtCkpt *c;
    FeModel *fe;
    RtTokenizer *tok;
    RtClassifier *k;
    cJSON *labels;
    int64_t T;
    int32_t pad_id;
    int32_t *x;
    double *probs;
} Classify;

static bool bad_meta(const RtCkpt *c, const char *key, const char *want, IrError *err)
{
    ir_error(err, "checkpoint '%s': metadata %s is missing or not %s", c->path, key, want);
    ir_error_hint(err, "gradc classify takes a checkpoint of gradc finetune classify");
    return false;
}

static bool read_meta(Classify *s, IrError *err)
{
    const RtCkpt *c = s->c;
    const char *task = rt_ckpt_meta_get(c, "task");
    if (!rt_ft_ckpt_check(c, err))
        return false;
    if (!task || strcmp(task, "classify"))
        return bad_meta(c, "task", "'classify'", err);
    s->labels = cJSON_Parse(rt_ckpt_meta_get(c, "cls.labels") ?: "");
    if (!cJSON_IsArray(s->labels) || cJSON_GetArraySize(s->labels) < 2)
        return bad_meta(c, "cls.labels", "a JSON array of label names", err);
    const char *t = rt_ckpt_meta_get(c, "cls.pad_len"), *p = rt_ckpt_meta_get(c, "cls.pad_id");
    s->T = t ? atoll(t) : 0;
    s->pad_id = p ? (int32_t)atol(p) : 50256;
    return s->T > 0 || bad_meta(c, "cls.pad_len", "a positive count", err);
}

static bool open_all(Classify *s, const ClsArgs *a, IrError *err)
{
    if (!(s->c = rt_ckpt_read(a->ckpt, err)))
        return false;
    rt_ckpt_print_warnings(s->c, stderr);
    if (!read_meta(s, err) || !(s->fe = cli_ft_ckpt_model(s->c, err)) ||
        !(s->tok = rt_tokenizer_gpt2(a->bpe_dir, err)) ||
        !(s->k = rt_classifier_new(s->fe->graph, s->c, s->T, a->threads, err)))
        return false;
    if (rt_classifier_classes(s->k) != cJSON_GetArraySize(s->labels)) {
        ir_error(err, "checkpoint '%s' names %d labels but its model has %lld classes",
                 s->c->path, cJSON_GetArraySize(s->labels),
                 (long long)rt_classifier_classes(s->k));
        return false;
    }
    s->x = calloc((size_t)s->T, sizeof *s->x);
    s->probs = calloc((size_t)rt_classifier_classes(s->k), sizeof *s->probs);
    return true;
}

static bool one(Classify *s, const char *text, size_t len, IrError *err)
{
    int32_t last;
    if (!rt_cls_encode_text(s->tok, text, len, s->T, s->pad_id, s->x, &last, NULL, err) ||
        !rt_classifier_run(s->k, s->x, last, s->probs, err))
        return false;
    int best = 0;
    for (int c = 1; c < cJSON_GetArraySize(s->labels); c++)
        best = s->probs[c] > s->probs[best] ? c : best;
    const cJSON *name = cJSON_GetArrayItem(s->labels, best);
    printf("%s\t%.4f\n", cJSON_IsString(name) ? name->valuestring : "?", s->probs[best]);
    return true;
}

/* Every non-blank line of the file; errors name FILE:LINE. */
static bool each_line(Classify *s, const char *path, IrError *err)
{
    size_t len;
    char *buf = rt_file_read(path, &len, err);
    bool ok = buf != NULL;
    long line = 0;
    for (char *p = buf, *end; ok && p && p < buf + len; p = end + 1) {
        end = memchr(p, '\n', (size_t)(buf + len - p));
        end = end ? end : buf + len;
        line++;
        size_t n = (size_t)(end - p) - (end > p && end[-1] == '\r');
        if (n && !(ok = one(s, p, n, err)))
            ir_error_where(err, "%s:%ld", path, line);
    }
    free(buf);
    return ok;
}

static void close_all(Classify *s)
{
    rt_classifier_free(s->k);
    rt_tokenizer_free(s->tok);
    if (s->fe)
        fe_model_free(s->fe);
    rt_ckpt_free(s->c);
    cJSON_Delete(s->labels);
    free(s->x);
    free(s->probs);
}

int cmd_classify(int argc, char **argv)
{
    ClsArgs a = {0};
    int r = cli_parse(&cmd_classify_spec, argc, argv, &a);
    if (r >= 0)
        return r;
    if (!a.ckpt)
        return cli_usage_error("classify", "missing CKPT (a checkpoint of finetune classify)");
    if (!a.ntext == !a.file)
        return cli_usage_error("classify", a.file ? "--text and --file exclude each other"
                                                  : "missing --text TEXT (or --file FILE)");
    IrError err = {0};
    Classify s = {0};
    bool ok = open_all(&s, &a, &err);
    for (int i = 0; ok && i < a.ntext; i++)
        ok = one(&s, a.text[i], strlen(a.text[i]), &err);
    ok = ok && (!a.file || each_line(&s, a.file, &err));
    close_all(&s);
    return ok ? 0 : cli_fail(&err);
}
