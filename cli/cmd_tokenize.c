/* cmd_tokenize.c — `gradc tokenize`: text to token ids and back.
 *
 * Encoding prints the ids of each FILE on one line, separated by spaces, so
 * that one run can tokenize many files (tests/scripts/bpe_vs_tiktoken.sh
 * diffs them against js-tiktoken).  --decode reads whitespace-separated ids
 * and writes the bytes they stand for, unchanged, to stdout.  The GPT-2 BPE
 * comes from --bpe-dir or the data cache (rt_data_dir); the char tokenizer's
 * vocabulary is built from --vocab-from FILE (by default, when encoding,
 * from the input itself), the way `gradc train --tokenizer char` builds it
 * from the training text.
 */
#include "cli.h"
#include "runtime/rt_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char cmd_tokenize_usage[] =
    "usage: gradc tokenize [--tokenizer gpt2|char] [--bpe-dir DIR] [--special]\n"
    "                      [--decode] [--vocab-from FILE] [--stats] FILE...\n"
    "\n"
    "Encodes each FILE (- for stdin) and prints its token ids on one line,\n"
    "separated by spaces.  With --decode, each FILE holds ids (separated by any\n"
    "white space) and their bytes are written to stdout.\n"
    "\n"
    "flags:\n"
    "  --tokenizer gpt2|char  GPT-2 byte-level BPE (default; token-exact with\n"
    "                         tiktoken's gpt2) or one id per character\n"
    "  --bpe-dir DIR          folder with encoder.json and vocab.bpe (default: the\n"
    "                         data cache, $GRADC_DATA_DIR or ~/.cache/gradc/data,\n"
    "                         + /gpt2, which scripts/demo.sh fills)\n"
    "  --special              <|endoftext|> in the text is the special token 50256\n"
    "                         (otherwise it is ordinary text, as tiktoken's default)\n"
    "  --decode               ids to text\n"
    "  --vocab-from FILE      char tokenizer: build the vocabulary from FILE's\n"
    "                         characters (default when encoding: the input itself)\n"
    "  --stats                print 'FILE: N tokens, B bytes, S s, R MB/s' to stderr\n"
    "\n"
    "examples:\n"
    "  echo -n 'Hello, world' | gradc tokenize -            # 15496 11 995\n"
    "  echo 15496 11 995 | gradc tokenize --decode -        # Hello, world\n"
    "  gradc tokenize --tokenizer char --vocab-from input.txt input.txt\n"
    "\n"
    "exit codes: 0 success, 1 user error, 2 internal error\n";

typedef struct TokArgs {
    RtTokKind kind;
    const char *bpe_dir, *vocab_from;
    bool special, decode, stats;
    const char **files;
    int nfiles;
} TokArgs;

static int take_kind(const char *v, TokArgs *a)
{
    if (!v)
        return 1;
    if (!rt_tok_kind_parse(v, &a->kind))
        return cli_usage_error("tokenize", "--tokenizer must be gpt2 or char, got '%s'", v);
    return 0;
}

static bool take_switch(const char *arg, TokArgs *a)
{
    bool *sw = !strcmp(arg, "--special") ? &a->special
             : !strcmp(arg, "--decode")  ? &a->decode
             : !strcmp(arg, "--stats")   ? &a->stats
                                         : NULL;
    if (sw)
        *sw = true;
    return sw != NULL;
}

/* -1 to go on, else an exit code. */
static int parse_args(int argc, char **argv, TokArgs *a)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = 0;
        if (cli_is_help(argv[i]))
            return cli_help("tokenize");
        if (cli_flag_value(argv, argc, &i, "--tokenizer", &v))
            r = take_kind(v, a);
        else if (cli_flag_value(argv, argc, &i, "--bpe-dir", &v))
            r = v ? (a->bpe_dir = v, 0) : 1;
        else if (cli_flag_value(argv, argc, &i, "--vocab-from", &v))
            r = v ? (a->vocab_from = v, 0) : 1;
        else if (take_switch(argv[i], a))
            continue;
        else if (argv[i][0] == '-' && argv[i][1])
            r = cli_usage_error("tokenize", "unknown flag '%s'", argv[i]);
        else
            a->files[a->nfiles++] = argv[i];
        if (r)
            return r;
    }
    return a->nfiles ? -1 : cli_usage_error("tokenize", "missing FILE (- for stdin)");
}

static char *read_input(const char *path, size_t *len, IrError *err)
{
    if (strcmp(path, "-") != 0)
        return rt_file_read(path, len, err);
    return rt_file_read("/dev/stdin", len, err);
}

static RtTokenizer *make_char(const TokArgs *a, IrError *err)
{
    const char *src = a->vocab_from ? a->vocab_from : a->files[0];
    if (a->decode && !a->vocab_from) {
        ir_error(err, "--decode with --tokenizer char needs the vocabulary");
        ir_error_hint(err, "pass --vocab-from FILE, the text the ids were made from");
        return NULL;
    }
    if (!strcmp(src, "-")) {
        ir_error(err, "the char vocabulary cannot come from stdin");
        ir_error_hint(err, "pass --vocab-from FILE");
        return NULL;
    }
    size_t len;
    char *text = rt_file_read(src, &len, err);
    RtTokenizer *t = text ? rt_tokenizer_char(text, len, err) : NULL;
    free(text);
    return t;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void print_ids(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
}

static bool encode_file(RtTokenizer *t, const TokArgs *a, const char *path, IrError *err)
{
    size_t len, n;
    int32_t *ids;
    char *text = read_input(path, &len, err);
    if (!text)
        return false;
    double t0 = now_s();
    bool ok = rt_tokenizer_encode(t, text, len, a->special, &ids, &n, err);
    double dt = now_s() - t0;
    free(text);
    if (!ok)
        return ir_error_where(err, "%s", path), false;
    print_ids(ids, n);
    if (a->stats)
        fprintf(stderr, "%s: %zu tokens, %zu bytes, %.4f s, %.2f MB/s\n", path, n, len, dt,
                dt > 0 ? (double)len / dt / 1e6 : 0.0);
    free(ids);
    return true;
}

/* Parses whitespace-separated ids; false + err on anything else. */
static bool parse_ids(const char *text, const char *path, int32_t **ids, size_t *n,
                      IrError *err)
{
    size_t cap = 1024;
    *ids = malloc(cap * sizeof **ids);
    *n = 0;
    for (const char *p = text;;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
            p++;
        if (!*p)
            return true;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
            (*end && !strchr(" \n\t\r", *end))) {
            int w = (int)strcspn(p, " \n\t\r");
            ir_error(err, "'%.*s' is not a token id", w < 20 ? w : 20, p);
            ir_error_where(err, "%s: token %zu", path, *n);
            ir_error_hint(err, "--decode reads integers separated by white space");
            return false;
        }
        if (*n == cap)
            *ids = realloc(*ids, (cap *= 2) * sizeof **ids);
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
    }
}

static bool decode_file(RtTokenizer *t, const char *path, IrError *err)
{
    size_t len, n;
    int32_t *ids = NULL;
    char *text = read_input(path, &len, err), *out = NULL;
    bool ok = text && parse_ids(text, path, &ids, &n, err);
    if (ok && !(out = rt_tokenizer_decode(t, ids, n, &len, err)))
        ir_error_where(err, "%s", path), ok = false;
    if (ok)
        fwrite(out, 1, len, stdout);
    free(text);
    free(ids);
    free(out);
    return ok;
}

int cmd_tokenize(int argc, char **argv)
{
    TokArgs a = {.kind = RT_TOK_GPT2, .files = calloc((size_t)argc, sizeof(char *))};
    int rc = parse_args(argc, argv, &a);
    IrError err = {0};
    RtTokenizer *t = NULL;
    if (rc < 0) {
        t = a.kind == RT_TOK_GPT2 ? rt_tokenizer_gpt2(a.bpe_dir, &err) : make_char(&a, &err);
        rc = t ? 0 : cli_fail(&err);
    }
    for (int f = 0; f < a.nfiles && rc == 0; f++)
        if (!(a.decode ? decode_file(t, a.files[f], &err) : encode_file(t, &a, a.files[f], &err)))
            rc = cli_fail(&err);
    if (fflush(stdout) != 0 && rc == 0)
        rc = 1, fprintf(stderr, "gradc: error: cannot write to stdout: %s\n", strerror(errno));
    rt_tokenizer_free(t);
    free(a.files);
    return rc;
}
