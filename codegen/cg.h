/* cg.h — gradc codegen: host target, LLVM modules, ORC JIT, object cache.
 *
 * Kernels are built with the LLVM C API (never as LLVM IR text), optimized
 * with the new pass manager ("default<O3>") for the host CPU and its
 * features, and compiled by ORC LLJIT into function pointers.  Compiled
 * objects are cached on disk under a key made of the caller's IR text and
 * the target, so a second run of the same graph skips LLVM entirely.
 *
 * Ownership, in one paragraph.  A CgModule bundles an LLVM module with the
 * LLVMContext it lives in (owned through an ORC ThreadSafeContext, because
 * ORC needs that wrapper and the LLVM 19 C API can only create one with a
 * fresh context) and a target machine of its own.  Build IR in `m->ctx` /
 * `m->mod`; never dispose either yourself.  cg_jit_add_module always
 * consumes the CgModule, on success and on error; otherwise free it with
 * cg_module_free.  Strings returned by cg_* are malloc'd: free() them.
 *
 * Errors are IrError messages (ir/ir.h); nothing here exits or prints.
 *
 * Sections follow the files:
 *   cg_target.c   CgTarget: host triple, CPU, features; target machines
 *   cg_jit.c      CgModule, CgJit: optimize, asm/IR dumps, LLJIT, lookup
 *   cg_cache.c    on-disk object cache: 128-bit key, atomic store, load
 *
 * Example: JIT `float twice(float)`.
 *
 *   IrError err = {0};
 *   CgJit *jit = cg_jit_new(&err);
 *   CgModule *m = cg_module_new("demo", &err);
 *   LLVMTypeRef f32 = LLVMFloatTypeInContext(m->ctx);
 *   LLVMTypeRef fty = LLVMFunctionType(f32, &f32, 1, 0);
 *   LLVMValueRef fn = LLVMAddFunction(m->mod, "twice", fty);
 *   // (target attributes are added to every definition by the optimizer)
 *   LLVMBuilderRef b = LLVMCreateBuilderInContext(m->ctx);
 *   LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(m->ctx, fn, "e"));
 *   LLVMValueRef x = LLVMGetParam(fn, 0);
 *   LLVMBuildRet(b, LLVMBuildFAdd(b, x, x, "y"));
 *   LLVMDisposeBuilder(b);
 *   CgStats st;
 *   if (!cg_jit_add_module(jit, m, "twice v1", &st, &err))   // consumes m
 *       ...report err...;
 *   float (*twice)(float) = (float (*)(float))cg_jit_lookup(jit, "twice", &err);
 *   printf("%g, cache %s, %.1f ms\n", twice(2), st.hit ? "hit" : "miss", st.total_ms);
 *   cg_jit_free(jit);
 */
#ifndef GRADC_CG_H
#define GRADC_CG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/Orc.h>
#include <llvm-c/TargetMachine.h>

#include "ir.h"

/* ---------------------------------------------------------------- cg_target.c */

/* The host as LLVM sees it.  Filled once per process (thread-safe) and
 * immutable afterwards; nothing to free. */
typedef struct CgTarget {
    char triple[128];       /* x86_64-pc-linux-gnu */
    char cpu[64];           /* znver5, sapphirerapids, ... */
    char features[4096];    /* +avx512f,+fma,-xop,... (LLVMGetHostCPUFeatures) */
    char llvm_version[32];  /* 19.1.7, of the loaded libLLVM */
    LLVMTargetRef target;
} CgTarget;

/* The host target, initializing LLVM's native target on first use.
 * Returns NULL and fills err if LLVM has no backend for the host. */
const CgTarget *cg_target_host(IrError *err);

/* A new target machine for t at O3 (PIC, small code model: what JITLink
 * wants).  The caller owns it (LLVMDisposeTargetMachine). */
LLVMTargetMachineRef cg_target_machine(const CgTarget *t, IrError *err);

/* Sets "target-cpu", "target-features" and "prefer-vector-width"="512" on a
 * function, so that the vectorizer uses zmm registers on AVX-512 hosts even
 * where the CPU's tuning prefers 256-bit vectors.  cg_module_optimize does
 * this for every definition that lacks "target-cpu". */
void cg_target_set_fn_attrs(const CgTarget *t, LLVMValueRef fn);

/* True if t's feature string enables `feature` (e.g. "avx512f"). */
bool cg_target_has_feature(const CgTarget *t, const char *feature);

/* Consumes e (may be NULL).  If e is an error, fills err with
 * "WHAT: MESSAGE" and returns false; returns true for success. */
bool cg_llvm_ok(LLVMErrorRef e, const char *what, IrError *err);

/* ---------------------------------------------------------------- cg_jit.c */

/* One LLVM module under construction.  ctx and mod are for building; the
 * other fields are private. */
typedef struct CgModule {
    LLVMContextRef ctx;
    LLVMModuleRef mod;                  /* triple and data layout already set */
    LLVMOrcThreadSafeContextRef tsc_;   /* owns ctx */
    LLVMTargetMachineRef tm_;
    const CgTarget *target_;
    bool optimized_;
    double opt_ms_;
} CgModule;

CgModule *cg_module_new(const char *name, IrError *err);
void cg_module_free(CgModule *m);

/* Verifies the module, sets the target attributes on every definition and
 * runs "default<O3>" with the module's target machine.  Runs once: later
 * calls (and cg_jit_add_module) do nothing more. */
bool cg_module_optimize(CgModule *m, IrError *err);

/* Machine code (AT&T assembly) and LLVM IR of the optimized module, both
 * malloc'd.  They optimize m first; m stays usable and can still be added
 * to a JIT.  The assembly is emitted from a clone, so m is not lowered. */
char *cg_module_to_asm(CgModule *m, IrError *err);
char *cg_module_to_llvm_ir(CgModule *m, IrError *err);

/* What one cg_jit_add_module did.  Times in milliseconds.  Without the
 * cache, LLJIT generates machine code lazily at the first lookup, so
 * codegen_ms is 0 and total_ms covers verification and optimization. */
typedef struct CgStats {
    bool hit;           /* loaded from the cache, LLVM not run */
    bool stored;        /* written to the cache */
    double opt_ms;      /* verify + default<O3> */
    double codegen_ms;  /* object emission */
    double total_ms;    /* everything cg_jit_add_module did */
    char key[33];       /* cache key, hex ("" when the cache is off) */
} CgStats;

typedef struct CgJit CgJit;

/* An LLJIT for the host that also resolves process symbols (libc, libm,
 * OpenBLAS, and gradc's own exported functions).  The cache is on unless
 * the environment sets GRADC_NO_CACHE to a non-empty value other than "0". */
CgJit *cg_jit_new(IrError *err);
void cg_jit_free(CgJit *jit);

/* The no_cache switch.  Off by default (see cg_jit_new). */
void cg_jit_set_no_cache(CgJit *jit, bool no_cache);
bool cg_jit_cache_enabled(const CgJit *jit);

/* Optimizes and compiles m into the JIT, consuming m.  With the cache on,
 * key_text (gradc IR text of the kernels plus the lowering's version, say)
 * keys the object; it must determine the LLVM IR completely.  NULL keys on
 * the printed LLVM module instead, which is always sound but costs a print.
 * On a hit the object is loaded and LLVM does not run.  st may be NULL. */
bool cg_jit_add_module(CgJit *jit, CgModule *m, const char *key_text,
                       CgStats *st, IrError *err);

/* Loads a cached object for key_text without a module, so a caller can skip
 * building IR.  Returns true on a hit (the object is in the JIT); false on
 * a miss, when the cache is off, or if the entry is unusable. */
bool cg_jit_add_cached(CgJit *jit, const char *key_text, CgStats *st);

/* The address of a JIT'd function, compiling its module if needed.
 * Returns NULL and fills err if it cannot be found or linked. */
void *cg_jit_lookup(CgJit *jit, const char *name, IrError *err);

/* ---------------------------------------------------------------- cg_cache.c */

/* A 128-bit FNV-1a hash. */
typedef struct CgKey {
    uint64_t lo, hi;
} CgKey;

/* The cache key of `text` (len bytes) on target t: hashes the text, triple,
 * CPU, features, LLVM version and the cache format version. */
CgKey cg_cache_key(const CgTarget *t, const char *text, size_t len);
void cg_cache_key_hex(CgKey k, char out[33]);

/* The cache directory: $GRADC_CACHE_DIR, else $XDG_CACHE_HOME/gradc, else
 * $HOME/.cache/gradc.  Returns false if none can be named (or it is too
 * long); does not create it. */
bool cg_cache_dir(char *out, size_t n);

/* Reads the object stored under k in dir.  Returns NULL on a miss or on an
 * entry that fails its checks (magic, key, size, checksum).  The buffer is
 * the caller's (LLVMDisposeMemoryBuffer, or hand it to LLJIT). */
LLVMMemoryBufferRef cg_cache_load(const char *dir, CgKey k);

/* Stores obj under k in dir atomically (temp file, fsync, rename), creating
 * dir if needed.  Returns false on any I/O error; the cache is then simply
 * not written. */
bool cg_cache_store(const char *dir, CgKey k, const void *obj, size_t len);

/* ---------------------------------------------------------------- cg_gemm.c */

/* Runs fn(ctx, begin, end) over [0, n) on a pool and returns when all is
 * done (the runtime's rt_pool_run has this shape). */
typedef void (*CgParallelFor)(void *pool, void (*fn)(void *const *ctx, int64_t begin, int64_t end),
                              void *const *ctx, int64_t n);

/* The sgemm JIT kernels call, with cblas_sgemm's arguments: C is split into
 * a grid of tiles that depends only on M, N and K, one single-threaded
 * cblas_sgemm each, so the result has the same bits at any thread count
 * (with OpenBLAS kept at one thread).  The tiles run on the pool set for
 * the calling thread, else one after the other. */
void cg_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* Lends a pool to the calling thread's cg_sgemm calls (run NULL: none). */
void cg_gemm_set_pool(CgParallelFor run, void *pool);

#endif
