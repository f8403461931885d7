/* test_outfile.c — ir/outfile.c: atomic writes of regular files, writes in
 * place for everything else, stale temporaries, the pre-flight check and
 * GRADC_FAULT. */
#define _GNU_SOURCE
#include "ir/outfile.h"
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char dir[256];

static const char *at(const char *name)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    return buf;
}

static bool write_text(const char *path, const char *text, IrError *err)
{
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, path, "test file", err);
    if (!f)
        return false;
    fputs(text, f);
    return ir_outfile_commit(&o, err);
}

static int count_tmp(void)
{
    int n = 0;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c '\\.tmp\\.'", dir);
    FILE *p = popen(cmd, "r");
    if (p && fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    return n;
}

TEST(regular_file_atomic)
{
    IrError err = {0};
    CHECK(write_text(at("a.txt"), "one\n", &err));
    CHECK_STR(slurp(at("a.txt")), "one\n");
    chmod(at("a.txt"), 0600);
    CHECK(write_text(at("a.txt"), "two\n", &err));
    CHECK_STR(slurp(at("a.txt")), "two\n");
    struct stat st;
    CHECK(stat(at("a.txt"), &st) == 0 && (st.st_mode & 0777) == 0600);  /* mode kept */
    CHECK(count_tmp() == 0);
}

TEST(symlink_followed)
{
    IrError err = {0};
    CHECK(write_text(at("target.txt"), "old\n", &err));
    CHECK(symlink("target.txt", at("link.txt")) == 0);
    CHECK(write_text(at("link.txt"), "new\n", &err));
    struct stat st;
    CHECK(lstat(at("link.txt"), &st) == 0 && S_ISLNK(st.st_mode));
    CHECK_STR(slurp(at("target.txt")), "new\n");
}

/* A FIFO (and a device, when this process may make one) is written in
 * place: a rename would have put a regular file there. */
TEST(non_regular_in_place)
{
    IrError err = {0};
    CHECK(mkfifo(at("fifo"), 0644) == 0);
    int rd = open(at("fifo"), O_RDONLY | O_NONBLOCK);
    CHECK(rd >= 0);
    CHECK(write_text(at("fifo"), "through the pipe\n", &err));
    char buf[64] = {0};
    CHECK(read(rd, buf, sizeof buf - 1) == 17);
    CHECK_STR(buf, "through the pipe\n");
    close(rd);
    struct stat st;
    CHECK(lstat(at("fifo"), &st) == 0 && S_ISFIFO(st.st_mode));
    if (mknod(at("null"), S_IFCHR | 0666, makedev(1, 3)) == 0) {
        CHECK(write_text(at("null"), "gone\n", &err));
        CHECK(lstat(at("null"), &st) == 0 && S_ISCHR(st.st_mode));
    } else {
        printf("     (no device test: mknod: %s)\n", strerror(errno));
    }
    CHECK(count_tmp() == 0);
}

TEST(errors)
{
    IrError err = {0};
    CHECK(!write_text(dir, "x", &err));
    CHECK(strstr(err.msg, "it is a folder") != NULL);
    CHECK(write_text(at("plain"), "x", &err));
    err = (IrError){0};
    CHECK(!write_text(at("plain/sub.txt"), "x", &err));
    CHECK(strstr(err.msg, "plain/sub.txt") != NULL);
    /* a device node of our own: a regression must not replace the system's */
    if (mknod(at("full"), S_IFCHR | 0666, makedev(1, 7)) == 0) {
        err = (IrError){0};
        CHECK(!write_text(at("full"), "x", &err));
        CHECK(strstr(err.msg, "No space left on device") != NULL);
        struct stat st;
        CHECK(lstat(at("full"), &st) == 0 && S_ISCHR(st.st_mode));
    }
}

TEST(check_before_work)
{
    IrError err = {0};
    CHECK(ir_outfile_check(at("new.bin"), "checkpoint", &err));
    if (access(at("null"), F_OK) == 0)
        CHECK(ir_outfile_check(at("null"), "checkpoint", &err));
    CHECK(!ir_outfile_check(at("plain/ck.safetensors"), "checkpoint", &err));
    CHECK(strstr(err.msg, "is not a folder") != NULL);
    CHECK(!ir_outfile_check(at("nowhere/ck.safetensors"), "checkpoint", &err));
    CHECK(strstr(err.msg, "No such file") != NULL);
    CHECK(!ir_outfile_check(dir, "checkpoint", &err));
    CHECK(strstr(err.msg, "it is a folder") != NULL);
    CHECK(count_tmp() == 0);
}

TEST(stale_temporaries)
{
    const char *names[] = {"s.bin.tmp.999999999", "s.bin.tmp.1", "s.bin.tmp.x",
                           "t.bin.tmp.999999999"};
    for (int i = 0; i < 4; i++)
        close(open(at(names[i]), O_WRONLY | O_CREAT, 0644));
    char own[64];
    snprintf(own, sizeof own, "s.bin.tmp.%d", (int)getpid());
    close(open(at(own), O_WRONLY | O_CREAT, 0644));
    CHECK(ir_outfile_clean_stale(at("s.bin"), NULL) == 2);   /* 999999999 and ours */
    CHECK(access(at("s.bin.tmp.999999999"), F_OK) != 0);
    CHECK(access(at(own), F_OK) != 0);
    CHECK(access(at("s.bin.tmp.1"), F_OK) == 0);     /* pid 1 runs */
    CHECK(access(at("s.bin.tmp.x"), F_OK) == 0);     /* not ours */
    CHECK(access(at("t.bin.tmp.999999999"), F_OK) == 0); /* another file's */
    for (int i = 1; i < 4; i++)
        unlink(at(names[i]));
}

/* A shared folder (the object cache): any NAME.tmp.PID of a dead process,
 * once it is old enough. */
TEST(stale_temporaries_of_a_folder)
{
    CHECK(mkdir(at("cache"), 0755) == 0);
    const char *names[] = {"cache/a.o.tmp.999999999", "cache/b.o.tmp.999999998",
                           "cache/c.o.tmp.1", "cache/d.o", "cache/e.tmp.o.tmp.999999997"};
    for (int i = 0; i < 5; i++)
        close(open(at(names[i]), O_WRONLY | O_CREAT, 0644));
    struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    for (int i = 0; i < 5; i++)
        if (i != 1)     /* b is fresh: a writer on another host may be at it */
            CHECK(utimensat(AT_FDCWD, at(names[i]), old, 0) == 0);
    CHECK(ir_outfile_clean_stale_dir(at("cache"), 3600) == 2);   /* a and e */
    CHECK(access(at(names[0]), F_OK) != 0);
    CHECK(access(at(names[1]), F_OK) == 0);
    CHECK(access(at(names[2]), F_OK) == 0);     /* pid 1 runs */
    CHECK(access(at(names[3]), F_OK) == 0);     /* not a temporary */
    CHECK(access(at(names[4]), F_OK) != 0);
    CHECK(ir_outfile_clean_stale_dir(at("cache"), 0) == 1);      /* b, at any age */
    CHECK(ir_outfile_clean_stale_dir(at("nowhere"), 0) == 0);
}

/* GRADC_FAULT=write:2:faulty (set in main): the second write to a file
 * whose path holds "faulty" fails with ENOSPC; the old file stays. */
TEST(fault_injection)
{
    IrError err = {0};
    CHECK(write_text(at("faulty.csv"), "old\n", &err));   /* write 1 */
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, at("faulty.csv"), "CSV log", &err);
    CHECK(f != NULL);
    fputs("new\n", f);
    CHECK(!ir_outfile_commit(&o, &err));                    /* write 2 */
    CHECK(strstr(err.msg, "No space left on device") != NULL);
    CHECK(strstr(err.msg, "CSV log") != NULL);
    CHECK_STR(slurp(at("faulty.csv")), "old\n");
    CHECK(count_tmp() == 0);
    CHECK(write_text(at("faulty.csv"), "third\n", &err));   /* write 3: not sticky */
    CHECK_STR(slurp(at("faulty.csv")), "third\n");
    CHECK(write_text(at("other.csv"), "x\n", &err));        /* not counted */
}

int main(void)
{
    setenv("GRADC_FAULT", "write:2:faulty", 1);
    snprintf(dir, sizeof dir, "/tmp/gradc-test-outfile-XXXXXX");
    if (!mkdtemp(dir))
        TEST_SKIP("mkdtemp: %s", strerror(errno));
    RUN(regular_file_atomic);
    RUN(symlink_followed);
    RUN(non_regular_in_place);
    RUN(errors);
    RUN(check_before_work);
    RUN(stale_temporaries);
    RUN(stale_temporaries_of_a_folder);
    RUN(fault_injection);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
