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

static const char usage[] =
    "usage: gradc tokenize [--tokenizer gpt2|char] [--bpe-dir DIR] [--special]\n"
    "                      [--decode] [--vocab-from FILE] [--stats] FILE...\n"
    "\n"
    "Encodes each FILE (- for stdin) and prints its token ids on one line,\n"
    "separated by spaces.  With --decode, each FILE holds ids (separated by any\n"
    "white space) and their bytes are written to stdout.\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
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

static int take_file(const char *cmd, const char *arg, void *args)
{
    TokArgs *a = args;
    (void)cmd;
    a->files[a->nfiles++] = arg;
    return 0;
}

static const CliFlag flags[] = {
    {"--tokenizer", CLI_CALL, CLI_AT(TokArgs, kind), .fn = cli_tokenizer_fn, .meta = "gpt2|char",
     .help = "GPT-2 byte-level BPE (the default; token-exact with tiktoken's gpt2) or one id "
             "per character"},
    {"--bpe-dir", CLI_STR, CLI_AT(TokArgs, bpe_dir), .meta = "DIR",
     .def = "the data cache, $GRADC_DATA_DIR or ~/.cache/gradc/data, + /gpt2, which "
            "scripts/demo.sh fills",
     .help = "folder with encoder.json and vocab.bpe"},
    {"--special", CLI_TRUE, CLI_AT(TokArgs, special),
     .help = "<|endoftext|> in the text is the special token 50256 (otherwise it is ordinary "
             "text, as tiktoken's default)"},
    {"--decode", CLI_TRUE, CLI_AT(TokArgs, decode), .help = "ids to text"},
    {"--vocab-from", CLI_STR, CLI_AT(TokArgs, vocab_from), .meta = "FILE",
     .def = "when encoding, the input itself",
     .help = "char tokenizer: build the vocabulary from FILE's characters"},
    {"--stats", CLI_TRUE, CLI_AT(TokArgs, stats),
     .help = "print 'FILE: N tokens, B bytes, S s, R MB/s' to stderr"},
    {0}};

const CliSpec cmd_tokenize_spec = {"tokenize", usage, flags, tail, .pos = take_file};

/* -1 to go on, else an exit code. */
static int parse_args(int argc, char **argv, TokArgs *a)
{
    int r = cli_parse(&cmd_tokenize_spec, argc, argv, a);
    if (r >= 0)
        return r;
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
