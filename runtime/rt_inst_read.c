/* rt_inst_read.c — the instruction file reader (rt_inst_data.h has the
 * formats): a JSON array of objects, or JSON Lines.
 *
 * cJSON parses, but it gives no positions, so the reader finds them itself.
 * The bytes are checked once for UTF-8 and NUL (an error at line:col).  An
 * array is parsed whole; a small scanner then walks the same bytes (strings
 * and nesting only, the text being valid JSON by then) to find the offset
 * where each top-level element starts, and so its line.  A JSON Lines file
 * is parsed a line at a time.  A syntax error is reported at the line:col
 * of cJSON's error pointer.  Each entry's fields are then checked in order
 * and copied out; the cJSON tree is freed before returning.
 */
#include "runtime/rt_inst_data.h"

#include "runtime/rt_utf8.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct Scan {
    const char *s, *path;
    size_t len;
    RtInstSet *set;
    size_t cap;
    IrError *err;
} Scan;

/* ---------------------------------------------------------------- places */

/* 1-based line and column (bytes) of offset off. */
static void line_col(const char *s, size_t off, int64_t *line, size_t *col)
{
    *line = 1;
    size_t bol = 0;
    for (size_t i = 0; i < off; i++)
        if (s[i] == '\n')
            (*line)++, bol = i + 1;
    *col = off - bol + 1;
}

static bool fail_at(Scan *sc, size_t off, const char *hint, const char *what)
{
    int64_t line;
    size_t col;
    line_col(sc->s, off, &line, &col);
    ir_error_where(sc->err, "%s:%lld:%zu", sc->path, (long long)line, col);
    ir_error(sc->err, "%s", what);
    if (hint)
        ir_error_hint(sc->err, "%s", hint);
    return false;
}

static bool fail_entry(Scan *sc, int64_t index, int64_t line, const char *what,
                       const char *arg)
{
    ir_error_where(sc->err, "%s", sc->path);
    ir_error(sc->err, "entry %lld (line %lld): %s%s", (long long)index, (long long)line, what,
             arg);
    ir_error_hint(sc->err, "every entry is an object with a string \"instruction\" and a "
                  "string \"output\" (\"input\" may be absent, null or a string)");
    return false;
}

static bool check_utf8(Scan *sc, size_t from)
{
    const unsigned char *u = (const unsigned char *)sc->s;
    size_t adv;
    for (size_t i = from; i < sc->len; i += adv) {
        if (u[i] == 0)
            return fail_at(sc, i, "remove the byte: a JSON file is text", "a NUL byte");
        if (rt_utf8_decode(u + i, sc->len - i, &adv) < 0) {
            char what[64];
            snprintf(what, sizeof what, "a byte that is not UTF-8 (0x%02x)", u[i]);
            return fail_at(sc, i, "convert the file to UTF-8 (iconv -f latin1 -t utf-8)", what);
        }
    }
    return true;
}

static size_t skip_space(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* A cJSON parse of s[from..to) that must use all of it but white space;
 * NULL + the error at line:col. */
static cJSON *parse_json(Scan *sc, size_t from, size_t to)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(sc->s + from, to - from, &end, false);
    size_t at = end ? (size_t)(end - sc->s) : from;
    if (j && skip_space(sc->s, to, at) == to)
        return j;
    cJSON_Delete(j);
    if (j)
        fail_at(sc, skip_space(sc->s, to, at), "one JSON value only: a JSON array of "
                "objects, or one object per line (JSON Lines)",
                "JSON syntax error: text after the end of the value");
    else
        fail_at(sc, at > to ? to : at, "check the brackets, the commas between values and "
                "the quotes around strings", "JSON syntax error");
    return NULL;
}

/* ---------------------------------------------------------------- entries */

static char *field(Scan *sc, const cJSON *o, const char *key, bool optional, int64_t index,
                   int64_t line, bool *ok)
{
    const cJSON *hit = NULL;
    int count = 0;
    for (const cJSON *c = o->child; c; c = c->next)
        if (c->string && !strcmp(c->string, key))
            hit = hit ? hit : c, count++;
    char what[96];
    if (count > 1) {
        snprintf(what, sizeof what, "the field \"%s\" appears %d times", key, count);
        *ok = fail_entry(sc, index, line, what, "");
    } else if (!hit || (optional && cJSON_IsNull(hit))) {
        if (optional)
            return strdup("");
        snprintf(what, sizeof what, "no \"%s\" field", key);
        *ok = fail_entry(sc, index, line, what, "");
    } else if (!cJSON_IsString(hit)) {
        snprintf(what, sizeof what, "the field \"%s\" is not a string but ", key);
        *ok = fail_entry(sc, index, line, what,
                         cJSON_IsNull(hit) ? "null" : cJSON_IsNumber(hit) ? "a number"
                         : cJSON_IsBool(hit) ? "a boolean" : cJSON_IsArray(hit) ? "an array"
                         : "an object");
    } else {
        return strdup(hit->valuestring);
    }
    return NULL;
}

static const char *kind_of(const cJSON *j)
{
    return cJSON_IsString(j) ? "a string" : cJSON_IsNumber(j) ? "a number"
         : cJSON_IsBool(j) ? "a boolean" : cJSON_IsNull(j) ? "null"
         : cJSON_IsArray(j) ? "an array" : "an object";
}

/* Checks entry j and appends it. */
static bool add_entry(Scan *sc, const cJSON *j, int64_t line)
{
    RtInstSet *s = sc->set;
    int64_t index = s->n;
    if (!cJSON_IsObject(j))
        return fail_entry(sc, index, line, "not an object but ", kind_of(j));
    if ((size_t)s->n == sc->cap) {
        sc->cap = sc->cap ? sc->cap * 2 : 64;
        RtInstEntry *e = realloc(s->e, sc->cap * sizeof *e);
        if (!e) {
            ir_error(sc->err, "%s: out of memory", sc->path);
            return false;
        }
        s->e = e;
    }
    bool ok = true;
    RtInstEntry e = {.index = index, .line = line};
    e.instruction = field(sc, j, "instruction", false, index, line, &ok);
    e.input = ok ? field(sc, j, "input", true, index, line, &ok) : NULL;
    e.output = ok ? field(sc, j, "output", false, index, line, &ok) : NULL;
    e.json = ok ? cJSON_PrintUnformatted(j) : NULL;
    if (ok && (!e.instruction || !e.input || !e.output || !e.json)) {
        ir_error(sc->err, "%s: out of memory", sc->path);
        ok = false;
    }
    if (!ok) {
        free(e.instruction), free(e.input), free(e.output), free(e.json);
        return false;
    }
    s->e[s->n++] = e;
    return true;
}

/* ---------------------------------------------------------------- the two formats */

/* The offsets where the elements of the array at s[start] == '[' begin
 * (s valid JSON: strings and nesting are all that matter), into *out. */
static int64_t element_starts(const char *s, size_t len, size_t start, size_t **out)
{
    size_t cap = 64, *at = malloc(cap * sizeof *at);
    int64_t n = 0;
    int depth = 0;
    bool str = false, expect = false;
    for (size_t i = start; at && i < len && (i == start || depth > 0); i++) {
        char c = s[i];
        if (str) {
            i += c == '\\';
            str = c != '"';
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        if (depth == 1 && expect && c != ']') {
            if ((size_t)n == cap)
                at = realloc(at, (cap *= 2) * sizeof *at);
            if (at)
                at[n++] = i;
            expect = false;
        }
        str = c == '"';
        depth += (c == '[' || c == '{') - (c == ']' || c == '}');
        expect = expect || (depth == 1 && (c == ',' || i == start));
    }
    *out = at;
    return at ? n : -1;
}

static bool parse_array(Scan *sc, size_t start)
{
    cJSON *root = parse_json(sc, start, sc->len);
    if (!root)
        return false;
    if (cJSON_IsArray(root) && !root->child) {   /* [] : the caller says it is empty */
        cJSON_Delete(root);
        return true;
    }
    size_t *at = NULL;
    int64_t n = element_starts(sc->s, sc->len, start, &at);
    bool ok = n == cJSON_GetArraySize(root);
    if (!ok)
        ir_error(sc->err, "%s: out of memory", sc->path);
    if (ok && !cJSON_IsArray(root))
        ok = fail_at(sc, start, NULL, "not a JSON array");
    int64_t line = 1, k = 0;
    size_t pos = 0;
    for (const cJSON *c = root->child; ok && c; c = c->next, k++) {
        for (; pos < at[k]; pos++)
            line += sc->s[pos] == '\n';
        ok = add_entry(sc, c, line);
    }
    free(at);
    cJSON_Delete(root);
    return ok;
}

static bool parse_lines(Scan *sc, size_t start)
{
    int64_t line = 1;
    for (size_t i = 0; i < start; i++)
        line += sc->s[i] == '\n';
    size_t pos = start;
    while (pos < sc->len) {
        const char *nl = memchr(sc->s + pos, '\n', sc->len - pos);
        size_t end = nl ? (size_t)(nl - sc->s) : sc->len;
        if (skip_space(sc->s, end, pos) < end) {
            cJSON *j = parse_json(sc, pos, end);
            bool ok = j && add_entry(sc, j, line);
            cJSON_Delete(j);
            if (!ok)
                return false;
        }
        pos = end + 1;
        line++;
    }
    return true;
}

/* ---------------------------------------------------------------- entry points */

bool rt_inst_parse(const char *buf, size_t len, const char *path, RtInstSet *s, IrError *err)
{
    IrError dummy = {0};
    Scan sc = {buf, path, len, s, 0, err ? err : &dummy};
    *s = (RtInstSet){0};
    size_t from = len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3) ? 3 : 0;
    bool ok = check_utf8(&sc, from);
    size_t start = ok ? skip_space(buf, len, from) : len;
    if (ok && start == len) {
        ir_error_where(sc.err, "%s", path);
        ir_error(sc.err, "the file is empty: no instruction entries");
        ir_error_hint(sc.err, "give a JSON array of {\"instruction\", \"input\", \"output\"} "
                      "objects, or one such object per line (JSON Lines)");
        ok = false;
    } else if (ok && buf[start] != '[' && buf[start] != '{') {
        ok = fail_at(&sc, start, "give a JSON array of {\"instruction\", \"input\", "
                     "\"output\"} objects, or one such object per line (JSON Lines)",
                     "not instruction data: the file starts with neither '[' nor '{'");
    } else if (ok) {
        s->jsonl = buf[start] == '{';
        ok = s->jsonl ? parse_lines(&sc, start) : parse_array(&sc, start);
        if (ok && s->n == 0) {
            ir_error_where(sc.err, "%s", path);
            ir_error(sc.err, "the array is empty: no instruction entries");
            ir_error_hint(sc.err, "give at least one {\"instruction\", \"input\", \"output\"} "
                          "object");
            ok = false;
        }
    }
    if (!ok)
        rt_inst_set_free(s);
    return ok;
}

bool rt_inst_read(const char *path, RtInstSet *s, IrError *err)
{
    size_t len;
    *s = (RtInstSet){0};
    char *buf = rt_file_read(path, &len, err);
    if (!buf)
        return false;
    bool ok = rt_inst_parse(buf, len, path, s, err);
    free(buf);
    return ok;
}

void rt_inst_set_free(RtInstSet *s)
{
    for (int64_t i = 0; i < s->n; i++) {
        RtInstEntry *e = &s->e[i];
        free(e->instruction), free(e->input), free(e->output), free(e->json);
    }
    free(s->e);
    *s = (RtInstSet){0};
}
