/* cmd_score.c — `gradc score`: objective scores of a responses file (the
 * book's instruction-data-with-response.json, from `gradc respond` or
 * `gradc finetune instruct`).
 *
 * The book scores responses with a large local model as a judge; this
 * machine has none, so the scores here are the ones that need no judge
 * (runtime/rt_inst_score.c): exact match, SQuAD's token F1 and, with
 * --ckpt, the model's per-token loss on the reference outputs and its
 * perplexity.  A judge would be one more column: docs/finetune.md keeps
 * the book's prompt for it.
 */
#include "cli.h"
#include "cli/ckpt_model.h"
#include "runtime/rt_inst_gen.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc score RESPONSES.json [--ckpt CKPT] [flags]\n"
    "\n"
    "Scores the \"model_response\" of each entry of RESPONSES.json (a JSON array or\n"
    "JSON Lines of {instruction, input, output, model_response}) against its\n"
    "\"output\": exact match (as written, and after SQuAD's normalization: lower\n"
    "case, no punctuation, no articles) and SQuAD's token F1.  With --ckpt, also\n"
    "the mean cross-entropy per token of the reference outputs under that model,\n"
    "given the prompts, and its perplexity.\n"
    "\n";

static const char tail[] =
    "examples:\n"
    "  gradc score runs/instruct/instruction-data-with-response.json \\\n"
    "      --ckpt runs/instruct/ckpt.safetensors\n"
    "  gradc score before.json --json\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

typedef struct ScoreArgs {
    const char *file, *ckpt, *style, *bpe_dir;
    bool json;
    int threads;
    CliModelArgs model;
} ScoreArgs;

static const CliFlag flags[] = {
    {"--ckpt", CLI_STR, CLI_AT(ScoreArgs, ckpt), .meta = "CKPT",
     .help = "also the reference outputs' loss and perplexity under this model"},
    {"--prompt-style", CLI_STR, CLI_AT(ScoreArgs, style), .meta = "alpaca|phi3",
     .def = "the checkpoint's, else alpaca", .help = "the prompt template of the loss"},
    {"--json", CLI_TRUE, CLI_AT(ScoreArgs, json), .help = "print the scores as one JSON object"},
    {"--bpe-dir", CLI_STR, CLI_AT(ScoreArgs, bpe_dir), .meta = "DIR", .def = "the data cache",
     .help = "encoder.json + vocab.bpe"},
    {"--set", CLI_CALL, CLI_AT(ScoreArgs, model), .fn = cli_set_fn, .meta = "k=v",
     .help = "override the checkpoint's model config (repeatable)"},
    CLI_FLAG_THREADS(ScoreArgs, threads, "threads"),
    {0}};

const CliSpec cmd_score_spec = {"score", usage, flags, tail, CLI_ONE_INPUT(ScoreArgs, file)};

typedef struct Scores {
    int64_t n, exact, exact_norm, tokens;
    double f1, loss;
} Scores;

/* model_response of entry e, or an error naming it. */
static const char *response_of(const char *path, const RtInstEntry *e, cJSON **obj,
                               IrError *err)
{
    *obj = cJSON_Parse(e->json);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(*obj, "model_response");
    if (cJSON_IsString(r))
        return r->valuestring;
    ir_error(err, "%s: entry %lld (line %lld): %s", path, (long long)e->index,
             (long long)e->line,
             r ? "the field \"model_response\" is not a string" : "no \"model_response\" field");
    ir_error_hint(err, "score a file of `gradc respond` or `gradc finetune instruct`");
    return NULL;
}

static bool text_scores(const char *path, const RtInstSet *set, Scores *s, IrError *err)
{
    for (int64_t i = 0; i < set->n; i++) {
        cJSON *obj;
        const char *r = response_of(path, &set->e[i], &obj, err);
        if (r) {
            s->exact += rt_score_exact(r, set->e[i].output, false);
            s->exact_norm += rt_score_exact(r, set->e[i].output, true);
            s->f1 += rt_score_f1(r, set->e[i].output);
        }
        cJSON_Delete(obj);
        if (!r)
            return false;
    }
    s->n = set->n;
    s->f1 /= (double)(s->n ? s->n : 1);
    return true;
}

/* T: the longest prompt + reference of the file, at most the window. */
static bool longest(const CliCkptModel *m, const RtInstSet *set, RtPromptStyle st, int64_t *T,
                    IrError *err)
{
    *T = 1;
    for (int64_t i = 0; i < set->n; i++) {
        RtInstExample ex = {0};
        if (!rt_inst_encode(m->tok, &set->e[i], st, &ex, err))
            return false;
        *T = ex.n > *T ? ex.n : *T;
        free(ex.ids);
    }
    *T = *T < m->window ? *T : m->window;
    return true;
}

static bool model_scores(const ScoreArgs *a, const RtInstSet *set, Scores *s, IrError *err)
{
    CliCkptModel m;
    RtPromptStyle st;
    int64_t T;
    RtScorer *sc = NULL;
    bool ok = cli_ckpt_model_open(&m, a->ckpt, &a->model, a->bpe_dir, err) &&
              cli_prompt_style(m.c, a->style, &st, err) && longest(&m, set, st, &T, err) &&
              (sc = rt_scorer_new(m.model->graph, m.c, T, a->threads, err)) != NULL;
    double sum = 0;
    for (int64_t i = 0; ok && i < set->n; i++) {
        double v;
        int64_t k;
        ok = rt_scorer_entry(sc, m.tok, &set->e[i], st, &v, &k, err);
        sum += v;
        s->tokens += k;
    }
    s->loss = sum / (double)(s->tokens ? s->tokens : 1);
    rt_scorer_free(sc);
    cli_ckpt_model_close(&m);
    return ok;
}

static void print(const ScoreArgs *a, const Scores *s)
{
    double n = (double)(s->n ? s->n : 1);
    if (a->json) {
        printf("{\"file\": \"%s\", \"entries\": %lld, \"exact\": %.6f, \"exact_norm\": %.6f, "
               "\"f1\": %.6f", a->file, (long long)s->n, (double)s->exact / n,
               (double)s->exact_norm / n, s->f1);
        if (a->ckpt)
            printf(", \"loss\": %.6f, \"ppl\": %.6f, \"tokens\": %lld", s->loss, exp(s->loss),
                   (long long)s->tokens);
        printf("}\n");
        return;
    }
    printf("%s: %lld responses\n", a->file, (long long)s->n);
    printf("  exact match            %5lld  %6.2f%%\n", (long long)s->exact,
           100.0 * (double)s->exact / n);
    printf("  exact match (SQuAD)    %5lld  %6.2f%%\n", (long long)s->exact_norm,
           100.0 * (double)s->exact_norm / n);
    printf("  token F1 (SQuAD)              %6.2f%%\n", 100.0 * s->f1);
    if (a->ckpt)
        printf("  reference loss         %.4f per token over %lld tokens (perplexity %.2f) "
               "under %s\n", s->loss, (long long)s->tokens, exp(s->loss), a->ckpt);
}

int cmd_score(int argc, char **argv)
{
    ScoreArgs a = {0};
    int r = cli_parse(&cmd_score_spec, argc, argv, &a);
    if (r >= 0)
        return r;
    if (!a.file)
        return cli_usage_error("score", "missing RESPONSES.json");
    IrError err = {0};
    RtInstSet set = {0};
    Scores s = {0};
    bool ok = rt_inst_read(a.file, &set, &err) && text_scores(a.file, &set, &s, &err) &&
              (!a.ckpt || model_scores(&a, &set, &s, &err));
    if (ok)
        print(&a, &s);
    rt_inst_set_free(&set);
    return ok ? 0 : cli_fail(&err);
}
