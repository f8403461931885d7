/* outfile.c — the one writer of files (outfile.h).
 *
 * The target decides how a file is written.  lstat, then:
 *   a symbolic link      its target (realpath) is the file;
 *   a regular file, or   written as PATH.tmp.PID in the same folder (so
 *   none yet             the rename cannot cross file systems), mode
 *                        copied from the old file, fsync'd, renamed over
 *                        PATH, folder fsync'd;
 *   a folder             an error;
 *   anything else        opened with O_WRONLY and written in place.
 *
 * Writes go through a stdio stream made with fopencookie, so the callers
 * keep their fprintf and fwrite and every byte still passes through one
 * function: ck_write.  That is where a write error is recorded (the first
 * errno wins, so "No space left on device" is what the user reads, not the
 * EIO of a later close) and where GRADC_FAULT injects ENOSPC.
 */
#define _GNU_SOURCE
#include "outfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- fault injection */

typedef struct Fault {
    bool parsed, on;
    long long nth, last, count; /* writes nth..last fail; last: nth, or LLONG_MAX (N+) */
    char match[256];
} Fault;

static Fault fault;

static void fault_parse(void)
{
    fault.parsed = true;
    const char *v = getenv("GRADC_FAULT");
    if (!v || strncmp(v, "write:", 6))
        return;
    char *end;
    fault.nth = fault.last = strtoll(v + 6, &end, 10);
    if (*end == '+')
        fault.last = LLONG_MAX, end++;
    else if (*end == '-')
        fault.last = strtoll(end + 1, &end, 10);
    if (*end == ':')
        snprintf(fault.match, sizeof fault.match, "%s", end + 1);
    else if (*end)
        return;
    fault.on = fault.nth > 0 && fault.last >= fault.nth;
}

/* True when this write to `path` is one that GRADC_FAULT makes fail. */
static bool fault_hits(const char *path)
{
    if (!fault.parsed)
        fault_parse();
    if (!fault.on || (fault.match[0] && !strstr(path, fault.match)))
        return false;
    fault.count++;
    return fault.count >= fault.nth && fault.count <= fault.last;
}

/* ---------------------------------------------------------------- the stream */

static ssize_t ck_write(void *cookie, const char *buf, size_t n)
{
    IrOutFile *o = cookie;
    if (o->error) {
        errno = o->error;
        return -1;
    }
    if (fault_hits(o->path)) {
        o->error = errno = ENOSPC;
        return -1;
    }
    for (size_t done = 0; done < n;) {
        ssize_t k = write(o->fd, buf + done, n - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            o->error = k < 0 ? errno : ENOSPC;
            errno = o->error;
            return -1;
        }
        done += (size_t)k;
    }
    return (ssize_t)n;
}

static int ck_close(void *cookie)
{
    (void)cookie;    /* the fd is closed by commit, after fsync */
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static const char *what_of(const IrOutFile *o)
{
    return o->what ? o->what : "file";
}

static bool fail(IrError *err, const char *what, const char *path, int e)
{
    ir_error(err, "cannot write the %s '%s': %s", what, path, strerror(e));
    if (e == ENOSPC || e == EDQUOT)
        ir_error_hint(err, "the disk is full: free some space, or write to another disk");
    else
        ir_error_hint(err, "check that the folder exists and is writable, or write elsewhere");
    return false;
}

void ir_outfile_dir_of(const char *path, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else
        *(slash == dir ? slash + 1 : slash) = 0;
}

static void sync_dir(const char *path)
{
    char dir[IR_PATH_MAX];
    ir_outfile_dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Follows a symbolic link at path into o->path.  0, or an errno value. */
static int resolve(IrOutFile *o, const char *path, struct stat *st, bool *exists)
{
    if (strlen(path) >= sizeof o->path)
        return ENAMETOOLONG;
    snprintf(o->path, sizeof o->path, "%s", path);
    *exists = lstat(path, st) == 0;
    if (!*exists)
        return errno == ENOENT || errno == ENOTDIR ? 0 : errno;  /* probe_folder says why */
    if (!S_ISLNK(st->st_mode))
        return 0;
    char real[PATH_MAX];
    if (!realpath(path, real) || stat(real, st) != 0) {
        *exists = false;     /* a dangling link: create what it points to */
        return 0;
    }
    snprintf(o->path, sizeof o->path, "%s", real);
    return 0;
}

/* ---------------------------------------------------------------- stale temporaries */

static bool pid_gone(long pid)
{
    if (pid == (long)getpid())
        return true;
    return pid > 0 && pid <= INT_MAX && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* The PID of a NAME.tmp.PID entry of base, or 0. */
static long tmp_pid(const char *entry, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(entry, base, n) || strncmp(entry + n, ".tmp.", 5))
        return 0;
    const char *p = entry + n + 5;
    char *end;
    long pid = *p >= '1' && *p <= '9' ? strtol(p, &end, 10) : 0;
    return pid > 0 && !*end ? pid : 0;
}

int ir_outfile_clean_stale(const char *path, FILE *report)
{
    char dir[IR_PATH_MAX];
    ir_outfile_dir_of(path, dir, sizeof dir);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    DIR *d = *base ? opendir(dir) : NULL;
    int removed = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        long pid = tmp_pid(e->d_name, base);
        char file[IR_PATH_MAX + 300];
        snprintf(file, sizeof file, "%s/%s", dir, e->d_name);
        if (!pid || !pid_gone(pid) || unlink(file) != 0)
            continue;
        removed++;
        if (report)
            fprintf(report, "removed %s: a temporary file left by process %ld, which was "
                    "stopped while writing it\n", file, pid);
    }
    if (d)
        closedir(d);
    return removed;
}

/* The PID of any NAME.tmp.PID entry, or 0. */
static long any_tmp_pid(const char *entry)
{
    const char *t = NULL;
    for (const char *p = strstr(entry, ".tmp."); p; p = strstr(p + 1, ".tmp."))
        t = p;
    if (!t || t == entry)
        return 0;
    char base[NAME_MAX + 1];
    snprintf(base, sizeof base, "%.*s", (int)(t - entry), entry);
    return tmp_pid(entry, base);
}

int ir_outfile_clean_stale_dir(const char *dir, double min_age_s)
{
    DIR *d = opendir(dir);
    int removed = 0;
    time_t now = time(NULL);
    for (struct dirent *e; d && (e = readdir(d));) {
        long pid = any_tmp_pid(e->d_name);
        char file[IR_PATH_MAX + 300];
        struct stat st;
        snprintf(file, sizeof file, "%s/%s", dir, e->d_name);
        if (pid && pid_gone(pid) && lstat(file, &st) == 0 && S_ISREG(st.st_mode) &&
            difftime(now, st.st_mtime) >= min_age_s && unlink(file) == 0)
            removed++;
    }
    if (d)
        closedir(d);
    return removed;
}

/* ---------------------------------------------------------------- open, commit */

static FILE *wrap(IrOutFile *o, IrError *err)
{
    cookie_io_functions_t io = {.write = ck_write, .close = ck_close};
    o->f = fopencookie(o, "w", io);
    if (o->f)
        return o->f;
    int e = errno;
    ir_outfile_abort(o);
    fail(err, what_of(o), o->path, e);
    return NULL;
}

static FILE *open_direct(IrOutFile *o, IrError *err)
{
    o->direct = true;
    o->tmp[0] = 0;
    o->fd = open(o->path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (o->fd < 0) {
        fail(err, what_of(o), o->path, errno);
        return NULL;
    }
    return wrap(o, err);
}

static FILE *open_tmp(IrOutFile *o, const struct stat *old, IrError *err)
{
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%d", o->path, (int)getpid());
    ir_outfile_clean_stale(o->path, stderr);
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o->fd < 0) {
        fail(err, what_of(o), o->path, errno);
        return NULL;
    }
    if (old)
        (void)fchmod(o->fd, old->st_mode & 07777);
    return wrap(o, err);
}

FILE *ir_outfile_open(IrOutFile *o, const char *path, const char *what, IrError *err)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->what = what;
    struct stat st;
    bool exists;
    int e = resolve(o, path, &st, &exists);
    if (e) {
        fail(err, what_of(o), path, e);
        return NULL;
    }
    if (exists && S_ISDIR(st.st_mode)) {
        ir_error(err, "cannot write the %s '%s': it is a folder", what_of(o), path);
        ir_error_hint(err, "give a file name (a path inside the folder)");
        return NULL;
    }
    if (exists && !S_ISREG(st.st_mode))
        return open_direct(o, err);
    return open_tmp(o, exists ? &st : NULL, err);
}

void ir_outfile_abort(IrOutFile *o)
{
    if (o->f)
        fclose(o->f);
    if (o->fd >= 0)
        close(o->fd);
    if (o->tmp[0])
        unlink(o->tmp);
    o->f = NULL;
    o->fd = -1;
}

bool ir_outfile_commit(IrOutFile *o, IrError *err)
{
    int e = fflush(o->f) != 0 || ferror(o->f) ? (o->error ? o->error : EIO) : 0;
    fclose(o->f);
    o->f = NULL;
    if (!e && !o->direct && fsync(o->fd) != 0)
        e = errno;
    if (close(o->fd) != 0 && !e)
        e = errno;
    o->fd = -1;
    if (!e && !o->direct && rename(o->tmp, o->path) != 0)
        e = errno;
    if (e) {
        ir_outfile_abort(o);
        return fail(err, what_of(o), o->path, e);
    }
    if (!o->direct)
        sync_dir(o->path);
    o->tmp[0] = 0;
    return true;
}

/* ---------------------------------------------------------------- checks */

/* Creates and removes a file in path's folder. */
static bool probe_folder(const char *path, const char *what, IrError *err)
{
    char dir[IR_PATH_MAX], probe[IR_PATH_MAX + 64];
    ir_outfile_dir_of(path, dir, sizeof dir);
    struct stat st;
    bool found = stat(dir, &st) == 0;
    if (!found || !S_ISDIR(st.st_mode)) {
        ir_error(err, "cannot write the %s '%s': '%s' %s", what, path, dir,
                 found ? "is not a folder" : strerror(errno));
        ir_error_hint(err, "give a path in a folder that exists and is writable");
        return false;
    }
    snprintf(probe, sizeof probe, "%s.tmp.%d", path, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) /* a stale one of ours: clean_stale removes those */
        fd = open(probe, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, what, path, errno);
    close(fd);
    unlink(probe);
    return true;
}

bool ir_outfile_check(const char *path, const char *what, IrError *err)
{
    IrOutFile o;
    struct stat st;
    bool exists;
    what = what ? what : "file";
    int e = resolve(&o, path, &st, &exists);
    if (e)
        return fail(err, what, path, e);
    if (exists && S_ISDIR(st.st_mode)) {
        ir_error(err, "cannot write the %s '%s': it is a folder", what, path);
        ir_error_hint(err, "give a file name (a path inside the folder)");
        return false;
    }
    if (!exists || S_ISREG(st.st_mode))
        return probe_folder(o.path, what, err);
    int fd = open(o.path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno != ENXIO) /* ENXIO: a FIFO without a reader yet */
        return fail(err, what, path, errno);
    if (fd >= 0)
        close(fd);
    return true;
}
