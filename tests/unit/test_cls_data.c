/* test_cls_data.c — unit tests of the classification data pipeline
 * (runtime/rt_cls_read.c, runtime/rt_cls_data.c).
 *
 * Small TSV and CSV files written here check the reader (quotes, CRLF,
 * header orders, escapes, every error with its FILE:LINE), the label ids,
 * balancing, the 70/10/20 split, seeds, padding, batches and the split
 * files.  Tokens come from tests/fuzz/bpe-mini, a byte-level BPE in the
 * source tree; the expected ids of a text are that tokenizer's own encoding
 * (rt_bpe is tested on its own), so the checks are about cutting, padding
 * and placing them.  The SMS Spam Collection counts (5,574 lines, 747 spam,
 * 4,827 ham; balanced 1,494 = 2 x 747, split int(0.7 n) = 1045, int(0.1 n)
 * = 149 and 300, as the book's chapter 6) need ../shared/data and are
 * skipped without it.
 */
#include "tests/unit/testlib.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/rt_cls_data.h"

#define DATA_DIR "../shared/data"

static char tmpdir[64];
static RtTokenizer *tok;

/* tmpdir/name with content; returns the path (static buffer per call slot). */
static const char *put(const char *name, const char *content)
{
    static char paths[8][160];
    static int slot;
    char *p = paths[slot++ % 8];
    snprintf(p, 160, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    fputs(content, f);
    fclose(f);
    return p;
}

static bool parse(const char *name, const char *content, RtClsTable *t, IrError *err)
{
    *err = (IrError){0};
    return rt_cls_read(put(name, content), t, err);
}

/* The file fails to parse, with where == tmpdir/want_where and msg holding want_msg. */
static void refused(const char *name, const char *content, const char *want_where,
                    const char *want_msg)
{
    RtClsTable t;
    IrError err;
    char where[200];
    CHECK(!parse(name, content, &t, &err));
    snprintf(where, sizeof where, "%s/%s", tmpdir, want_where);
    CHECK_STR(err.where, where);
    CHECK(strstr(err.msg, want_msg) != NULL);
    if (!strstr(err.msg, want_msg))
        fprintf(stderr, "  message: %s\n", err.msg);
    CHECK(t.n == 0 && t.rec == NULL);
}

TEST(tsv_lines_crlf_escapes)
{
    RtClsTable t;
    IrError err;
    CHECK(parse("a.tsv", "ham\tHello\r\nspam\tWin\\tnow don\\'t \\\\x\n\n ham \t a\tb\n", &t,
                &err));
    CHECK(t.n == 3 && !t.csv);
    if (t.n != 3)
        return;
    CHECK_STR(t.rec[0].label, "ham");
    CHECK_STR(t.rec[0].text, "Hello");
    CHECK_STR(t.rec[1].text, "Win\tnow don\\'t \\x");
    CHECK_STR(t.rec[2].label, "ham");
    CHECK_STR(t.rec[2].text, " a\tb");
    CHECK(t.rec[0].line == 1 && t.rec[1].line == 2 && t.rec[2].line == 4);
    rt_cls_table_free(&t);
}

TEST(tsv_headers)
{
    RtClsTable t;
    IrError err;
    CHECK(parse("h1.tsv", "Label\tText\nspam\tx\n", &t, &err) && t.n == 1);
    CHECK(t.n == 1 && !strcmp(t.rec[0].label, "spam") && t.rec[0].line == 2);
    rt_cls_table_free(&t);
    CHECK(parse("h2.tsv", "text\tlabel\r\nhello\tthere\tham\r\n", &t, &err) && t.n == 1);
    CHECK(t.n == 1 && !strcmp(t.rec[0].label, "ham") && !strcmp(t.rec[0].text, "hello\tthere"));
    rt_cls_table_free(&t);
    /* after a header, "label<TAB>text" is an example (how split files keep one) */
    CHECK(parse("h3.tsv", "label\ttext\nlabel\ttext\n", &t, &err) && t.n == 1);
    CHECK(t.n == 1 && !strcmp(t.rec[0].label, "label") && !strcmp(t.rec[0].text, "text"));
    rt_cls_table_free(&t);
}

TEST(csv_quotes_and_orders)
{
    RtClsTable t;
    IrError err;
    CHECK(parse("a.csv", "\xEF\xBB\xBFLabel,Text\r\nham,\"a, \"\"q\"\"\r\nline\"\r\nspam,plain\r\n"
                "\r\nham,\"\"\"\"\n", &t, &err));
    CHECK(t.n == 3 && t.csv);
    if (t.n == 3) {
        CHECK_STR(t.rec[0].text, "a, \"q\"\r\nline");
        CHECK_STR(t.rec[1].label, "spam");
        CHECK_STR(t.rec[1].text, "plain");
        CHECK_STR(t.rec[2].text, "\"");
        CHECK(t.rec[0].line == 2 && t.rec[1].line == 4 && t.rec[2].line == 6);
    }
    rt_cls_table_free(&t);
    /* text before label, an extra column, found by content (not .csv) */
    CHECK(parse("b.txt", "id,text, label \n1,hi,ham\n2,\"yo\",spam", &t, &err));
    CHECK(t.n == 2 && t.csv);
    if (t.n == 2)
        CHECK(!strcmp(t.rec[0].text, "hi") && !strcmp(t.rec[1].label, "spam") &&
              !strcmp(t.rec[1].text, "yo"));
    rt_cls_table_free(&t);
}

TEST(reader_errors_name_the_line)
{
    refused("e1.tsv", "ham\tok\nnolabel\n", "e1.tsv:2", "no tab");
    refused("e2.tsv", "ham\tok\nspam\t\r\n", "e2.tsv:2", "an empty text");
    refused("e3.tsv", "ham\tok\n \tx\n", "e3.tsv:2", "an empty label");
    refused("e4.csv", "label,text\nham,ok\nspam,\"abc\nmore\n", "e4.csv:3",
            "an unterminated quote");
    refused("e5.csv", "lab,text\nham,x\n", "e5.csv:1", "no 'label' column");
    refused("e6.csv", "label,body\nham,x\n", "e6.csv:1", "no 'text' column");
    refused("e7.csv", "label,text\nham,x\nham,a,b\n", "e7.csv:3", "3 fields, the header has 2");
    refused("e8.csv", "label,text\nham,\"x\"y\n", "e8.csv:2", "after a closing quote");
    refused("e9.tsv", "ham\tok\nspam\tcaf\xe9!\n", "e9.tsv:2:9", "not UTF-8");
    refused("e10.csv", "label,text\n\"a\tb\",x\n", "e10.csv:2", "a label with a tab");
}

/* ---------------------------------------------------------------- the data set */

static RtClsOptions opts(void)
{
    RtClsOptions o = rt_cls_defaults();
    o.tok = tok;
    o.pad_id = rt_tokenizer_eot(tok);
    return o;
}

/* A TSV of na "spam" and nb "ham" lines (spam first), texts "s<i> ..." / "h<i> ...",
 * text i being i % 7 + 1 words long. */
static const char *classes(const char *name, int na, int nb)
{
    static char buf[1 << 16];
    size_t n = 0;
    for (int i = 0; i < na + nb; i++) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\t%c%d", i < na ? "spam" : "ham",
                              i < na ? 's' : 'h', i);
        for (int w = 0; w < i % 7; w++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, " w%d", w);
        buf[n++] = '\n';
    }
    buf[n] = 0;
    return put(name, buf);
}

static bool load(RtClsOptions *o, RtClsData *d)
{
    IrError err = {0};
    bool ok = rt_cls_load(o, d, &err);
    if (!ok)
        fprintf(stderr, "  rt_cls_load: %s: %s\n", err.where, err.msg);
    return ok;
}

/* Each text of the file at most once over the three splits; returns the count. */
static int64_t distinct_texts(const RtClsData *d)
{
    const RtClsSplit *sp[3] = {&d->train, &d->val, &d->test};
    int64_t total = 0;
    for (int a = 0; a < 3; a++)
        for (int64_t i = 0; i < sp[a]->n; i++, total++)
            for (int b = 0; b < 3; b++)
                for (int64_t j = 0; j < sp[b]->n; j++)
                    if ((a != b || i != j) && !strcmp(sp[a]->ex[i].text, sp[b]->ex[j].text))
                        return -1;
    return total;
}

TEST(labels_balance_split)
{
    RtClsOptions o = opts();
    o.data_path = classes("c.tsv", 10, 30);
    RtClsData d;
    CHECK(load(&o, &d));
    CHECK(d.nlabels == 2 && !strcmp(d.labels[0], "ham") && !strcmp(d.labels[1], "spam"));
    CHECK(rt_cls_label_id(&d, "ham") == 0 && rt_cls_label_id(&d, "spam") == 1 &&
          rt_cls_label_id(&d, "eggs") == -1);
    /* 20 after balancing: 14 / 2 / 4 */
    CHECK(d.read == 40 && d.dropped == 20);
    CHECK(d.train.n == 14 && d.val.n == 2 && d.test.n == 4);
    CHECK(distinct_texts(&d) == 20);
    int64_t spam = 0, ham = 0;
    const RtClsSplit *sp[3] = {&d.train, &d.val, &d.test};
    for (int k = 0; k < 3; k++) {
        spam += rt_cls_count(sp[k], 1), ham += rt_cls_count(sp[k], 0);
        for (int64_t i = 0; i < sp[k]->n; i++) {   /* the label is the line's */
            const RtClsExample *e = &sp[k]->ex[i];
            CHECK(e->label == (e->text[0] == 's'));
            CHECK(atoi(e->text + 1) == e->line - 1);
        }
    }
    CHECK(spam == 10 && ham == 10);
    rt_cls_free(&d);
    o.balance = false;
    o.train_frac = 0.5, o.val_frac = 0.25;
    CHECK(load(&o, &d));
    CHECK(d.dropped == 0 && d.train.n == 20 && d.val.n == 10 && d.test.n == 10);
    CHECK(distinct_texts(&d) == 40);
    rt_cls_free(&d);
}

static bool same_order(const RtClsSplit *a, const RtClsSplit *b)
{
    if (a->n != b->n)
        return false;
    for (int64_t i = 0; i < a->n; i++)
        if (strcmp(a->ex[i].text, b->ex[i].text))
            return false;
    return true;
}

TEST(seeded)
{
    RtClsOptions o = opts();
    o.data_path = classes("s.tsv", 25, 40);
    RtClsData a, b, c;
    CHECK(load(&o, &a) && load(&o, &b));
    o.seed = 124;
    CHECK(load(&o, &c));
    CHECK(same_order(&a.train, &b.train) && same_order(&a.test, &b.test));
    CHECK(!same_order(&a.train, &c.train));
    int64_t oa[64], ob[64];
    rt_cls_order(&a.train, true, 5, 0, oa);
    rt_cls_order(&a.train, true, 5, 0, ob);
    CHECK(!memcmp(oa, ob, sizeof *oa * (size_t)a.train.n));
    rt_cls_order(&a.train, true, 5, 1, ob);
    CHECK(memcmp(oa, ob, sizeof *oa * (size_t)a.train.n) != 0);
    rt_cls_order(&a.train, false, 5, 1, ob);
    for (int64_t i = 0; i < a.train.n; i++)
        CHECK(ob[i] == i);
    rt_cls_free(&a), rt_cls_free(&b), rt_cls_free(&c);
}

/* ids of text by the tokenizer itself. */
static size_t encode(const char *text, int32_t **ids)
{
    size_t n = 0;
    IrError err = {0};
    CHECK(rt_tokenizer_encode(tok, text, strlen(text), false, ids, &n, &err));
    return n;
}

/* Row b of a batch holds e's ids cut or padded to T. */
static void check_row(const RtClsData *d, const RtClsExample *e, const int32_t *x, int32_t last,
                      int32_t y)
{
    int32_t *ids;
    int64_t n = (int64_t)encode(e->text, &ids), T = d->pad_len;
    CHECK(n == e->n && y == e->label);
    CHECK(last == (n < T ? n : T) - 1);
    for (int64_t t = 0; t < T; t++)
        CHECK(x[t] == (t < n ? ids[t] : d->pad_id));
    free(ids);
}

TEST(padding_truncation_batches)
{
    RtClsOptions o = opts();
    o.data_path = classes("p.tsv", 6, 9);
    o.balance = false;
    RtClsData d;
    CHECK(load(&o, &d));
    int64_t longest = 0;
    for (int64_t i = 0; i < d.train.n; i++) {
        int32_t *ids;
        int64_t n = (int64_t)encode(d.train.ex[i].text, &ids);
        longest = n > longest ? n : longest;
        free(ids);
    }
    CHECK(d.pad_len == longest && d.longest == longest && d.pad_id == 556);
    /* test: 15 - 10 - 1 = 4 rows; a batch of 3 from row 2 has 2 real rows */
    CHECK(d.test.n == 4);
    int32_t x[3 * 64], last[3], y[3];
    int64_t order[4] = {3, 2, 1, 0};
    CHECK(rt_cls_fill(&d, &d.test, order, 2, 3, x, last, y) == 2);
    check_row(&d, &d.test.ex[1], x, last[0], y[0]);
    check_row(&d, &d.test.ex[0], x + d.pad_len, last[1], y[1]);
    for (int64_t t = 0; t < d.pad_len; t++)
        CHECK(x[2 * d.pad_len + t] == 556);
    CHECK(last[2] == 0 && y[2] == RT_IGNORE_INDEX);
    CHECK(rt_cls_fill(&d, &d.test, NULL, 0, 3, x, last, y) == 3);
    check_row(&d, &d.test.ex[2], x + 2 * d.pad_len, last[2], y[2]);
    CHECK(rt_cls_fill(&d, &d.test, NULL, 4, 1, x, last, y) == 0);
    rt_cls_free(&d);

    o.max_len = 4;   /* truncation: count the examples over 4 tokens */
    CHECK(load(&o, &d));
    int64_t over = 0;
    const RtClsSplit *sp[3] = {&d.train, &d.val, &d.test};
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < sp[k]->n; i++) {
            int32_t *ids;
            over += encode(sp[k]->ex[i].text, &ids) > 4;
            free(ids);
        }
    CHECK(d.pad_len == 4 && d.truncated == over && over > 0);
    CHECK(rt_cls_fill(&d, &d.train, NULL, 0, 3, x, last, y) == 3);
    for (int b = 0; b < 3; b++)
        check_row(&d, &d.train.ex[b], x + b * 4, last[b], y[b]);
    rt_cls_free(&d);
    o.max_len = 1000, o.context_length = 5;
    CHECK(load(&o, &d) && d.pad_len == 5);
    rt_cls_free(&d);
}

TEST(encode_text)
{
    int32_t x[64], last, *ids;
    bool cut;
    IrError err = {0};
    const char *text = "hello there, you";
    size_t n = encode(text, &ids);
    CHECK(n > 3 && n < 64);
    CHECK(rt_cls_encode_text(tok, text, strlen(text), 64, 556, x, &last, &cut, &err));
    CHECK(last == (int32_t)n - 1 && !cut);
    for (size_t t = 0; t < 64; t++)
        CHECK(x[t] == (t < n ? ids[t] : 556));
    CHECK(rt_cls_encode_text(tok, text, strlen(text), 3, 556, x, &last, &cut, &err));
    CHECK(last == 2 && cut && x[0] == ids[0] && x[2] == ids[2]);
    CHECK(!rt_cls_encode_text(tok, "", 0, 3, 556, x, &last, &cut, &err) && err.set);
    free(ids);
}

TEST(load_errors)
{
    RtClsOptions o = opts();
    RtClsData d;
    IrError err = {0};
    o.data_path = put("one.tsv", "ham\ta\nham\tb\n");
    CHECK(!rt_cls_load(&o, &d, &err) && strstr(err.msg, "at least 2 labels"));
    o.data_path = NULL;
    o.train_path = put("tr.tsv", "spam\ta\nham\tb\n");
    o.test_path = put("te.tsv", "ham\tc\nfoo\td\n");
    err = (IrError){0};
    char want[300];
    snprintf(want, sizeof want, "label 'foo' at %s/te.tsv:2 is not among the training labels "
             "{ham, spam}", tmpdir);
    CHECK(!rt_cls_load(&o, &d, &err));
    CHECK_STR(err.msg, want);
    o.test_path = put("te2.csv", "label,text\nham,\"x\n");
    err = (IrError){0};
    CHECK(!rt_cls_load(&o, &d, &err) && strstr(err.where, "te2.csv:2"));
    o.data_path = o.train_path;
    err = (IrError){0};
    CHECK(!rt_cls_load(&o, &d, &err) && err.set);
}

/* Pre-split files: file order, no balancing; write_split reads back the same. */
TEST(write_split_round_trip)
{
    RtClsOptions o = opts();
    o.train_path = put("rt.csv", "label,text\nspam,\"a\tb\\nc\\\"\nham,don\\'t\nspam,x\n"
                       "ham,\"two\nlines\r\n\"\nham,\\\\\\t\nham,\"e\\\tf\\\n\"\n");
    o.val_path = put("rv.tsv", "ham\tv\n");
    RtClsData d, e;
    CHECK(load(&o, &d));
    CHECK(d.train.n == 6 && d.val.n == 1 && d.test.n == 0 && d.dropped == 0);
    if (d.train.n != 6)
        return;
    CHECK_STR(d.train.ex[0].text, "a\tb\\nc\\");
    CHECK(d.train.ex[0].line == 2 && d.train.ex[3].line == 5 && d.train.ex[4].line == 8);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/out", tmpdir);
    IrError err = {0};
    CHECK(rt_cls_write_split(&d, dir, &err));
    size_t len;
    char path[200];
    snprintf(path, sizeof path, "%s/split/train.tsv", dir);
    char *bytes = rt_file_read(path, &len, &err);
    CHECK_STR(bytes, "label\ttext\nspam\ta\\tb\\\\nc\\\\\nham\tdon\\'t\nspam\tx\n"
              "ham\ttwo\\nlines\\r\\n\n"
              "ham\t\\\\\\\\\\\\t\nham\te\\\\\\tf\\\\\\n\n");
    free(bytes);
    RtClsOptions o2 = opts();
    char pv[200], pt[200];
    snprintf(pv, sizeof pv, "%s/split/val.tsv", dir);
    snprintf(pt, sizeof pt, "%s/split/test.tsv", dir);
    o2.train_path = path, o2.val_path = pv, o2.test_path = pt;
    CHECK(load(&o2, &e));
    const RtClsSplit *a[3] = {&d.train, &d.val, &d.test}, *b[3] = {&e.train, &e.val, &e.test};
    for (int k = 0; k < 3; k++) {
        CHECK(a[k]->n == b[k]->n);
        for (int64_t i = 0; i < a[k]->n && a[k]->n == b[k]->n; i++)
            CHECK(!strcmp(a[k]->ex[i].text, b[k]->ex[i].text) &&
                  a[k]->ex[i].label == b[k]->ex[i].label);
    }
    rt_cls_free(&d), rt_cls_free(&e);
}

TEST(sms_spam_collection)
{
    RtClsTable t;
    IrError err = {0};
    CHECK(rt_cls_read(DATA_DIR "/SMSSpamCollection", &t, &err));
    int64_t spam = 0;
    for (int64_t i = 0; i < t.n; i++)
        spam += !strcmp(t.rec[i].label, "spam");
    CHECK(t.n == 5574 && spam == 747 && t.n - spam == 4827);
    rt_cls_table_free(&t);
    RtClsOptions o = opts();
    RtTokenizer *gpt2 = rt_tokenizer_gpt2(DATA_DIR "/gpt2", &err);
    o.tok = gpt2 ? gpt2 : tok;   /* the real one when there, for the figures */
    o.data_path = DATA_DIR "/SMSSpamCollection";
    o.context_length = 1024;
    RtClsData d;
    CHECK(load(&o, &d));
    printf("  SMS (%s): pad_len %lld (longest train example), %lld truncated\n",
           gpt2 ? "GPT-2 BPE" : "bpe-mini", (long long)d.pad_len, (long long)d.truncated);
    CHECK(d.pad_len == d.longest);
    CHECK(d.read == 5574 && d.dropped == 5574 - 1494);
    CHECK(d.train.n == 1045 && d.val.n == 149 && d.test.n == 300);
    const RtClsSplit *sp[3] = {&d.train, &d.val, &d.test};
    int64_t s = 0;
    for (int k = 0; k < 3; k++)
        s += rt_cls_count(sp[k], rt_cls_label_id(&d, "spam"));
    CHECK(s == 747);
    rt_cls_free(&d);
    rt_tokenizer_free(gpt2);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gradc_cls_XXXXXX");
    if (!mkdtemp(tmpdir))
        TEST_SKIP("cannot make a temporary folder");
    IrError err = {0};
    tok = rt_tokenizer_gpt2("tests/fuzz/bpe-mini", &err);
    if (!tok) {
        fprintf(stderr, "tests/fuzz/bpe-mini: %s\n", err.msg);
        return 1;
    }
    RUN(tsv_lines_crlf_escapes);
    RUN(tsv_headers);
    RUN(csv_quotes_and_orders);
    RUN(reader_errors_name_the_line);
    RUN(labels_balance_split);
    RUN(seeded);
    RUN(padding_truncation_batches);
    RUN(encode_text);
    RUN(load_errors);
    RUN(write_split_round_trip);
    if (access(DATA_DIR "/SMSSpamCollection", R_OK) == 0)
        RUN(sms_spam_collection);
    else
        TEST_SKIP_PART("sms_spam_collection (%s/SMSSpamCollection not found)", DATA_DIR);
    rt_tokenizer_free(tok);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
