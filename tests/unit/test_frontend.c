/* test_frontend.c — the JSON graph-file frontend and the cost model.
 *
 * Loads the models in models/ (parameter counts equal to the book's
 * GPTModel), small inline files for config expressions, --set, repeat,
 * alias and `if`, and one file per error kind, checking that each error
 * names its place (JSON path or line:col) and gives the expected hint.
 * Runs from the source root (ctest sets the working directory).
 */
#include "frontend/fe.h"
#include "ir/cost.h"
#include "testlib.h"

#include <stdio.h>
#include <string.h>

static FeModel *load(const char *json, const FeSet *sets, int nsets, IrError *err)
{
    FeOptions opt = {sets, nsets};
    return fe_load_string(json, "t.json", &opt, err);
}

static FeModel *load_path(const char *path, const FeSet *sets, int nsets)
{
    FeOptions opt = {sets, nsets};
    IrError err = {0};
    FeModel *m = fe_load_file(path, &opt, &err);
    if (!m)
        ir_error_print(&err, stderr);
    return m;
}

static int64_t params_of(const FeModel *m)
{
    return m ? ir_cost_params(m->graph).elems : -1;
}

/* The load must fail with `where`, `msg` and `hint` as substrings. */
static bool fails(const char *json, const FeSet *sets, int nsets, const char *where,
                  const char *msg, const char *hint)
{
    IrError err = {0};
    FeModel *m = load(json, sets, nsets, &err);
    if (m) {
        fprintf(stderr, "  expected an error '%s', but the model loaded\n", msg);
        fe_model_free(m);
        return false;
    }
    bool ok = err.set && strstr(err.where, where) && strstr(err.msg, msg) &&
              (!hint || strstr(err.hint, hint));
    if (!ok)
        fprintf(stderr, "  got: where '%s' msg '%s' hint '%s'\n  want: '%s' '%s' '%s'\n",
                err.where, err.msg, err.hint, where, msg, hint ? hint : "");
    return ok;
}

static double cfg(const FeModel *m, const char *key)
{
    double v = -12345;
    return m && fe_config(m, key, &v) ? v : -12345;
}

static const IrNode *node_named(const FeModel *m, const char *name)
{
    for (int i = 0; m && i < m->graph->nnodes; i++)
        if (m->graph->nodes[i]->name && !strcmp(m->graph->nodes[i]->name, name))
            return m->graph->nodes[i];
    return NULL;
}

static bool shape_is(const IrNode *n, const IrGraph *g, const char *want)
{
    char buf[128];
    if (!n)
        return false;
    ir_shape_str(&n->shape, g->sym, buf, sizeof buf);
    if (strcmp(buf, want))
        fprintf(stderr, "  shape %s, want %s\n", buf, want);
    return !strcmp(buf, want);
}

static bool verifies(const FeModel *m)
{
    IrError err = {0};
    bool ok = m && ir_verify(m->graph, &err);
    if (m && !ok)
        fprintf(stderr, "  verifier: %s\n", err.msg);
    return ok;
}

/* ---------------------------------------------------------------- models */

TEST(gpt2_small_params)
{
    FeModel *m = load_path("models/gpt2-small.json", NULL, 0);
    CHECK(params_of(m) == 163009536);
    CHECK(m && ir_cost_params(m->graph).trainable == 163009536);
    CHECK(verifies(m));
    CHECK_NEAR(cfg(m, "head_dim"), 64, 0);
    CHECK_NEAR(cfg(m, "hidden_dim"), 3072, 0);
    CHECK(m && m->graph->nsym == 2 && !strcmp(m->graph->sym[0], "B"));
    CHECK(m && m->graph->nout == 1 && shape_is(m->graph->outs[0].node, m->graph, "[B,T,50257]"));
    fe_model_free(m);
    FeSet tie[] = {{"tie_embeddings", "1"}};
    m = load_path("models/gpt2-small.json", tie, 1);
    CHECK(params_of(m) == 124412160);
    fe_model_free(m);
    FeSet bias[] = {{"qkv_bias", "true_value - 1 + 2"}, {"n_layers", "n_heads // 6"}};
    CHECK(!load_path("models/gpt2-small.json", bias, 2)); /* true_value is undefined */
    bias[0].value = "1";
    m = load_path("models/gpt2-small.json", bias, 2);
    CHECK(params_of(m) == 38597376 + 786432 + 1536 + 38597376 + 2 * (7085568 + 3 * 768));
    fe_model_free(m);
}

TEST(gpt2_names)
{
    FeModel *m = load_path("models/gpt2-small.json", NULL, 0);
    IrGraph *g = m ? m->graph : NULL;
    CHECK(g && shape_is(ir_graph_find(g, OP_PARAM, "trf_blocks.3.att.W_query.weight"), g,
                        "[768,768]"));
    CHECK(g && shape_is(ir_graph_find(g, OP_PARAM, "trf_blocks.11.ff.layers.0.weight"), g,
                        "[3072,768]"));
    CHECK(g && ir_graph_find(g, OP_PARAM, "trf_blocks.11.ff.layers.2.bias"));
    CHECK(g && ir_graph_find(g, OP_PARAM, "trf_blocks.0.norm1.scale"));
    CHECK(g && !ir_graph_find(g, OP_PARAM, "trf_blocks.12.norm1.scale"));
    CHECK(g && !ir_graph_find(g, OP_PARAM, "trf_blocks.0.att.W_query.bias"));
    CHECK(g && ir_graph_find(g, OP_PARAM, "out_head.weight"));
    const IrNode *s = node_named(m, "trf_blocks.3.att.scores");
    CHECK(s && s->op == OP_MATMUL && shape_is(s, g, "[B,12,T,T]"));
    CHECK(!node_named(m, "trf_blocks.3.att.q_bias")); /* switched off: qkv_bias = 0 */
    fe_model_free(m);
    FeSet tie[] = {{"tie_embeddings", "1"}};
    m = load_path("models/gpt2-small.json", tie, 1);
    const IrNode *logits = node_named(m, "logits");
    CHECK(m && !ir_graph_find(m->graph, OP_PARAM, "out_head.weight"));
    CHECK(logits && logits->in[1] == ir_graph_find(m->graph, OP_PARAM, "tok_emb.weight"));
    fe_model_free(m);
}

TEST(small_models)
{
    FeModel *m = load_path("models/gpt-mini.json", NULL, 0);
    /* 2*V*D + C*D + 2*D + 4 blocks of (4*D*D + D + 8*D*D + 5*D + 4*D) with D=128 */
    CHECK(params_of(m) == 2 * 50257 * 128 + 256 * 128 + 256 + 4 * (12 * 128 * 128 + 10 * 128));
    CHECK(verifies(m));
    CHECK_NEAR(cfg(m, "context_length"), 256, 0);
    fe_model_free(m);
    m = load_path("models/gpt-char.json", NULL, 0);
    CHECK(params_of(m) == 10770816);
    CHECK(verifies(m));
    fe_model_free(m);
    FeSet v[] = {{"vocab_size", "100"}};
    m = load_path("models/gpt-char.json", v, 1);
    CHECK(params_of(m) == 10770816 + 35 * 384);
    fe_model_free(m);
}

/* ---------------------------------------------------------------- config */

static const char *const expr_model =
    "{\"config\": {\"a\": \"c * 2\", \"b\": \"2 ** 3 ** 2\", \"c\": 5,"
    " \"d\": \"-c + 7 // 2 - 10 % 4\", \"e\": \"1 / sqrt(16)\","
    " \"f\": \"min(c, 3, 9) + max(1, c)\","
    " \"g\": \"(c + 1) * (c - 1)\", \"h\": \"-2 ** 2\", \"i\": true, \"j\": \"-7 // 2\","
    " \"k\": \"1.5e1 + .5\", \"l\": \"-7 % 3\"},"
    " \"inputs\": {\"x\": {\"shape\": [\"a\"]}}, \"outputs\": {\"y\": \"x\"}}";

TEST(config_expressions)
{
    IrError err = {0};
    FeModel *m = load(expr_model, NULL, 0, &err);
    CHECK(m);
    CHECK_NEAR(cfg(m, "a"), 10, 0);
    CHECK_NEAR(cfg(m, "b"), 512, 0); /* right-associative */
    CHECK_NEAR(cfg(m, "d"), -5 + 3 - 2, 0);
    CHECK_NEAR(cfg(m, "e"), 0.25, 0);
    CHECK_NEAR(cfg(m, "f"), 3 + 5, 0);
    CHECK_NEAR(cfg(m, "g"), 24, 0);
    CHECK_NEAR(cfg(m, "h"), -4, 0);
    CHECK_NEAR(cfg(m, "i"), 1, 0);
    CHECK_NEAR(cfg(m, "j"), -4, 0); /* floor division */
    CHECK_NEAR(cfg(m, "k"), 15.5, 0);
    CHECK_NEAR(cfg(m, "l"), 2, 0);
    CHECK(m && m->nconfig == 12 && !strcmp(m->config[0].key, "a"));
    CHECK(m && shape_is(m->graph->nodes[0], m->graph, "[10]"));
    fe_model_free(m);
}

TEST(config_sets)
{
    IrError err = {0};
    FeSet s[] = {{"c", "c_default"}, {"a", "3"}};
    CHECK(fails(expr_model, s, 1, "--set c=c_default", "undefined name 'c_default'", NULL));
    s[0].value = "b - 500";
    FeModel *m = load(expr_model, s, 1, &err);
    CHECK_NEAR(cfg(m, "c"), 12, 0);
    CHECK_NEAR(cfg(m, "a"), 24, 0); /* follows the override */
    fe_model_free(m);
    m = load(expr_model, s, 2, &err);
    CHECK_NEAR(cfg(m, "a"), 3, 0);
    fe_model_free(m);
    FeSet bad[] = {{"cc", "1"}};
    CHECK(fails(expr_model, bad, 1, "--set cc=1", "unknown config key 'cc'", "did you mean 'c'"));
    FeSet cyc[] = {{"c", "a + 1"}};
    CHECK(fails(expr_model, cyc, 1, "", "config cycle: a -> c -> a", NULL));
}

/* ---------------------------------------------------------------- modules */

static const char *const chain_model =
    "{\"config\": {\"d\": 4, \"n\": 3, \"frozen\": 0},"
    " \"inputs\": {\"x\": {\"shape\": [\"B\", \"d\"]}},"
    " \"modules\": {\"lin\": {\"inputs\": [\"x\", \"bias\"],"
    "   \"params\": {\"w\": {\"shape\": [\"d\", \"d\"], \"trainable\": \"frozen\"}},"
    "   \"nodes\": [{\"name\": \"out\", \"op\": \"add\", \"in\": [\"h\", \"bias\"]},"
    "               {\"name\": \"h\", \"op\": \"matmul\", \"in\": [\"x\", \"w\"], \"tb\": 1}],"
    "   \"outputs\": [\"out\", \"h\"]}},"
    " \"params\": {\"b\": {\"shape\": [\"d\"], \"init\": \"zeros\"}},"
    " \"nodes\": [{\"name\": \"stack\", \"module\": \"lin\", \"in\": [\"x\", \"b\"],"
    "              \"repeat\": \"n\", \"prefix\": \"layers\"},"
    "             {\"name\": \"one\", \"module\": \"lin\", \"in\": [\"stack\", \"b\"]}],"
    " \"outputs\": {\"y\": \"one\", \"pre\": \"stack:h\"}}";

TEST(repeat_chain)
{
    IrError err = {0};
    FeModel *m = load(chain_model, NULL, 0, &err);
    IrGraph *g = m ? m->graph : NULL;
    CHECK(verifies(m));
    CHECK(g && ir_graph_find(g, OP_PARAM, "layers.0.w") &&
          ir_graph_find(g, OP_PARAM, "layers.2.w"));
    CHECK(g && !ir_graph_find(g, OP_PARAM, "layers.3.w") && ir_graph_find(g, OP_PARAM, "one.w"));
    const IrNode *h1 = node_named(m, "layers.1.h"), *o0 = node_named(m, "layers.0.out");
    CHECK(h1 && o0 && h1->in[0] == o0);               /* chained through the first input */
    const IrNode *o1 = node_named(m, "layers.1.out");
    CHECK(o1 && g && o1->in[1] == ir_graph_find(g, OP_PARAM, "b")); /* others unchanged */
    CHECK(g && g->nout == 2 && g->outs[1].node == node_named(m, "layers.2.h"));
    CHECK(m && ir_cost_params(g).trainable == 4);     /* only b: the w are frozen */
    CHECK(m && ir_cost_params(g).elems == 4 + 4 * 16);
    fe_model_free(m);
}

TEST(two_input_repeat)
{
    FeModel *m = load_path("tests/lit/frontend/Inputs/encdec.json", NULL, 0);
    IrGraph *g = m ? m->graph : NULL;
    CHECK(verifies(m));
    CHECK(g && g->nsym == 3);
    CHECK(g && ir_graph_find(g, OP_PARAM, "decoder.2.cross_att.W_key.weight"));
    CHECK(g && !ir_graph_find(g, OP_PARAM, "decoder.3.cross_att.W_key.weight"));
    CHECK(g && shape_is(node_named(m, "decoder.1.cross_att.scores"), g, "[B,2,T,S]"));
    CHECK(g && shape_is(node_named(m, "encoder.1.att.scores"), g, "[B,2,S,S]"));
    const IrNode *k = node_named(m, "decoder.2.cross_att.k");
    CHECK(k && k->in[0] == node_named(m, "encoder.1.out")); /* memory reaches every instance */
    fe_model_free(m);
}

static const char *const if_model =
    "{\"config\": {\"on\": 0, \"tie\": 1},"
    " \"inputs\": {\"x\": {\"shape\": [2, 3]}},"
    " \"params\": {\"w2\": {\"alias\": \"w\", \"shape\": [2, 3]},"
    "              \"w3\": {\"alias\": \"w\", \"if\": \"tie\", \"shape\": [2, 3]},"
    "              \"w\": {\"shape\": [2, 3], \"init\": \"ones\"},"
    "              \"opt\": {\"shape\": [3], \"if\": \"on\"}},"
    " \"nodes\": [{\"name\": \"a\", \"op\": \"mul\", \"in\": [\"x\", \"w3\"]},"
    "             {\"name\": \"b\", \"op\": \"add\", \"in\": [\"a\", \"opt\"], \"if\": \"on\"},"
    "             {\"name\": \"c\", \"op\": \"neg\", \"in\": [\"b\"]}],"
    " \"outputs\": {\"y\": \"c\"}}";

TEST(alias_and_if)
{
    IrError err = {0};
    FeModel *m = load(if_model, NULL, 0, &err);
    CHECK(params_of(m) == 6);
    const IrNode *c = node_named(m, "c"), *a = node_named(m, "a");
    CHECK(c && a && c->in[0] == a);  /* b vanished: it stands for its first input */
    CHECK(a && m && a->in[1] == ir_graph_find(m->graph, OP_PARAM, "w"));
    CHECK(!node_named(m, "b"));
    fe_model_free(m);
    FeSet s[] = {{"tie", "0"}, {"on", "1"}};
    m = load(if_model, s, 2, &err);
    CHECK(params_of(m) == 6 + 6 + 3); /* w3 is its own param, opt exists */
    CHECK(node_named(m, "b"));
    fe_model_free(m);
    CHECK(fails("{\"inputs\": {\"x\": {\"shape\": [3]}}, \"params\": {\"p\": {\"shape\": [3], "
                "\"if\": 0}}, \"nodes\": [{\"name\": \"a\", \"op\": \"add\", \"in\": "
                "[\"x\", \"p\"]}],"
                " \"outputs\": {\"y\": \"a\"}}", NULL, 0, "/nodes/0/in/1",
                "param 'p' is switched off", NULL));
    CHECK(fails("{\"params\": {\"p\": {\"shape\": [3]}, \"q\": {\"alias\": \"p\", \"shape\": [4]}},"
                " \"outputs\": {\"y\": \"q\"}}", NULL, 0, "/params/q/shape",
                "alias 'q' has shape [4] but 'p' has shape [3]", NULL));
}

TEST(dims_and_consts)
{
    IrError err = {0};
    FeModel *m = load("{\"config\": {\"h\": 2},"
                      " \"inputs\": {\"x\": {\"shape\": [\"B\", \"T\", 6]}},"
                      " \"nodes\": [{\"name\": \"r\", \"op\": \"reshape\", \"in\": [\"x\"],"
                      "   \"shape\": [\"B*T\", \"h\", -1]},"
                      "  {\"name\": \"s\", \"op\": \"mul\", \"in\": [\"r\", 2]},"
                      "  {\"name\": \"t\", \"op\": \"add\", \"in\": [\"s\", {\"const\": \"h / "
                      "4\"}]},"
                      "  {\"name\": \"u\", \"op\": \"reshape\", \"in\": [\"t\"], \"shape\": [-1]},"
                      "  {\"name\": \"k\", \"op\": \"const\", \"value\": \"h\", \"shape\": "
                      "[\"T\"]}],"
                      " \"outputs\": {\"y\": \"u\", \"k\": \"k\"}}", NULL, 0, &err);
    CHECK(m && shape_is(node_named(m, "r"), m->graph, "[B*T,2,3]"));
    CHECK(m && shape_is(node_named(m, "u"), m->graph, "[6*B*T]"));
    const IrNode *t = node_named(m, "t");
    CHECK(t && t->in[1]->op == OP_CONST && ir_node_float(t->in[1], ATTR_VALUE, 0) == 0.5);
    CHECK(verifies(m));
    fe_model_free(m);
}

/* ---------------------------------------------------------------- errors */

#define X "{\"inputs\": {\"x\": {\"shape\": [\"B\", 4]}}, "

TEST(error_json)
{
    CHECK(fails("{\"inputs\": {},\n \"nodes\": [\n  {\"name\": \"a\"}\n  {\"name\": \"b\"}]}", NULL,
                0, "t.json:4:3", "malformed JSON", NULL));
    CHECK(fails("", NULL, 0, "t.json:1:1", "unexpected end of file", NULL));
    CHECK(fails("{\"a\": 1} // note", NULL, 0, "t.json:1:10", "malformed JSON", "no comments"));
    CHECK(fails("[1, 2]", NULL, 0, "t.json", "must hold a JSON object", NULL));
}

TEST(error_ops)
{
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"neg\", \"in\": [\"x\"]},"
                " {\"name\": \"b\", \"op\": \"exp\", \"in\": [\"a\"]},"
                " {\"name\": \"c\", \"op\": \"ad\", \"in\": [\"a\", \"b\"]}], \"outputs\": "
                "{\"y\": \"c\"}}",
                NULL, 0, "t.json: /nodes/2", "unknown op 'ad'", "did you mean 'add'"));
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"add\", \"in\": [\"x\"]}],"
                " \"outputs\": {\"y\": \"a\"}}", NULL, 0, "/nodes/0/in", "takes 2 inputs, got 1",
                NULL));
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"softmax\", \"in\": "
                  "[\"x\"], \"axiss\": 1}],"
                " \"outputs\": {\"y\": \"a\"}}", NULL, 0, "/nodes/0/axiss", "unknown key 'axiss'",
                "did you mean 'axis'"));
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"sum\", \"in\": [\"x\"], \"axis\": 1}],"
                " \"outputs\": {\"y\": \"a\"}}", NULL, 0, "/nodes/0/axis", "takes no 'axis'",
                "axes keepdim"));
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"reshape\", \"in\": [\"x\"]}],"
                " \"outputs\": {\"y\": \"a\"}}", NULL, 0, "/nodes/0", "needs 'shape'", NULL));
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"input\"}], \"outputs\": {\"y\": \"a\"}}",
                NULL, 0, "/nodes/0", "cannot be a node", NULL));
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"transpose\", \"in\": [\"x\"],"
                " \"perm\": [0, 1, 2, 3, 4, 5, 6]}], \"outputs\": {\"y\": \"a\"}}", NULL, 0,
                "/nodes/0/perm", "at most 6", NULL));
}

TEST(error_shapes)
{
    CHECK(fails("{\"config\": {\"d\": 4}, \"inputs\": {\"x\": {\"shape\": [\"B\", \"d\"]}},"
                " \"modules\": {\"m\": {\"inputs\": [\"x\"], \"params\": {\"w\": {\"shape\": "
                "[\"d\", 3]}},"
                " \"nodes\": [{\"name\": \"h\", \"op\": \"matmul\", \"in\": [\"x\", \"w\"]},"
                " {\"name\": \"o\", \"op\": \"add\", \"in\": [\"h\", \"x\"]}], \"outputs\": "
                "[\"o\"]}},"
                " \"nodes\": [{\"name\": \"blk\", \"module\": \"m\", \"in\": "
                "[\"x\"], \"repeat\": 2}],"
                " \"outputs\": {\"y\": \"blk\"}}", NULL, 0, "t.json: /modules/m/nodes/1",
                "shapes [B,3] and [B,4] do not broadcast",
                "in 'blk.0', an instance of module 'm'"));
    CHECK(fails("{\"inputs\": {\"x\": {\"shape\": 4}}, \"outputs\": {\"y\": \"x\"}}", NULL, 0,
                "/inputs/x/shape", "a shape must be a list, got a number", NULL));
    CHECK(fails("{\"inputs\": {\"x\": {\"shape\": [2.5]}}, \"outputs\": {\"y\": \"x\"}}", NULL, 0,
                "/inputs/x/shape/0", "positive integer", NULL));
    CHECK(fails("{\"inputs\": {\"x\": {\"shape\": [1,1,1,1,1,1,1]}}, \"outputs\": {\"y\": \"x\"}}",
                NULL, 0, "/inputs/x/shape", "rank 7 exceeds", NULL));
    CHECK(fails("{\"inputs\": {\"x\": {\"shape\": [100000, 100000, 100000, 100000]}},"
                " \"outputs\": {\"y\": \"x\"}}", NULL, 0, "/inputs/x/shape", "too many elements",
                NULL));
    CHECK(fails(X "\"nodes\": [{\"name\": \"r\", \"op\": \"reshape\", \"in\": "
                  "[\"x\"], \"shape\": [3, -1]}],"
                " \"outputs\": {\"y\": \"r\"}}", NULL, 0, "/nodes/0", "cannot infer the -1", NULL));
}

TEST(error_names)
{
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"neg\", \"in\": [\"xx\"]}],"
                " \"outputs\": {\"y\": \"a\"}}", NULL, 0, "/nodes/0/in/0", "undefined name 'xx'",
                "did you mean 'x'"));
    CHECK(fails("{\"config\": {\"dim\": 3}, \"inputs\": {\"x\": {\"shape\": [\"dim\"]}},"
                " \"nodes\": [{\"name\": \"a\", \"op\": \"softmax\", \"in\": "
                "[\"x\"], \"axis\": \"dm - 4\"}],"
                " \"outputs\": {\"y\": \"a\"}}", NULL, 0, "/nodes/0/axis", "undefined name 'dm'",
                "did you mean 'dim'"));
    CHECK(fails("{\"config\": {\"dim\": 3}, \"inputs\": {\"x\": {\"shape\": [\"dim\"]}},"
                " \"nodes\": [{\"name\": \"a\", \"op\": \"neg\", \"in\": [\"dim\"]}],"
                " \"outputs\": {\"y\": \"a\"}}", NULL, 0, "/nodes/0/in/0",
                "'dim' is a config key", "{\"const\": \"dim\"}"));
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"neg\", \"in\": [\"b\"]},"
                " {\"name\": \"b\", \"op\": \"neg\", \"in\": [\"c\"]},"
                " {\"name\": \"c\", \"op\": \"add\", \"in\": [\"x\", \"a\"]}], \"outputs\": "
                "{\"y\": \"a\"}}",
                NULL, 0, "/nodes/2/in/1", "reference cycle: a -> b -> c -> a", NULL));
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"neg\", \"in\": [\"x\"]},"
                " {\"name\": \"a\", \"op\": \"neg\", \"in\": [\"x\"]}], \"outputs\": "
                "{\"y\": \"a\"}}",
                NULL, 0, "/nodes/1/name", "defined twice (first at /nodes/0)", NULL));
    CHECK(fails(X "\"node\": [], \"outputs\": {\"y\": \"x\"}}", NULL, 0, "/node",
                "unknown key 'node'", "did you mean 'nodes'"));
    CHECK(fails(X "\"nodes\": [{\"name\": \"a\", \"op\": \"neg\", \"in\": [\"x\"]}]}", NULL, 0,
                "/outputs", "'outputs' must be an object", NULL));
    CHECK(fails(X "\"outputs\": {\"y\": \"x:1\"}}", NULL, 0, "/outputs/y", "undefined name 'x:1'",
                NULL));
    CHECK(fails(X "\"base\": \"no-such-file.json\", \"outputs\": {\"y\": \"x\"}}", NULL, 0, "/base",
                "cannot read base file 'no-such-file.json'", NULL));
    CHECK(fails("{\"config\": {\"a\": \"b\", \"b\": \"a\"}, \"outputs\": {}}", NULL, 0, "/config/a",
                "config cycle: a -> b -> a", NULL));
    CHECK(fails("{\"config\": {\"a\": \"2 +\"}, \"outputs\": {}}", NULL, 0, "/config/a",
                "in expression '2 +': expected a number", NULL));
    CHECK(fails("{\"config\": {\"a\": \"1 / (3 - 3)\"}, \"outputs\": {}}", NULL, 0, "/config/a",
                "division by zero", NULL));
    CHECK(fails("{\"config\": {\"a\": [1]}, \"outputs\": {}}", NULL, 0, "/config/a",
                "must be a number or an expression", NULL));
}

static const char *const mod_head =
    "{\"inputs\": {\"x\": {\"shape\": [2]}}, \"modules\": {\"m\": {\"inputs\": [\"x\"],"
    " \"params\": {\"w\": {\"shape\": [2]}}, \"nodes\": [";

static bool mod_fails(const char *body, const char *top, const char *where, const char *msg,
                      const char *hint)
{
    char json[2048];
    snprintf(json, sizeof json, "%s%s], \"outputs\": [\"o\"]}}, \"nodes\": [%s],"
             " \"outputs\": {\"y\": \"top\"}}", mod_head, body, top);
    return fails(json, NULL, 0, where, msg, hint);
}

TEST(error_modules)
{
    const char *o = "{\"name\": \"o\", \"op\": \"mul\", \"in\": [\"x\", \"w\"]}";
    CHECK(mod_fails(o, "{\"name\": \"top\", \"module\": \"m\", \"in\": [\"x\"], \"repeat\": 0}",
                    "/nodes/0/repeat", "repeat must be a positive integer up to 10000, got 0",
                    NULL));
    CHECK(mod_fails(o, "{\"name\": \"top\", \"module\": \"m\", \"in\": [\"x\"], \"repeat\": 10001}",
                    "/nodes/0/repeat", "got 10001", NULL));
    CHECK(mod_fails(o,
                    "{\"name\": \"top\", \"module\": \"m\", \"in\": [\"x\"], \"repeat\": \"1.5\"}",
                    "/nodes/0/repeat", "got 1.5", NULL));
    CHECK(mod_fails(o, "{\"name\": \"top\", \"module\": \"mm\", \"in\": [\"x\"]}",
                    "/nodes/0/module", "unknown module 'mm'", "did you mean 'm'"));
    CHECK(mod_fails(o, "{\"name\": \"top\", \"module\": \"m\", \"in\": [\"x\", \"x\"]}",
                    "/nodes/0/in", "module 'm' takes 1 input (x), got 2", NULL));
    CHECK(mod_fails("{\"name\": \"o\", \"module\": \"m\", \"in\": [\"x\"]}",
                    "{\"name\": \"top\", \"module\": \"m\", \"in\": [\"x\"]}", "/modules/m/nodes/0",
                    "modules nest deeper than 16", "does module 'm' use itself"));
    CHECK(mod_fails(o, "{\"name\": \"top\", \"module\": \"m\", \"in\": [\"x\"]},"
                    " {\"name\": \"t2\", \"module\": \"m\", \"in\": [\"x\"], \"prefix\": \"top\"}",
                    "/modules/m/params/w", "param or input 'top.w' is defined twice", "prefix"));
    CHECK(mod_fails(o, "{\"name\": \"top\", \"module\": \"m\", \"in\": [\"x\"], \"repat\": 2}",
                    "/nodes/0/repat", "unknown key 'repat'", "did you mean 'repeat'"));
    CHECK(mod_fails(o, "{\"name\": \"top\", \"module\": \"m\", \"in\": [\"x\"]},"
                    " {\"name\": \"z\", \"op\": \"neg\", \"in\": [\"top:h\"]}",
                    "/nodes/1/in/0", "module instance 'top' has no output 'h'",
                    "did you mean 'o'"));
    /* 10000 instances of a 12-node module exceed the node limit instead of memory */
    char body[1024] = "";
    for (int i = 0; i < 12; i++)
        snprintf(body + strlen(body), sizeof body - strlen(body),
                 "%s{\"name\": \"%c\", \"op\": \"neg\", \"in\": [\"%s\"]}", i ? ", " : "",
                 i == 11 ? 'o' : 'a' + i, i ? (char[]){(char)('a' + i - 1), 0} : "x");
    CHECK(mod_fails(body,
                    "{\"name\": \"top\", \"module\": \"m\", \"in\": [\"x\"], \"repeat\": 10000}",
                    "/modules/m/nodes/", "more than 100000 nodes", NULL));
}

/* ---------------------------------------------------------------- costs */

TEST(costs)
{
    IrError err = {0};
    FeModel *m = load("{\"inputs\": {\"x\": {\"shape\": [\"B\", 3, 4]}},"
                      " \"params\": {\"w\": {\"shape\": [5, 4]}, \"s\": {\"shape\": "
                      "[5], \"trainable\": false}},"
                      " \"nodes\": [{\"name\": \"h\", \"op\": \"matmul\", \"in\": "
                      "[\"x\", \"w\"], \"tb\": 1},"
                      "  {\"name\": \"n\", \"op\": \"layernorm\", \"in\": [\"h\", \"s\", \"s\"]},"
                      "  {\"name\": \"y\", \"op\": \"sum\", \"in\": [\"n\"], \"axes\": [-1]}],"
                      " \"outputs\": {\"y\": \"y\"}}", NULL, 0, &err);
    CHECK(m);
    if (!m)
        return;
    IrParamStats ps = ir_cost_params(m->graph);
    CHECK(ps.elems == 25 && ps.trainable == 20 && ps.bytes == 100 && ps.tensors == 2);
    int64_t b[IR_MAX_SYMS] = {2};
    /* matmul 2*K*out = 2*4*(2*3*5), layernorm 8*30, sum 30 */
    CHECK(ir_cost_flops(m->graph, b) == 240 + 240 + 30);
    CHECK(ir_cost_activation_bytes(m->graph, b) == 4 * (24 + 30 + 30 + 6));
    fe_model_free(m);
}

int main(void)
{
    RUN(gpt2_small_params);
    RUN(gpt2_names);
    RUN(small_models);
    RUN(config_expressions);
    RUN(config_sets);
    RUN(repeat_chain);
    RUN(two_input_repeat);
    RUN(alias_and_if);
    RUN(dims_and_consts);
    RUN(error_json);
    RUN(error_ops);
    RUN(error_shapes);
    RUN(error_names);
    RUN(error_modules);
    RUN(costs);
    return test_summary();
}
