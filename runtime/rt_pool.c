/* rt_pool.c — a small pthread pool for parallel kernels.
 *
 * The pool has nthreads - 1 persistent workers; the calling thread works
 * too.  A job is one kernel call fn(slots, begin, end) over [0, extent),
 * split into nthreads contiguous chunks, and rt_pool_run returns only when
 * every chunk is done: a barrier per kernel, so kernels run in graph order.
 *
 * Chunks are claimed, not assigned: every thread, the caller first, takes
 * the next unclaimed chunk from a counter until none is left.  A worker
 * that is slow to wake (asleep after a matmul, or descheduled on a busy
 * machine) therefore never holds the step up: the caller runs its chunks,
 * and the job costs at most a little more than running it alone.  The
 * counter carries the job's number in its high half, so a late worker
 * cannot claim a chunk of a job other than the one it woke for.
 *
 * A job is published by bumping a generation counter.  Workers wait for a
 * new generation by spinning for up to 50 us (a kernel usually follows
 * another within microseconds) and then sleep on a condition variable.
 * rt_pool_idle clears the `hot` flag so that they sleep at once: the
 * executor calls it before a matmul, whose OpenBLAS threads need the cores.
 *
 * Sleeping without a lost wake-up: a worker counts itself in `sleepers`
 * and re-reads the generation under the mutex before it waits; the
 * publisher bumps the generation and then reads `sleepers` (both
 * sequentially consistent), and broadcasts under the mutex when anyone
 * may be asleep.  One of the two always sees the other's write.
 *
 * Chunks never depend on timing: chunk t is always [extent*t/n,
 * extent*(t+1)/n) and is computed by one thread, so results do not depend
 * on which thread ran which chunk.  (The lowering also makes a kernel's
 * results independent of the split itself; see docs/codegen.md.)
 */
#define _GNU_SOURCE
#include "rt_exec.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long a worker spins for the next job before it sleeps.  Kernels of
 * one step follow each other within microseconds; a gap longer than this
 * (a matmul, the end of a step) is better spent asleep. */
#define SPIN_NS 50000

typedef struct Worker {
    RtPool *pool;
    pthread_t thread;
} Worker;

struct RtPool {
    int nthreads;
    Worker *workers;
    /* the current job */
    CgKernelFn fn;
    void *const *slots;
    int64_t extent;
    /* synchronization */
    _Atomic uint64_t gen;     /* bumped once per job */
    _Atomic uint64_t claim;   /* job number << 32 | next chunk to claim */
    _Atomic int done;         /* chunks of the current job finished */
    _Atomic int sleepers;     /* workers waiting on `wake` */
    _Atomic bool hot;         /* workers may spin */
    _Atomic bool stop;
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

/* ---------------------------------------------------------------- thread count */

static int affinity_cpus(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    return CPU_COUNT(&set);
}

int rt_default_threads(void)
{
    const char *env = getenv("GRADC_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (!*end && v > 0 && v <= RT_MAX_THREADS)
            return (int)v;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int aff = affinity_cpus();
    int n = online > 0 ? (int)online : 1;
    return aff > 0 && aff < n ? aff : n;
}

/* ---------------------------------------------------------------- chunks */

static void run_chunk(RtPool *p, int64_t t)
{
    int64_t n = p->nthreads;
    int64_t begin = p->extent * t / n, end = p->extent * (t + 1) / n;
    if (begin < end)
        p->fn(p->slots, begin, end);
}

/* Claims and runs chunks of job `job` until none is left. */
static void run_chunks(RtPool *p, uint32_t job)
{
    uint64_t c = atomic_load(&p->claim);
    while ((uint32_t)(c >> 32) == job && (c & 0xffffffffu) < (uint64_t)p->nthreads) {
        if (!atomic_compare_exchange_weak(&p->claim, &c, c + 1))
            continue; /* c now holds the current value */
        run_chunk(p, (int64_t)(c & 0xffffffffu));
        atomic_fetch_add(&p->done, 1);
        c = atomic_load(&p->claim);
    }
}

/* ---------------------------------------------------------------- workers */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins while the pool is hot and SPIN_NS have not passed; returns the new
 * generation, or `seen` if none came. */
static uint64_t spin_job(RtPool *p, uint64_t seen)
{
    int64_t deadline = now_ns() + SPIN_NS;
    for (unsigned i = 1; atomic_load_explicit(&p->hot, memory_order_relaxed); i++) {
        uint64_t g = atomic_load(&p->gen);
        if (g != seen)
            return g;
        cpu_relax();
        if (i % 64 == 0 && now_ns() > deadline)
            break;
    }
    return seen;
}

/* Waits for a generation other than `seen`; returns it. */
static uint64_t wait_job(RtPool *p, uint64_t seen)
{
    uint64_t g = spin_job(p, seen);
    if (g != seen)
        return g;
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while ((g = atomic_load(&p->gen)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    RtPool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        seen = wait_job(p, seen);
        if (atomic_load(&p->stop))
            return NULL;
        run_chunks(p, (uint32_t)seen);
    }
}

/* ---------------------------------------------------------------- publishing */

/* Publishes the job in p->fn/slots/extent; returns its number. */
static uint32_t publish(RtPool *p)
{
    uint32_t job = (uint32_t)(atomic_load(&p->gen) + 1);
    atomic_store(&p->done, 0);
    atomic_store(&p->claim, (uint64_t)job << 32);
    atomic_store(&p->hot, true);
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    return job;
}

/* Waits for chunks that other threads claimed and still run. */
static void wait_done(RtPool *p)
{
    for (unsigned i = 0; atomic_load(&p->done) < p->nthreads; i++)
        if (i < 4096)
            cpu_relax();
        else
            sched_yield();
}

void rt_pool_run(RtPool *p, CgKernelFn fn, void *const *slots, int64_t extent)
{
    if (p->nthreads == 1 || extent < 2) {
        if (extent > 0)
            fn(slots, 0, extent);
        return;
    }
    p->fn = fn;
    p->slots = slots;
    p->extent = extent;
    run_chunks(p, publish(p));
    wait_done(p);
}

void rt_pool_idle(RtPool *p)
{
    atomic_store(&p->hot, false);
}

/* ---------------------------------------------------------------- life cycle */

static bool start_workers(RtPool *p, IrError *err)
{
    for (int i = 1; i < p->nthreads; i++) {
        Worker *w = &p->workers[i];
        w->pool = p;
        int e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e != 0) {
            ir_error(err, "cannot start thread %d of %d: %s", i, p->nthreads, strerror(e));
            ir_error_hint(err, "set GRADC_THREADS to a smaller number");
            p->nthreads = i; /* rt_pool_free joins the ones that started */
            return false;
        }
    }
    return true;
}

RtPool *rt_pool_new(int nthreads, IrError *err)
{
    if (nthreads > RT_MAX_THREADS) {
        ir_error(err, "%d threads are more than gradc runs (at most %d; this machine has %ld "
                 "CPUs)", nthreads, RT_MAX_THREADS, sysconf(_SC_NPROCESSORS_ONLN));
        ir_error_hint(err, "pass --threads N with N at most the CPUs, or leave it out");
        return NULL;
    }
    RtPool *p = calloc(1, sizeof *p);
    p->nthreads = nthreads > 0 ? nthreads : 1;
    p->workers = calloc((size_t)p->nthreads, sizeof *p->workers);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (!start_workers(p, err)) {
        rt_pool_free(p);
        return NULL;
    }
    return p;
}

void rt_pool_free(RtPool *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->gen, 1);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nthreads; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int rt_pool_threads(const RtPool *p)
{
    return p->nthreads;
}
