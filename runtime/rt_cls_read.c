/* rt_cls_read.c — the label/text file reader of classification fine-tuning
 * (rt_cls_data.h has the formats).
 *
 * The whole file is in memory, checked once for UTF-8 and NUL bytes, and
 * then cut into records by one of two small scanners: TSV is a line at a
 * time (label before the first tab, the unescaped rest as text), CSV is an
 * RFC 4180 field scanner that walks quoted fields across newlines and
 * counts lines as it goes, so every record knows the line it starts on.
 * Records own their label and text strings; nothing else is kept.
 */
#include "runtime/rt_cls_data.h"

#include "runtime/rt_utf8.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct Scan {
    const char *s, *path;
    size_t len, pos;
    int64_t line;
    RtClsTable *t;
    size_t cap;
    IrError *err;
} Scan;

/* ---------------------------------------------------------------- helpers */

static bool fail_at(Scan *sc, int64_t line, size_t col, const char *hint, const char *fmt,
                    const char *arg)
{
    if (col)
        ir_error_where(sc->err, "%s:%lld:%zu", sc->path, (long long)line, col);
    else
        ir_error_where(sc->err, "%s:%lld", sc->path, (long long)line);
    ir_error(sc->err, fmt, arg);
    if (hint)
        ir_error_hint(sc->err, "%s", hint);
    return false;
}

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* s[0..n) without leading and trailing spaces (and a trailing CR), malloc'd. */
static char *dup_trimmed(const char *s, size_t n)
{
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\r'))
        n--;
    while (n && *s == ' ')
        s++, n--;
    return dup_range(s, n);
}

/* The first byte that is NUL or not UTF-8, as line:col (1-based bytes). */
static bool check_utf8(Scan *sc)
{
    const unsigned char *u = (const unsigned char *)sc->s;
    size_t col = 1, adv;
    int64_t line = 1;
    for (size_t i = 0; i < sc->len; i += adv, col += adv) {
        if (u[i] == 0)
            return fail_at(sc, line, col, "remove the byte, or convert the file to UTF-8 text",
                           "a NUL byte%s", "");
        if (rt_utf8_decode(u + i, sc->len - i, &adv) < 0) {
            char hex[8];
            snprintf(hex, sizeof hex, "%02x", u[i]);
            return fail_at(sc, line, col, "convert the file to UTF-8 (iconv -f latin1 -t utf-8)",
                           "a byte that is not UTF-8 (0x%s)", hex);
        }
        if (u[i] == '\n')
            line++, col = 0;
    }
    return true;
}

static bool add_record(Scan *sc, char *label, char *text, int64_t line)
{
    RtClsTable *t = sc->t;
    if (t->n == (int64_t)sc->cap) {
        sc->cap = sc->cap ? sc->cap * 2 : 256;
        RtClsRecord *r = realloc(t->rec, sc->cap * sizeof *r);
        if (!r) {
            free(label), free(text);
            ir_error(sc->err, "%s: out of memory", sc->path);
            return false;
        }
        t->rec = r;
    }
    t->rec[t->n++] = (RtClsRecord){label, text, line};
    return true;
}

/* Checks a record's label and text, then keeps it (takes both strings). */
static bool keep(Scan *sc, char *label, char *text, int64_t line)
{
    const char *why = !label || !text ? "out of memory"
                    : !*label ? "an empty label"
                    : strpbrk(label, "\t\n\r") ? "a label with a tab or a line break"
                    : !*text ? "an empty text" : NULL;
    if (why) {
        free(label), free(text);
        return fail_at(sc, line, 0, "every example needs a label and a non-empty text", "%s",
                       why);
    }
    return add_record(sc, label, text, line);
}

static bool is_name(const char *s, size_t n, const char *name)
{
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\r'))
        n--;
    while (n && *s == ' ')
        s++, n--;
    return n == strlen(name) && !strncasecmp(s, name, n);
}

/* ---------------------------------------------------------------- TSV */

/* The text after the tab: \t \n \r \\ decoded, other backslashes kept. */
static char *tsv_unescape(const char *s, size_t n)
{
    char *d = malloc(n + 1), *o = d;
    for (size_t i = 0; d && i < n; i++) {
        const char *m = i + 1 < n && s[i] == '\\' ? strchr("t\tn\nr\r\\\\", s[i + 1]) : NULL;
        if (m && (m - "t\tn\nr\r\\\\") % 2 == 0) {
            *o++ = m[1];
            i++;
        } else {
            *o++ = s[i];
        }
    }
    if (d)
        *o = 0;
    return d;
}

static bool tsv_line(Scan *sc, const char *s, size_t n, bool first, bool *swap)
{
    if (n && s[n - 1] == '\r')
        n--;
    if (n == 0)
        return true;   /* a blank line */
    const char *tab = memchr(s, '\t', n);
    if (!tab)
        return fail_at(sc, sc->line, 0, "a TSV line is LABEL<TAB>TEXT (a .csv file needs a "
                       "`label,text` header)", "no tab: the line has no label%s", "");
    size_t a = (size_t)(tab - s), b = n - a - 1;
    if (first && ((is_name(s, a, "label") && is_name(tab + 1, b, "text")) ||
                  (is_name(s, a, "text") && is_name(tab + 1, b, "label")))) {
        *swap = is_name(s, a, "text");
        return true;   /* the header */
    }
    if (*swap) {   /* TEXT<TAB>LABEL: the label follows the last tab */
        const char *last = s + n - 1;
        while (*last != '\t')
            last--;
        return keep(sc, dup_trimmed(last + 1, (size_t)(s + n - last - 1)),
                    tsv_unescape(s, (size_t)(last - s)), sc->line);
    }
    return keep(sc, dup_trimmed(s, a), tsv_unescape(tab + 1, b), sc->line);
}

static bool parse_tsv(Scan *sc)
{
    bool swap = false;
    for (bool first = true; sc->pos < sc->len; first = false, sc->line++) {
        const char *s = sc->s + sc->pos, *nl = memchr(s, '\n', sc->len - sc->pos);
        size_t n = nl ? (size_t)(nl - s) : sc->len - sc->pos;
        if (!tsv_line(sc, s, n, first, &swap))
            return false;
        sc->pos += n + 1;
    }
    return true;
}

/* ---------------------------------------------------------------- CSV */

typedef struct Fields {
    char **f;
    size_t n, cap;
} Fields;

static void fields_clear(Fields *fs)
{
    for (size_t i = 0; i < fs->n; i++)
        free(fs->f[i]);
    fs->n = 0;
}

static bool fields_push(Fields *fs, char *v)
{
    if (fs->n == fs->cap) {
        fs->cap = fs->cap ? fs->cap * 2 : 8;
        char **f = realloc(fs->f, fs->cap * sizeof *f);
        if (!f)
            return free(v), false;
        fs->f = f;
    }
    fs->f[fs->n++] = v;
    return v != NULL;
}

/* A quoted field from sc->pos (just past the opening quote) to its closing
 * quote; "" is a quote.  Leaves sc->pos after the closing quote. */
static char *csv_quoted(Scan *sc, int64_t start_line)
{
    char *d = malloc(sc->len - sc->pos + 1), *o = d;
    while (d && sc->pos < sc->len) {
        char c = sc->s[sc->pos++];
        if (c == '"' && (sc->pos >= sc->len || sc->s[sc->pos] != '"')) {
            *o = 0;
            return d;
        }
        if (c == '"')
            sc->pos++;
        else if (c == '\n')
            sc->line++;
        *o++ = c;
    }
    free(d);
    if (d)
        fail_at(sc, start_line, 0, "close the quoted field with \"; a quote inside it is "
                "written \"\"", "an unterminated quote: the field runs to the end of the "
                "file%s", "");
    else
        ir_error(sc->err, "%s: out of memory", sc->path);
    return NULL;
}

/* One field at sc->pos; *end tells whether the record ends after it. */
static char *csv_field(Scan *sc, bool *end)
{
    const char *s = sc->s;
    size_t at = sc->pos;
    char *v;
    if (at < sc->len && s[at] == '"') {
        int64_t line = sc->line;
        sc->pos++;
        if (!(v = csv_quoted(sc, line)))
            return NULL;
        at = sc->pos;
        if (at < sc->len && s[at] == '\r' && at + 1 < sc->len && s[at + 1] == '\n')
            at++;
        if (at < sc->len && s[at] != ',' && s[at] != '\n') {
            free(v);
            fail_at(sc, sc->line, 0, "a quoted field ends at its closing quote: put the "
                    "comma right after it", "text after a closing quote%s", "");
            return NULL;
        }
    } else {
        while (at < sc->len && s[at] != ',' && s[at] != '\n')
            at++;
        size_t n = at - sc->pos;
        if (at < sc->len && s[at] == '\n' && n && s[at - 1] == '\r')
            n--;
        v = dup_range(s + sc->pos, n);
    }
    *end = at >= sc->len || s[at] == '\n';
    sc->pos = at + 1;
    if (*end && at < sc->len)
        sc->line++;
    return v;
}

/* The fields of the record at sc->pos. */
static bool csv_record(Scan *sc, Fields *fs)
{
    fields_clear(fs);
    for (bool end = false; !end;) {
        char *v = csv_field(sc, &end);
        if (!v && !sc->err->set)
            ir_error(sc->err, "%s: out of memory", sc->path);
        if (!v || !fields_push(fs, v))
            return false;
    }
    return true;
}

static int find_column(const Fields *fs, const char *name)
{
    for (size_t i = 0; i < fs->n; i++)
        if (is_name(fs->f[i], strlen(fs->f[i]), name))
            return (int)i;
    return -1;
}

static bool csv_header(Scan *sc, Fields *fs, int *lab, int *txt)
{
    if (!csv_record(sc, fs))
        return false;
    *lab = find_column(fs, "label");
    *txt = find_column(fs, "text");
    if (*lab >= 0 && *txt >= 0)
        return true;
    return fail_at(sc, 1, 0, "the first line of a CSV file is a header that names a `label` "
                   "and a `text` column, such as: label,text",
                   "the CSV header has no '%s' column", *lab < 0 ? "label" : "text");
}

static bool parse_csv(Scan *sc)
{
    Fields fs = {0};
    int lab, txt;
    bool ok = csv_header(sc, &fs, &lab, &txt);
    size_t ncol = fs.n;
    while (ok && sc->pos < sc->len) {
        int64_t line = sc->line;
        ok = csv_record(sc, &fs);
        if (!ok || (fs.n == 1 && !fs.f[0][0]))
            continue;   /* an error, or a blank line */
        if (fs.n != ncol) {
            char msg[64];
            snprintf(msg, sizeof msg, "%zu fields, the header has %zu", fs.n, ncol);
            ok = fail_at(sc, line, 0, "quote a field that holds a comma: \"a, b\"", "%s", msg);
            continue;
        }
        ok = keep(sc, dup_trimmed(fs.f[lab], strlen(fs.f[lab])), fs.f[txt], line);
        fs.f[txt] = NULL;
    }
    fields_clear(&fs);
    free(fs.f);
    return ok;
}

/* ---------------------------------------------------------------- entry */

static bool has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && !strcasecmp(path + n - e, ext);
}

/* .csv, .tsv, else the first line: no tab but a comma is CSV. */
static bool looks_csv(const Scan *sc)
{
    if (has_ext(sc->path, ".csv") || has_ext(sc->path, ".tsv"))
        return has_ext(sc->path, ".csv");
    const char *s = sc->s + sc->pos;
    size_t n = sc->len - sc->pos;
    const char *nl = memchr(s, '\n', n);
    n = nl ? (size_t)(nl - s) : n;
    return !memchr(s, '\t', n) && memchr(s, ',', n);
}

bool rt_cls_parse(const char *buf, size_t len, const char *path, RtClsTable *t, IrError *err)
{
    IrError dummy = {0};
    Scan sc = {buf, path, len, 0, 1, t, 0, err ? err : &dummy};
    *t = (RtClsTable){0};
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3))
        sc.pos = 3;
    bool ok = check_utf8(&sc);
    if (ok) {
        t->csv = looks_csv(&sc);
        ok = t->csv ? parse_csv(&sc) : parse_tsv(&sc);
    }
    if (!ok)
        rt_cls_table_free(t);
    return ok;
}

bool rt_cls_read(const char *path, RtClsTable *t, IrError *err)
{
    size_t len;
    char *buf = rt_file_read(path, &len, err);
    *t = (RtClsTable){0};
    if (!buf)
        return false;
    bool ok = rt_cls_parse(buf, len, path, t, err);
    free(buf);
    return ok;
}

void rt_cls_table_free(RtClsTable *t)
{
    for (int64_t i = 0; i < t->n; i++)
        free(t->rec[i].label), free(t->rec[i].text);
    free(t->rec);
    *t = (RtClsTable){0};
}
