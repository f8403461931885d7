/* outfile.h — writing a file so that no failure loses what was there
 * (ir/outfile.c).  Every file gradc writes goes through here: checkpoints,
 * the CSV log, plots, `-o` outputs, the object cache.
 *
 * A regular file (or a new one) is written as PATH.tmp.PID, flushed,
 * fsync'd and renamed over PATH, and then its folder is fsync'd: a crash,
 * a kill or a full disk leaves the old file or the new one, never part of
 * one.  Anything else (a device such as /dev/null, a FIFO, a terminal) is
 * written in place: a rename would replace the device with a regular file.
 * A symbolic link is followed, so the file it points to is replaced and the
 * link stays.
 *
 * A kill -9 between the open and the rename leaves PATH.tmp.PID behind.
 * ir_outfile_clean_stale removes those of processes that no longer run;
 * ir_outfile_open calls it for its own PATH.
 *
 * Fault injection, for tests: GRADC_FAULT=write:N makes the Nth write(2)
 * of this writer in the process fail with ENOSPC, write:N+ every write
 * from the Nth on (a disk that stays full), write:N-M the Nth to the Mth
 * (a disk that fills, then frees); a suffix :TEXT counts only the
 * writes to files whose path contains TEXT (write:1+:log.csv).
 *
 *   IrOutFile o;
 *   FILE *f = ir_outfile_open(&o, "runs/a/log.csv", "CSV log", &err);
 *   if (!f) return false;
 *   fprintf(f, "step,loss\n");
 *   if (!ir_outfile_commit(&o, &err)) return false;   // closes f either way
 */
#ifndef GRADC_IR_OUTFILE_H
#define GRADC_IR_OUTFILE_H

#include "ir.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define IR_PATH_MAX 4096

typedef struct IrOutFile {
    FILE *f;                    /* what to write to */
    int fd;
    bool direct;                /* not a regular file: written in place */
    int error;                  /* the first failed write's errno, else 0 */
    const char *what;           /* "checkpoint", "CSV log", ... for messages */
    char path[IR_PATH_MAX];     /* the target (a symbolic link resolved) */
    char tmp[IR_PATH_MAX + 32]; /* PATH.tmp.PID while writing; "" when direct */
} IrOutFile;

/* Opens path for writing as described at the top; `what` names the file in
 * messages ("checkpoint", NULL: "file").  NULL + err on failure. */
FILE *ir_outfile_open(IrOutFile *o, const char *path, const char *what, IrError *err);
/* Flushes, syncs, closes and renames into place.  On any failure the
 * temporary file is removed, PATH is left as it was and err names the
 * file and the errno. */
bool ir_outfile_commit(IrOutFile *o, IrError *err);
/* Closes and removes the temporary file; PATH is left as it was. */
void ir_outfile_abort(IrOutFile *o);

/* Checks, before any work that would be lost, that path can be written:
 * its folder exists and takes a new file (one is created and removed), or
 * the existing non-regular file opens for writing; a folder at path is an
 * error.  False + err (naming path and the reason). */
bool ir_outfile_check(const char *path, const char *what, IrError *err);

/* Removes every PATH.tmp.PID whose process no longer runs (or is this
 * one: nothing of ours is open yet when it is called) and, when report is
 * not NULL, prints a line on it for each.  Returns how many it removed. */
int ir_outfile_clean_stale(const char *path, FILE *report);
/* Removes every NAME.tmp.PID in dir (any NAME) whose process no longer
 * runs and that was last written more than min_age_s seconds ago: a folder
 * that many writers share, such as the object cache, where a writer on
 * another host has a PID that this one cannot see.  Returns the count. */
int ir_outfile_clean_stale_dir(const char *dir, double min_age_s);

/* The folder of path into dir: "." for a bare name, "/" for a file at the root. */
void ir_outfile_dir_of(const char *path, char *dir, size_t cap);

#endif
