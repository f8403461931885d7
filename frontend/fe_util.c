/* fe_util.c — error places, nearest-name hints and JSON type checks.
 *
 * Every user error of the frontend names a place: the file and a JSON
 * pointer into it (/modules/block/nodes/3/in/1).  With `base` files the
 * place is looked up in the chain of files, so an error inside a section
 * that came from the base file names the base file.  Hints for misspelt
 * names come from the nearest candidate by edit distance.
 */
#include "fe_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- places */

/* Reads the unescaped JSON-pointer token at *p (advancing past it). */
static void path_token(const char **p, char *tok, size_t cap)
{
    size_t n = 0;
    const char *s = *p + (**p == '/');
    for (; *s && *s != '/'; s++) {
        char c = *s;
        if (c == '~' && (s[1] == '0' || s[1] == '1'))
            c = *++s == '0' ? '~' : '/';
        if (n + 1 < cap)
            tok[n++] = c;
    }
    tok[n] = 0;
    *p = s;
}

/* The file of the chain that defined the section (and key) `path` is in:
 * a derived file wins for every top-level key and section entry it sets. */
static const char *origin(const Fe *fe, const char *path)
{
    char sect[FE_PATH], key[FE_PATH];
    const char *p = path;
    if (fe->nlayer <= 1 || path[0] != '/')
        return fe->file;
    path_token(&p, sect, sizeof sect);
    path_token(&p, key, sizeof key);
    for (int i = 0; i < fe->nlayer; i++) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(fe->layer[i].doc, sect);
        if (s && (!cJSON_IsObject(s) || !key[0] || cJSON_GetObjectItemCaseSensitive(s, key)))
            return fe->layer[i].file;
    }
    return fe->file;
}

bool fe_fail(Fe *fe, const char *path, const char *fmt, ...)
{
    if (fe->err->set)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fe->err->msg, sizeof fe->err->msg, fmt, ap);
    va_end(ap);
    fe->err->set = true;
    fe->err->hint[0] = 0;
    if (path && path[0] && path[0] != '/')
        ir_error_where(fe->err, "%s", path); /* "--set k=v" */
    else if (path && path[0])
        ir_error_where(fe->err, "%s: %s", origin(fe, path), path);
    else
        ir_error_where(fe->err, "%s", fe->file);
    return false;
}

bool fe_fail_ir(Fe *fe, const char *path)
{
    if (path && path[0])
        ir_error_where(fe->err, "%s: %s", origin(fe, path), path);
    fe->err->set = true;
    return false;
}

void fe_hint(Fe *fe, const char *fmt, ...)
{
    if (fe->err->hint[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fe->err->hint, sizeof fe->err->hint, fmt, ap);
    va_end(ap);
}

void fe_path_key(char *buf, const char *base, const char *key)
{
    size_t n = snprintf(buf, FE_PATH, "%s/", base);
    for (const char *k = key; *k && n + 3 < FE_PATH; k++) {
        if (*k == '~' || *k == '/') {
            buf[n++] = '~';
            buf[n++] = *k == '~' ? '0' : '1';
        } else
            buf[n++] = *k;
    }
    buf[n < FE_PATH ? n : FE_PATH - 1] = 0;
}

void fe_path_idx(char *buf, const char *base, int i)
{
    snprintf(buf, FE_PATH, "%s/%d", base, i);
}

/* ---------------------------------------------------------------- nearest names */

/* Levenshtein distance with two rows; long names are compared by prefix. */
static int edit_distance(const char *a, const char *b)
{
    enum { L = 64 };
    int la = (int)strnlen(a, L), lb = (int)strnlen(b, L);
    int prev[L + 1], cur[L + 1];
    for (int j = 0; j <= lb; j++)
        prev[j] = j;
    for (int i = 1; i <= la; i++) {
        cur[0] = i;
        for (int j = 1; j <= lb; j++) {
            int d = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < d)
                d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            cur[j] = d;
        }
        memcpy(prev, cur, sizeof prev);
    }
    return prev[lb];
}

FeNear fe_near(const char *name)
{
    FeNear n = {name, NULL, 1 << 30};
    return n;
}

void fe_near_add(FeNear *n, const char *cand)
{
    if (!cand || !cand[0] || !n->name[0] || !strcmp(cand, n->name))
        return; /* an empty name is near every short one: no guess */
    int d = edit_distance(n->name, cand);
    if (d < n->dist) {
        n->dist = d;
        n->best = cand;
    }
}

void fe_near_list(FeNear *n, const char *const *cands)
{
    for (; *cands; cands++)
        fe_near_add(n, *cands);
}

void fe_hint_near(Fe *fe, const FeNear *n)
{
    if (n->best)
        fe_hint(fe, "did you mean '%s'?", n->best);
}

/* ---------------------------------------------------------------- JSON types */

const char *fe_type_name(const cJSON *v)
{
    if (!v || cJSON_IsNull(v))
        return "null";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsArray(v))
        return "a list";
    return "an object";
}

static const char *want_name(int type)
{
    switch (type) {
    case cJSON_Array: return "a list";
    case cJSON_Object: return "an object";
    case cJSON_String: return "a string";
    case cJSON_Number: return "a number";
    default: return "a value";
    }
}

bool fe_want(Fe *fe, const cJSON *v, int type, const char *path, const char *what)
{
    if (v && (v->type & 0xFF) == type)
        return true;
    return fe_fail(fe, path, "%s must be %s, got %s", what, want_name(type), fe_type_name(v));
}

bool fe_check_dupes(Fe *fe, const cJSON *obj, const char *path)
{
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && !strcmp(a->string, b->string)) {
                char p[FE_PATH];
                fe_path_key(p, path, b->string);
                return fe_fail(fe, p, "key '%s' appears twice", b->string);
            }
    return true;
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return true;
    return false;
}

bool fe_check_keys(Fe *fe, const cJSON *obj, const char *path, const char *const *known,
                   const char *what)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!c->string || in_list(c->string, known))
            continue;
        char p[FE_PATH];
        fe_path_key(p, path, c->string);
        FeNear n = fe_near(c->string);
        fe_near_list(&n, known);
        fe_fail(fe, p, "unknown key '%s' in %s", c->string, what);
        fe_hint_near(fe, &n);
        return false;
    }
    return fe_check_dupes(fe, obj, path);
}

bool fe_is_ident(const char *s)
{
    if (!s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    for (s++; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}
