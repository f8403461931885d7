/* cg_jit.c — LLVM modules, the O3 pipeline, dumps, and the ORC LLJIT.
 *
 * A CgModule owns its LLVMContext through an ORC ThreadSafeContext, the
 * only way the LLVM 19 C API lets a module built by us end up in LLJIT.
 * It also owns a target machine of its own: LLVMRunPasses needs one for
 * target-aware optimization (without it the vectorizer does not know about
 * AVX-512), and asm or object emission needs one.  The JIT's target machine
 * is a different one, because LLVMOrcJITTargetMachineBuilderCreateFromTarget-
 * Machine consumes the machine it is given.
 *
 * cg_jit_add_module has two paths:
 *   cache on   key -> cached object?  yes: LLVMOrcLLJITAddObjectFile.
 *              no: optimize, emit an object with the module's target
 *              machine, store it, add it as an object.  Hits and misses
 *              thus run the very same machine code.
 *   cache off  optimize, wrap in a ThreadSafeModule, hand it to LLJIT,
 *              which generates code lazily at the first lookup.
 * Either way the module is consumed.  LLJIT's ExecutionSession reports
 * link errors (say, an undefined symbol) through a reporter that we keep
 * and attach to the failing lookup's message instead of printing them.
 */
#include "cg.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Transforms/PassBuilder.h>

struct CgJit {
    LLVMOrcLLJITRef lljit;
    const CgTarget *target;
    bool no_cache;
    char cache_dir[PATH_MAX]; /* "" when no directory could be named */
    char session_error[512];  /* last error the ExecutionSession reported */
};

static double cg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *cg_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---------------------------------------------------------------- modules */

CgModule *cg_module_new(const char *name, IrError *err)
{
    const CgTarget *t = cg_target_host(err);
    if (!t)
        return NULL;
    CgModule *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->target_ = t;
    if (!(m->tm_ = cg_target_machine(t, err))) {
        free(m);
        return NULL;
    }
    m->tsc_ = LLVMOrcCreateNewThreadSafeContext();
    m->ctx = LLVMOrcThreadSafeContextGetContext(m->tsc_);
    m->mod = LLVMModuleCreateWithNameInContext(name, m->ctx);
    LLVMSetTarget(m->mod, t->triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(m->tm_);
    LLVMSetModuleDataLayout(m->mod, dl);
    LLVMDisposeTargetData(dl);
    return m;
}

void cg_module_free(CgModule *m)
{
    if (!m)
        return;
    if (m->mod)
        LLVMDisposeModule(m->mod); /* before its context goes */
    if (m->tsc_)
        LLVMOrcDisposeThreadSafeContext(m->tsc_);
    if (m->tm_)
        LLVMDisposeTargetMachine(m->tm_);
    free(m);
}

static const char *cg_module_name(const CgModule *m)
{
    size_t len;
    return LLVMGetModuleIdentifier(m->mod, &len);
}

static bool cg_module_verify(CgModule *m, IrError *err)
{
    char *msg = NULL;
    bool bad = LLVMVerifyModule(m->mod, LLVMReturnStatusAction, &msg);
    if (bad)
        ir_error(err, "codegen: invalid LLVM module '%s': %s", cg_module_name(m), msg);
    LLVMDisposeMessage(msg);
    return !bad;
}

/* Target attributes on every definition that has none yet. */
static void cg_module_set_target_attrs(CgModule *m)
{
    for (LLVMValueRef fn = LLVMGetFirstFunction(m->mod); fn; fn = LLVMGetNextFunction(fn)) {
        bool has_cpu = LLVMGetStringAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                                                     "target-cpu", 10) != NULL;
        if (!LLVMIsDeclaration(fn) && !has_cpu)
            cg_target_set_fn_attrs(m->target_, fn);
    }
}

static bool cg_module_run_o3(CgModule *m, IrError *err)
{
    LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(o, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(o, 1);
    LLVMPassBuilderOptionsSetLoopInterleaving(o, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(o, 1);
    LLVMErrorRef e = LLVMRunPasses(m->mod, "default<O3>", m->tm_, o);
    LLVMDisposePassBuilderOptions(o);
    return cg_llvm_ok(e, "codegen: default<O3>", err);
}

bool cg_module_optimize(CgModule *m, IrError *err)
{
    if (m->optimized_)
        return true;
    double t0 = cg_now_ms();
    if (!cg_module_verify(m, err))
        return false;
    cg_module_set_target_attrs(m);
    if (!cg_module_run_o3(m, err))
        return false;
    m->optimized_ = true;
    m->opt_ms_ = cg_now_ms() - t0;
    return true;
}

/* Emits mod (which code generation modifies) with tm. */
static LLVMMemoryBufferRef cg_emit(LLVMTargetMachineRef tm, LLVMModuleRef mod,
                                   LLVMCodeGenFileType kind, IrError *err)
{
    char *msg = NULL;
    LLVMMemoryBufferRef buf = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, kind, &msg, &buf)) {
        ir_error(err, "codegen: emitting machine code: %s", msg ? msg : "unknown error");
        buf = NULL;
    }
    LLVMDisposeMessage(msg);
    return buf;
}

char *cg_module_to_asm(CgModule *m, IrError *err)
{
    if (!cg_module_optimize(m, err))
        return NULL;
    LLVMModuleRef clone = LLVMCloneModule(m->mod);
    LLVMMemoryBufferRef buf = cg_emit(m->tm_, clone, LLVMAssemblyFile, err);
    LLVMDisposeModule(clone);
    if (!buf)
        return NULL;
    char *text = cg_strndup(LLVMGetBufferStart(buf), LLVMGetBufferSize(buf));
    LLVMDisposeMemoryBuffer(buf);
    return text;
}

char *cg_module_to_llvm_ir(CgModule *m, IrError *err)
{
    if (!cg_module_optimize(m, err))
        return NULL;
    char *s = LLVMPrintModuleToString(m->mod);
    char *text = cg_strndup(s, strlen(s));
    LLVMDisposeMessage(s);
    return text;
}

/* ---------------------------------------------------------------- the JIT */

static void cg_jit_report(void *ctx, LLVMErrorRef e)
{
    CgJit *jit = ctx;
    char *msg = LLVMGetErrorMessage(e);
    snprintf(jit->session_error, sizeof jit->session_error, "%s", msg);
    LLVMDisposeErrorMessage(msg);
}

static bool cg_jit_create_lljit(CgJit *jit, IrError *err)
{
    LLVMTargetMachineRef tm = cg_target_machine(jit->target, err);
    if (!tm)
        return false;
    LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(
        b, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm)); /* consumes tm */
    return cg_llvm_ok(LLVMOrcCreateLLJIT(&jit->lljit, b), "codegen: creating the JIT", err);
}

static bool cg_jit_add_process_symbols(CgJit *jit, IrError *err)
{
    LLVMOrcDefinitionGeneratorRef gen;
    char prefix = LLVMOrcLLJITGetGlobalPrefix(jit->lljit);
    LLVMErrorRef e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, prefix, NULL, NULL);
    if (!cg_llvm_ok(e, "codegen: process symbol generator", err))
        return false;
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jit->lljit), gen);
    return true;
}

/* cg_sgemm by its address: kernels call it whether or not the process
 * exports its symbols. */
static bool cg_jit_add_gemm(CgJit *jit, IrError *err)
{
    LLVMOrcCSymbolMapPair sym = {
        LLVMOrcLLJITMangleAndIntern(jit->lljit, "cg_sgemm"),
        {(LLVMOrcExecutorAddress)(uintptr_t)cg_sgemm,
         {LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0}},
    };
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(&sym, 1);
    LLVMErrorRef e = LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(jit->lljit), mu);
    return cg_llvm_ok(e, "codegen: defining cg_sgemm", err);
}

static bool cg_env_no_cache(void)
{
    const char *v = getenv("GRADC_NO_CACHE");
    return v && v[0] && strcmp(v, "0") != 0;
}

CgJit *cg_jit_new(IrError *err)
{
    const CgTarget *t = cg_target_host(err);
    if (!t)
        return NULL;
    CgJit *jit = calloc(1, sizeof *jit);
    if (!jit)
        return NULL;
    jit->target = t;
    if (!cg_jit_create_lljit(jit, err) || !cg_jit_add_process_symbols(jit, err) ||
        !cg_jit_add_gemm(jit, err)) {
        cg_jit_free(jit);
        return NULL;
    }
    LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(jit->lljit),
                                            cg_jit_report, jit);
    jit->no_cache = cg_env_no_cache();
    if (!cg_cache_dir(jit->cache_dir, sizeof jit->cache_dir))
        jit->cache_dir[0] = '\0';
    return jit;
}

void cg_jit_free(CgJit *jit)
{
    if (!jit)
        return;
    if (jit->lljit)
        LLVMConsumeError(LLVMOrcDisposeLLJIT(jit->lljit));
    free(jit);
}

void cg_jit_set_no_cache(CgJit *jit, bool no_cache)
{
    jit->no_cache = no_cache;
}

bool cg_jit_cache_enabled(const CgJit *jit)
{
    return !jit->no_cache && jit->cache_dir[0];
}

/* Hands obj (consumed) to the JIT. */
static bool cg_jit_add_object(CgJit *jit, LLVMMemoryBufferRef obj, IrError *err)
{
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(jit->lljit);
    return cg_llvm_ok(LLVMOrcLLJITAddObjectFile(jit->lljit, jd, obj), "codegen: adding object",
                      err);
}

/* A cache hit puts the object into the JIT.  An entry the JIT refuses is
 * treated as a miss; compiling then reports the real problem. */
static bool cg_jit_load(CgJit *jit, CgKey k, CgStats *st)
{
    LLVMMemoryBufferRef obj = cg_cache_load(jit->cache_dir, k);
    if (!obj || !cg_jit_add_object(jit, obj, NULL))
        return false;
    st->hit = true;
    return true;
}

static CgKey cg_module_key(const CgModule *m, const char *key_text)
{
    if (key_text)
        return cg_cache_key(m->target_, key_text, strlen(key_text));
    char *s = LLVMPrintModuleToString(m->mod);
    CgKey k = cg_cache_key(m->target_, s, strlen(s));
    LLVMDisposeMessage(s);
    return k;
}

/* Optimizes and emits m as an object file. */
static LLVMMemoryBufferRef cg_compile_object(CgModule *m, CgStats *st, IrError *err)
{
    if (!cg_module_optimize(m, err))
        return NULL;
    st->opt_ms = m->opt_ms_;
    double t0 = cg_now_ms();
    LLVMMemoryBufferRef obj = cg_emit(m->tm_, m->mod, LLVMObjectFile, err);
    st->codegen_ms = cg_now_ms() - t0;
    return obj;
}

static bool cg_jit_add_with_cache(CgJit *jit, CgModule *m, const char *key_text,
                                  CgStats *st, IrError *err)
{
    CgKey k = cg_module_key(m, key_text);
    cg_cache_key_hex(k, st->key);
    if (cg_jit_load(jit, k, st)) {
        cg_module_free(m);
        return true;
    }
    LLVMMemoryBufferRef obj = cg_compile_object(m, st, err);
    cg_module_free(m);
    if (!obj)
        return false;
    st->stored = cg_cache_store(jit->cache_dir, k, LLVMGetBufferStart(obj), LLVMGetBufferSize(obj));
    return cg_jit_add_object(jit, obj, err);
}

static bool cg_jit_add_ir(CgJit *jit, CgModule *m, CgStats *st, IrError *err)
{
    if (!cg_module_optimize(m, err)) {
        cg_module_free(m);
        return false;
    }
    st->opt_ms = m->opt_ms_;
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m->mod, m->tsc_);
    m->mod = NULL; /* now the TSM's; it shares the context with m->tsc_ */
    cg_module_free(m);
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(jit->lljit);
    LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModule(jit->lljit, jd, tsm); /* consumes tsm */
    return cg_llvm_ok(e, "codegen: adding module", err);
}

bool cg_jit_add_module(CgJit *jit, CgModule *m, const char *key_text, CgStats *st, IrError *err)
{
    CgStats local;
    st = st ? st : &local;
    *st = (CgStats){0};
    double t0 = cg_now_ms();
    bool ok = cg_jit_cache_enabled(jit) ? cg_jit_add_with_cache(jit, m, key_text, st, err)
                                        : cg_jit_add_ir(jit, m, st, err);
    st->total_ms = cg_now_ms() - t0;
    return ok;
}

bool cg_jit_add_cached(CgJit *jit, const char *key_text, CgStats *st)
{
    CgStats local;
    st = st ? st : &local;
    *st = (CgStats){0};
    if (!cg_jit_cache_enabled(jit))
        return false;
    double t0 = cg_now_ms();
    CgKey k = cg_cache_key(jit->target, key_text, strlen(key_text));
    cg_cache_key_hex(k, st->key);
    bool hit = cg_jit_load(jit, k, st);
    st->total_ms = cg_now_ms() - t0;
    return hit;
}

void *cg_jit_lookup(CgJit *jit, const char *name, IrError *err)
{
    LLVMOrcExecutorAddress addr = 0;
    jit->session_error[0] = '\0';
    LLVMErrorRef e = LLVMOrcLLJITLookup(jit->lljit, &addr, name);
    if (!e)
        return (void *)(uintptr_t)addr;
    char *msg = LLVMGetErrorMessage(e);
    bool more = jit->session_error[0] && !strstr(msg, jit->session_error);
    ir_error(err, "codegen: lookup of '%s': %s%s%s", name, msg, more ? "; " : "",
             more ? jit->session_error : "");
    LLVMDisposeErrorMessage(msg);
    return NULL;
}
