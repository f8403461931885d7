/* rt_finetune_int.h — what rt_finetune.c (the loop) and rt_finetune_io.c
 * (checkpoint, CSV, plots) share.  Not a public header. */
#ifndef GRADC_RT_FINETUNE_INT_H
#define GRADC_RT_FINETUNE_INT_H

#include "runtime/rt_finetune.h"

/* One update: its 0-based step, 1-based epoch, mean loss and lr. */
typedef struct RtFtUpdate {
    int64_t step, epoch;
    double loss, lr;
} RtFtUpdate;

struct RtFt {
    RtFtOptions o;              /* strings borrowed from the caller */
    FILE *out;
    IrGraph *model;             /* the caller's, copied, trainable set applied */
    IrGraph *train_g, *eval_g;
    RtExec *train_ex, *eval_ex;
    int64_t binding[IR_MAX_SYMS];
    int64_t trainable;          /* elements */
    int ntrainable;             /* tensors */
    int64_t total_params;
    int64_t step, epoch, batch; /* the next update: number step, batch `batch` of epoch */
    int64_t total, per_epoch;   /* updates in the run and in an epoch */
    double t_start, t_train;
    RtFtUpdate *up;
    int nup, capup;
    RtFtEval *hist;
    int nhist, caphist;
    char ckpt_path[4096], csv_path[4096], plot_path[4096], acc_path[4096];
};

/* rt_finetune_io.c */
/* Creates out_dir, checks that every file can be written and that no
 * checkpoint is there (unless force); no out_dir: nothing. */
bool rt_ft_prepare_outputs(RtFt *ft, IrError *err);
/* Rewrites log.csv and the plots. */
bool rt_ft_write_logs(RtFt *ft, IrError *err);
/* The checkpoint at ckpt_path, retried once, else at a rescue path
 * (printed; the run then fails with err naming both). */
bool rt_ft_checkpoint(RtFt *ft, IrError *err);
double rt_ft_now(void);

#endif
