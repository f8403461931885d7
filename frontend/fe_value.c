/* fe_value.c — numbers, integers, dims and shapes read from JSON values.
 *
 * Anywhere a number goes, a model file may write a JSON number, a boolean
 * (1 or 0) or an expression string (fe_expr.c).  Integers must come out
 * integral; dims must be positive integers or symbolic dims.  Sizes are
 * bounded here so that later shape arithmetic cannot overflow: every
 * constant dim is below 2^31 and a shape's elements below 2^50.
 */
#include "fe_internal.h"

#include <math.h>
#include <stdio.h>

#define MAX_ELEMS 1125899906842624.0 /* 2^50 */

static bool eval_item(Fe *fe, const cJSON *v, FeCtx ctx, const char *path, FeVal *out)
{
    FeVal zero = {0};
    *out = zero;
    if (cJSON_IsNumber(v)) {
        out->num = v->valuedouble;
        return isfinite(out->num) ? true : fe_fail(fe, path, "number out of range");
    }
    if (cJSON_IsBool(v)) {
        out->num = cJSON_IsTrue(v);
        return true;
    }
    if (cJSON_IsString(v))
        return fe_eval(fe, v->valuestring, ctx, path, out);
    return fe_fail(fe, path, "expected a number or an expression string, got %s",
                   fe_type_name(v));
}

bool fe_number(Fe *fe, const cJSON *v, const char *path, double *out)
{
    FeVal x;
    if (!eval_item(fe, v, FE_NUM, path, &x))
        return false;
    *out = x.num;
    return true;
}

bool fe_int(Fe *fe, const cJSON *v, const char *path, int64_t *out)
{
    double x;
    if (!fe_number(fe, v, path, &x))
        return false;
    if (x != floor(x) || fabs(x) > 9007199254740992.0)
        return fe_fail(fe, path, "expected an integer, got %g", x);
    *out = (int64_t)x;
    return true;
}

bool fe_truth(Fe *fe, const cJSON *v, const char *path, bool *out)
{
    double x;
    if (!fe_number(fe, v, path, &x))
        return false;
    *out = x != 0;
    return true;
}

/* One dim: a positive integer constant or a symbolic dim (-1 if allowed). */
static bool read_dim(Fe *fe, const cJSON *v, FeCtx ctx, const char *path, bool minus1,
                     IrDim *out)
{
    FeVal x;
    if (!eval_item(fe, v, ctx, path, &x))
        return false;
    int64_t c;
    if (x.is_dim && !ir_dim_is_const(x.dim, &c)) {
        *out = x.dim;
        return true;
    }
    if (x.is_dim)
        x.num = (double)c;
    if (x.num == -1 && minus1) {
        *out = ir_dim_const(-1);
        return true;
    }
    if (x.num != floor(x.num) || x.num < 1 || x.num > 2147483647.0)
        return fe_fail(fe, path, "a dim must be a positive integer below 2^31, got %g", x.num);
    *out = ir_dim_const((int64_t)x.num);
    return true;
}

bool fe_size_ok(Fe *fe, const IrShape *s, const char *path)
{
    double n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= fe_dim_mag(s->d[i]) > 0 ? fe_dim_mag(s->d[i]) : 1;
    if (n <= MAX_ELEMS)
        return true;
    char buf[256];
    return fe_fail(fe, path, "shape %s has too many elements (more than 2^50)",
                   (ir_shape_str(s, fe->g->sym, buf, sizeof buf), buf));
}

bool fe_shape(Fe *fe, const cJSON *list, FeCtx ctx, const char *path, IrShape *out, int *infer)
{
    if (!fe_want(fe, list, cJSON_Array, path, "a shape"))
        return false;
    int rank = cJSON_GetArraySize(list), i = 0;
    if (rank > IR_MAX_RANK)
        return fe_fail(fe, path, "rank %d exceeds the maximum rank %d", rank, IR_MAX_RANK);
    IrShape s = ir_shape_of(0, NULL);
    s.rank = (uint8_t)rank;
    if (infer)
        *infer = -1;
    for (const cJSON *d = list->child; d; d = d->next, i++) {
        char p[FE_PATH];
        fe_path_idx(p, path, i);
        if (!read_dim(fe, d, ctx, p, infer && *infer < 0, &s.d[i]))
            return false;
        if (infer && ir_dim_eq(s.d[i], ir_dim_const(-1)))
            *infer = i;
    }
    *out = s;
    return infer && *infer >= 0 ? true : fe_size_ok(fe, &s, path);
}
