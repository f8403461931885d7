/* cg_cache.c — the on-disk object cache.
 *
 * One file per compiled module: DIR/<key>.o, where the key is a 128-bit
 * FNV-1a hash of everything that determines the machine code: the caller's
 * IR text, the target triple, CPU, feature string, the LLVM version and
 * CG_CACHE_FORMAT (bump it when codegen changes what it emits for the same
 * key text).  Each field is hashed with its length first, so two field
 * lists never run together into the same byte stream.
 *
 * A file is a 48-byte header (magic, key, payload size, FNV-1a checksum of
 * the payload) followed by the object file.  Loading checks all four, so a
 * truncated, foreign or bit-rotted file is a miss, never wrong code.  A
 * store goes through ir/outfile.c (a temp file PATH.tmp.PID in the same
 * directory, fsync'd and renamed over the final name): readers see either
 * no file or a whole one, and two processes compiling the same key race
 * harmlessly (last rename wins, both files are identical).  A kill during a
 * store leaves KEY.o.tmp.PID, which the first load or store of a later
 * process removes once it is an hour old.  Cache errors are never fatal:
 * the caller compiles.
 */
#include "cg.h"
#include "ir/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CG_CACHE_FORMAT "gradc-cg-1"
#define CG_CACHE_MAGIC  "GRADCOB1"
#define CG_CACHE_MAX    ((uint64_t)1 << 31) /* refuse absurd sizes on load */

__extension__ typedef unsigned __int128 cg_u128;

typedef struct CgCacheHeader {
    char magic[8];
    uint64_t key_lo, key_hi;
    uint64_t size;
    uint64_t sum_lo, sum_hi;
} CgCacheHeader;

_Static_assert(sizeof(CgCacheHeader) == 48, "cache header layout");

/* ---------------------------------------------------------------- hashing */

static cg_u128 cg_fnv_basis(void)
{
    return ((cg_u128)0x6c62272e07bb0142ULL << 64) | 0x62b821756295c58dULL;
}

static cg_u128 cg_fnv(cg_u128 h, const void *data, size_t n)
{
    const cg_u128 prime = ((cg_u128)1 << 88) | 0x13b;
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= prime;
    }
    return h;
}

/* Hashes the length, then the bytes. */
static cg_u128 cg_fnv_field(cg_u128 h, const void *data, size_t n)
{
    uint64_t len = n;
    return cg_fnv(cg_fnv(h, &len, sizeof len), data, n);
}

static cg_u128 cg_fnv_str(cg_u128 h, const char *s)
{
    return cg_fnv_field(h, s, strlen(s));
}

static CgKey cg_key_of(cg_u128 h)
{
    return (CgKey){.lo = (uint64_t)h, .hi = (uint64_t)(h >> 64)};
}

CgKey cg_cache_key(const CgTarget *t, const char *text, size_t len)
{
    cg_u128 h = cg_fnv_str(cg_fnv_basis(), CG_CACHE_FORMAT);
    h = cg_fnv_field(h, text, len);
    h = cg_fnv_str(h, t->triple);
    h = cg_fnv_str(h, t->cpu);
    h = cg_fnv_str(h, t->features);
    h = cg_fnv_str(h, t->llvm_version);
    return cg_key_of(h);
}

void cg_cache_key_hex(CgKey k, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)k.hi, (unsigned long long)k.lo);
}

/* ---------------------------------------------------------------- paths */

static bool cg_env_set(const char *name)
{
    const char *v = getenv(name);
    return v && v[0];
}

bool cg_cache_dir(char *out, size_t n)
{
    int len;
    if (cg_env_set("GRADC_CACHE_DIR"))
        len = snprintf(out, n, "%s", getenv("GRADC_CACHE_DIR"));
    else if (cg_env_set("XDG_CACHE_HOME"))
        len = snprintf(out, n, "%s/gradc", getenv("XDG_CACHE_HOME"));
    else if (cg_env_set("HOME"))
        len = snprintf(out, n, "%s/.cache/gradc", getenv("HOME"));
    else
        return false;
    return len > 0 && (size_t)len < n;
}

static bool cg_entry_path(const char *dir, CgKey k, char *out, size_t n)
{
    char hex[33];
    cg_cache_key_hex(k, hex);
    int len = snprintf(out, n, "%s/%s.o", dir, hex);
    return len > 0 && (size_t)len < n;
}

/* mkdir -p, mode 0755. */
static bool cg_mkdirs(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return false;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return false;
        *p = '/';
    }
    return mkdir(path, 0755) == 0 || errno == EEXIST;
}

/* ---------------------------------------------------------------- file I/O */

static bool cg_read_all(int fd, void *data, size_t n)
{
    char *p = data;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static CgCacheHeader cg_header(CgKey k, const void *obj, size_t len)
{
    CgCacheHeader h;
    memcpy(h.magic, CG_CACHE_MAGIC, sizeof h.magic);
    CgKey sum = cg_key_of(cg_fnv(cg_fnv_basis(), obj, len));
    h.key_lo = k.lo;
    h.key_hi = k.hi;
    h.size = len;
    h.sum_lo = sum.lo;
    h.sum_hi = sum.hi;
    return h;
}

/* Once a process, the temporaries of stores that a kill interrupted
 * (KEY.o.tmp.PID, ir/outfile.c) are removed when an hour old: a store that
 * hit its own key again would remove its own, but a key that a later run
 * stored whole is never stored again. */
static void cg_cache_sweep(const char *dir)
{
    static int swept;
    if (dir[0] && !__atomic_exchange_n(&swept, 1, __ATOMIC_ACQ_REL))
        ir_outfile_clean_stale_dir(dir, 3600);
}

bool cg_cache_store(const char *dir, CgKey k, const void *obj, size_t len)
{
    char final[PATH_MAX];
    cg_cache_sweep(dir);
    if (!cg_mkdirs(dir) || !cg_entry_path(dir, k, final, sizeof final))
        return false;
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, final, "cache entry", NULL);
    if (!f)
        return false;
    CgCacheHeader h = cg_header(k, obj, len);
    fwrite(&h, sizeof h, 1, f);
    fwrite(obj, 1, len, f);
    return ir_outfile_commit(&o, NULL);
}

static bool cg_header_ok(const CgCacheHeader *h, CgKey k, const void *obj)
{
    CgCacheHeader want = cg_header(k, obj, h->size);
    return memcmp(h, &want, sizeof want) == 0;
}

/* Reads the payload of an open entry into a malloc'd buffer, or NULL. */
static void *cg_read_entry(int fd, CgKey k, CgCacheHeader *h)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !cg_read_all(fd, h, sizeof *h))
        return NULL;
    if (h->size > CG_CACHE_MAX || (uint64_t)sb.st_size != sizeof *h + h->size)
        return NULL;
    void *obj = malloc(h->size ? h->size : 1);
    if (obj && cg_read_all(fd, obj, h->size) && cg_header_ok(h, k, obj))
        return obj;
    free(obj);
    return NULL;
}

LLVMMemoryBufferRef cg_cache_load(const char *dir, CgKey k)
{
    char path[PATH_MAX];
    cg_cache_sweep(dir);
    if (!cg_entry_path(dir, k, path, sizeof path))
        return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    CgCacheHeader h;
    void *obj = cg_read_entry(fd, k, &h);
    close(fd);
    if (!obj)
        return NULL;
    /* A copy, because LLVM wants its object buffers suitably aligned. */
    LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, h.size, path);
    free(obj);
    return buf;
}
