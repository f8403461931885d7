/* fe_internal.h — private types shared by the files of the frontend.
 *
 * Loading a model file is one pass over the JSON tree, held in an `Fe`:
 *
 *   fe_load.c    entry points, reading files, JSON syntax errors, `base`
 *   fe_util.c    error places (JSON paths), nearest-name hints, type checks
 *   fe_expr.c    the expression language: numbers and symbolic dims
 *   fe_value.c   reading numbers, integers, dims and shapes from JSON values
 *   fe_config.c  the config section, --set overrides, lazy evaluation
 *   fe_params.c  params sections: init specs, `if`, `alias`; the name table
 *   fe_scope.c   module instances: node lists, resolution by name, repeat
 *   fe_ops.c     one op node from its JSON object: attributes, shape, dtype
 *
 * Errors: the first error wins.  Every function that can fail returns false
 * (or NULL) after filling fe->err through fe_fail, and callers just pass the
 * failure up, so the message always names the innermost place.
 */
#ifndef GRADC_FE_INTERNAL_H
#define GRADC_FE_INTERNAL_H

#include "fe.h"

#include <cjson/cJSON.h>

#define FE_PATH 256            /* JSON paths; IrError.where holds as much */
#define FE_MAX_DEPTH 16        /* module instances inside module instances */
#define FE_MAX_REPEAT 10000
#define FE_MAX_NODES 100000    /* IR nodes per graph: bounds mutated files */
#define FE_MAX_BASES 8         /* `base` files chained */
#define FE_MAX_CFG_DEPTH 256   /* config keys evaluated inside each other */
#define FE_MAX_EXPR_DEPTH 64   /* parentheses and operators nested */
#define FE_MAX_MOD_IO 32       /* inputs or outputs of a module or the model */

/* ---------------------------------------------------------------- Fe */

typedef struct FeLayer {       /* one file of a `base` chain, derived first */
    char *file;
    cJSON *doc;                /* as written, for error places */
} FeLayer;

typedef struct FeKey {         /* one config key */
    const char *key;
    const cJSON *item;         /* its value in the file */
    const char *set;           /* a --set override, or NULL */
    int state;                 /* 0 new, 1 being evaluated, 2 done */
    double value;
} FeKey;

typedef struct FeName {        /* the param name table (absolute names) */
    const char *name;
    IrNode *node;
} FeName;

typedef struct Fe {
    const char *file;          /* the file named in error places */
    FeLayer layer[FE_MAX_BASES];
    int nlayer;
    cJSON *root;               /* the merged document */
    IrGraph *g;
    IrError *err;
    FeKey *key;
    int nkey;
    int cfg_stack[FE_MAX_CFG_DEPTH];
    int cfg_depth;
    FeName *names;             /* open addressing, capacity a power of 2 */
    int nnames, capnames;
    int depth;                 /* module nesting */
    int ndropout;              /* dropout nodes so far: their default seeds */
} Fe;

/* ---------------------------------------------------------------- fe_util.c */

/* Fills fe->err (unless an earlier error is set): where = "FILE: PATH". */
bool fe_fail(Fe *fe, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets the hint of the current error unless it has one. */
void fe_hint(Fe *fe, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds a place to an error filled by the IR (shape rules). */
bool fe_fail_ir(Fe *fe, const char *path);
/* buf = base + "/" + key, the key escaped as in JSON pointers (~0 ~1). */
void fe_path_key(char *buf, const char *base, const char *key);
void fe_path_idx(char *buf, const char *base, int i);

/* Nearest-name search for hints: feed candidates, read `best`. */
typedef struct FeNear {
    const char *name;
    const char *best;
    int dist;
} FeNear;
FeNear fe_near(const char *name);
void fe_near_add(FeNear *n, const char *cand);
void fe_near_list(FeNear *n, const char *const *cands);
void fe_hint_near(Fe *fe, const FeNear *n);

const char *fe_type_name(const cJSON *v);
bool fe_want(Fe *fe, const cJSON *v, int type, const char *path, const char *what);
/* Rejects keys not in `known` (NULL-terminated) and repeated keys. */
bool fe_check_keys(Fe *fe, const cJSON *obj, const char *path, const char *const *known,
                   const char *what);
bool fe_check_dupes(Fe *fe, const cJSON *obj, const char *path);
bool fe_is_ident(const char *s);

/* ---------------------------------------------------------------- fe_expr.c */

/* Where an expression is evaluated decides what a name may be:
 *   FE_NUM       config keys only: attributes, repeat, if, param shapes
 *   FE_DIM       config keys and the graph's symbols: reshape shapes
 *   FE_INPUT     as FE_DIM, and a new name becomes a symbol: input shapes */
typedef enum FeCtx { FE_NUM, FE_DIM, FE_INPUT } FeCtx;

typedef struct FeVal {
    bool is_dim;               /* a symbolic dim (uses a symbol) */
    double num;
    IrDim dim;
} FeVal;

bool fe_eval(Fe *fe, const char *src, FeCtx ctx, const char *path, FeVal *out);
/* Sum of |coefficients|: a bound used to keep dim arithmetic in range. */
double fe_dim_mag(IrDim d);

/* ---------------------------------------------------------------- fe_value.c */

bool fe_number(Fe *fe, const cJSON *v, const char *path, double *out);
bool fe_int(Fe *fe, const cJSON *v, const char *path, int64_t *out);
bool fe_truth(Fe *fe, const cJSON *v, const char *path, bool *out);
/* A list of dims.  `infer` allows one -1 (reshape); its index goes there. */
bool fe_shape(Fe *fe, const cJSON *list, FeCtx ctx, const char *path, IrShape *out,
              int *infer);
/* Rejects shapes whose element count could overflow 64-bit arithmetic. */
bool fe_size_ok(Fe *fe, const IrShape *s, const char *path);

/* ---------------------------------------------------------------- fe_config.c */

bool fe_config_load(Fe *fe, const FeOptions *opt);
int fe_config_find(const Fe *fe, const char *name);
bool fe_config_value(Fe *fe, int k, double *out);
bool fe_config_export(Fe *fe, FeModel *m);

/* ---------------------------------------------------------------- fe_params.c */

typedef struct FeLocal {       /* a param as seen inside one scope */
    const char *rel;           /* name relative to the scope's prefix */
    IrNode *node;              /* NULL while an alias is pending, or when off */
    const char *off;           /* the `if` that switched it off, or NULL */
} FeLocal;

typedef struct FeScope FeScope;

bool fe_params_build(Fe *fe, FeScope *sc);
IrNode *fe_name_get(const Fe *fe, const char *name);
bool fe_name_put(Fe *fe, const char *name, IrNode *node, const char *path);
void fe_names_free(Fe *fe);
/* "PREFIX.REL", or REL at the top level; an arena string. */
const char *fe_qualify(Fe *fe, const char *prefix, const char *rel);

/* ---------------------------------------------------------------- fe_scope.c */

typedef struct FeSpec {        /* one entry of a "nodes" list */
    const cJSON *json;
    const char *name;
    int index;
    uint8_t state;             /* FE_NEW, FE_ACTIVE (on the DFS stack), FE_DONE */
    int8_t on;                 /* -1 unknown, 0 switched off by `if`, 1 present */
    IrNode *node;              /* its value (a module's first output) */
    int nout;
    const char **outname;      /* module instances: their outputs by name */
    IrNode **out;
} FeSpec;

struct FeScope {               /* the top level or one module instance */
    const cJSON *def;          /* the module object (the root at top level) */
    char path[FE_PATH];        /* "" or "/modules/NAME" */
    const char *module;        /* NULL at top level */
    const char *prefix;        /* "trf_blocks.3"; "" at top level */
    int nin;
    const char *in_name[FE_MAX_MOD_IO];
    IrNode *in_node[FE_MAX_MOD_IO];
    FeSpec *spec;
    int nspec;
    FeLocal *param;
    int nparam;
};

bool fe_build_top(Fe *fe);

/* ---------------------------------------------------------------- fe_ops.c */

/* The op of a node object, its input count checked; OP_COUNT on error. */
IrOp fe_op_check(Fe *fe, const cJSON *spec, const char *path, int nin);
IrNode *fe_op_build(Fe *fe, FeScope *sc, FeSpec *sp, const char *path, IrOp op, IrNode **in,
                    int nin);
IrNode *fe_scalar(Fe *fe, double v, const char *path);
bool fe_room(Fe *fe, const char *path);

#endif
