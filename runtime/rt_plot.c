/* rt_plot.c — line plots as SVG, for the training loss figure (rt_train.h).
 *
 * The plot is the book's figure 5.x: training and validation loss against
 * tokens seen.  It is written by hand as SVG text: a frame, "nice" ticks
 * (1, 2 or 5 times a power of ten, about six per axis) with grid lines,
 * one polyline with point markers per series, axis labels and a legend in
 * the upper right.  Data coordinates map linearly to a fixed 720x450 canvas;
 * y starts at 0 when every value is positive, as the book's plots do.
 * Non-finite values (a val loss not measured yet) break nothing: they are
 * skipped.  The file is replaced atomically (ir/outfile.c), so a viewer never
 * sees half.
 */
#include "runtime/rt_train.h"

#include "ir/outfile.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* canvas and plot area, in SVG user units */
#define PW 720.0
#define PH 450.0
#define PL 78.0    /* left margin: y tick labels and the y label */
#define PR 24.0
#define PT 40.0    /* top margin: the title */
#define PB 62.0    /* bottom margin: x tick labels and the x label */

typedef struct Range {
    double lo, hi, step;   /* axis range and tick spacing */
} Range;

typedef struct Frame {
    Range x, y;
} Frame;

/* 1, 2 or 5 times a power of ten, near span / n. */
static double nice_step(double span, int n)
{
    double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static Range nice_range(double lo, double hi, bool from_zero)
{
    if (from_zero && lo > 0)
        lo = 0;
    if (!(hi > lo))
        hi = lo + 1;
    Range r;
    r.step = nice_step(hi - lo, 6);
    r.lo = floor(lo / r.step) * r.step;
    r.hi = ceil(hi / r.step - 1e-9) * r.step;
    return r;
}

static void data_bounds(const RtSeries *s, int ns, bool want_y, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            double v = want_y ? s[k].y[i] : s[k].x[i];
            if (isfinite(v) && isfinite(s[k].x[i]) && isfinite(s[k].y[i]))
                *lo = fmin(*lo, v), *hi = fmax(*hi, v);
        }
    if (!isfinite(*lo))
        *lo = 0, *hi = 1;
}

static double px(const Frame *f, double x)
{
    return PL + (x - f->x.lo) / (f->x.hi - f->x.lo) * (PW - PL - PR);
}

static double py(const Frame *f, double y)
{
    return PH - PB - (y - f->y.lo) / (f->y.hi - f->y.lo) * (PH - PT - PB);
}

/* One unit for every tick of an axis, from its largest value: 12000 ->
 * "12k" (and 2000 -> "2k" beside it), 1500000 -> "1.5M", 2.5 -> "2.5". */
static void fmt_tick(double v, const Range *r, char *buf, size_t cap)
{
    double top = fmax(fabs(r->lo), fabs(r->hi));
    v = fabs(v) < 1e-9 * r->step ? 0.0 : v;
    if (top >= 1e6)
        snprintf(buf, cap, "%gM", v / 1e6);
    else if (top >= 1e4)
        snprintf(buf, cap, "%gk", v / 1e3);
    else
        snprintf(buf, cap, "%g", v);
}

static void xml_puts(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        default: fputc(*s, f);
        }
}

static void svg_text(FILE *f, double x, double y, const char *anchor, const char *extra,
                     const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s>", x, y, anchor, extra);
    xml_puts(f, s);
    fputs("</text>\n", f);
}

static void draw_x_ticks(FILE *f, const Frame *fr)
{
    char lab[32];
    for (double v = fr->x.lo; v <= fr->x.hi + fr->x.step / 2; v += fr->x.step) {
        double x = px(fr, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", x,
                PT, x, PH - PB);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n", x,
                PH - PB, x, PH - PB + 5);
        fmt_tick(v, &fr->x, lab, sizeof lab);
        svg_text(f, x, PH - PB + 19, "middle", "", lab);
    }
}

static void draw_y_ticks(FILE *f, const Frame *fr)
{
    char lab[32];
    for (double v = fr->y.lo; v <= fr->y.hi + fr->y.step / 2; v += fr->y.step) {
        double y = py(fr, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", PL,
                y, PW - PR, y);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n",
                PL - 5, y, PL, y);
        fmt_tick(v, &fr->y, lab, sizeof lab);
        svg_text(f, PL - 8, y + 4, "end", "", lab);
    }
}

static void draw_frame(FILE *f, const Frame *fr, const RtPlot *p)
{
    draw_x_ticks(f, fr);
    draw_y_ticks(f, fr);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"axis\" "
               "fill=\"none\"/>\n", PL, PT, PW - PL - PR, PH - PT - PB);
    svg_text(f, (PL + PW - PR) / 2, PH - 16, "middle", "", p->xlabel);
    char rot[96];
    snprintf(rot, sizeof rot, " transform=\"rotate(-90 %.1f %.1f)\"", 22.0, (PT + PH - PB) / 2);
    svg_text(f, 22, (PT + PH - PB) / 2, "middle", rot, p->ylabel);
    svg_text(f, PW / 2, 24, "middle", " font-weight=\"bold\"", p->title);
}

static void draw_series(FILE *f, const Frame *fr, const RtSeries *s)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", s->color,
            s->dashed ? " stroke-dasharray=\"6 4\"" : "");
    for (int i = 0; i < s->n; i++)
        if (isfinite(s->x[i]) && isfinite(s->y[i]))
            fprintf(f, "%.1f,%.1f ", px(fr, s->x[i]), py(fr, s->y[i]));
    fputs("\"/>\n", f);
    for (int i = 0; i < s->n && s->n <= 200; i++)
        if (isfinite(s->x[i]) && isfinite(s->y[i]))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n",
                    px(fr, s->x[i]), py(fr, s->y[i]), s->color);
}

static void draw_legend(FILE *f, const RtSeries *s, int ns)
{
    double w = 150, h = 10 + 20.0 * ns, x = PW - PR - w - 10, y = PT + 10;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" "
               "stroke=\"#999\"/>\n", x, y, w, h);
    for (int k = 0; k < ns; k++) {
        double ly = y + 15 + 20.0 * k;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"2\"%s/>\n", x + 8, ly, x + 38, ly, s[k].color,
                s[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
        svg_text(f, x + 46, ly + 4, "start", "", s[k].name);
    }
}

static void write_svg(FILE *f, const RtPlot *p)
{
    Frame fr;
    double lo, hi;
    data_bounds(p->series, p->nseries, false, &lo, &hi);
    fr.x = nice_range(lo, hi, true);
    data_bounds(p->series, p->nseries, true, &lo, &hi);
    fr.y = nice_range(lo, hi, true);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
               "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<style>.grid{stroke:#e4e4e4;stroke-width:1}.axis{stroke:#333;"
               "stroke-width:1}</style>\n<rect width=\"100%%\" height=\"100%%\" "
               "fill=\"white\"/>\n", PW, PH, PW, PH);
    draw_frame(f, &fr, p);
    for (int k = 0; k < p->nseries; k++)
        draw_series(f, &fr, &p->series[k]);
    draw_legend(f, p->series, p->nseries);
    fputs("</svg>\n", f);
}

bool rt_plot_svg(const RtPlot *p, const char *path, IrError *err)
{
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, path, "loss plot", err);
    if (!f)
        return false;
    write_svg(f, p);
    return ir_outfile_commit(&o, err);
}
