/* fuzz/cometql: libFuzzer target for the CometQL parser (src/proto/cometql.c). Parses every input
 * with and without `?` placeholders under small limits, in a fresh arena each time, walks the
 * resulting tree so ASan sees every pointer it hands out, and checks the contract's invariants;
 * then runs cq_like_match with the first half of the input as pattern and the second as text. */
#include "core/arena.h"
#include "proto/cometql.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static volatile size_t sink;

static void touch_str(const char *s)
{
    if (s) sink += strlen(s);
}

static void touch_operand(const struct cq_operand *o, unsigned n_params)
{
    ENSURE(o->param >= -1 && o->param < (int)n_params);
    if (o->param >= 0) return;
    ENSURE(o->v.kind == VALUE_NULL || o->v.kind == VALUE_INT || o->v.kind == VALUE_STR);
    if (o->v.kind == VALUE_STR) {
        ENSURE(o->v.s != NULL);
        for (size_t i = 0; i < o->v.len; i++)
            sink += (unsigned char)o->v.s[i];
    }
}

static void walk(const struct cq_stmt *st, const struct cq_limits *lim)
{
    touch_str(st->table);
    touch_str(st->db);
    touch_str(st->like);
    ENSURE(st->n_columns <= lim->max_columns);
    for (size_t i = 0; i < st->n_columns; i++) {
        ENSURE(st->columns[i] && strlen(st->columns[i]) <= CQ_NAME_MAX);
    }
    for (size_t i = 0; i < st->n_exprs; i++) {
        const struct cq_expr *e = &st->exprs[i];
        touch_str(e->name);
        touch_str(e->alias);
        ENSURE(e->text != NULL);
        touch_str(e->text);
        if (e->kind == CQ_EXPR_LITERAL) touch_operand(&e->literal, st->n_params);
    }
    ENSURE(st->n_where <= lim->max_conditions);
    for (size_t i = 0; i < st->n_where; i++) {
        const struct cq_cond *c = &st->where[i];
        ENSURE(c->column != NULL);
        touch_str(c->column);
        touch_str(cq_op_name(c->op));
        ENSURE(c->n_values <= lim->max_in_values);
        for (size_t k = 0; k < c->n_values; k++)
            touch_operand(&c->values[k], st->n_params);
    }
    for (size_t i = 0; i < st->n_order; i++)
        touch_str(st->order[i].column);
    ENSURE(st->n_rows <= lim->max_in_values);
    for (size_t r = 0; r < st->n_rows; r++) {
        if (st->n_columns) ENSURE(st->n_row_values == st->n_columns);
        for (size_t k = 0; k < st->n_row_values; k++)
            touch_operand(&st->rows[r][k], st->n_params);
    }
    for (size_t i = 0; i < st->n_assigns; i++) {
        touch_str(st->assigns[i].column);
        touch_operand(&st->assigns[i].value, st->n_params);
    }
    for (size_t i = 0; i < st->n_sets; i++) {
        touch_str(st->sets[i].column);
        touch_operand(&st->sets[i].value, st->n_params);
    }
    if (st->has_limit) sink += (size_t)(st->limit_offset + st->limit_count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct cq_limits lim = {.max_in_values = 8, .max_conditions = 4, .max_columns = 6};
    for (int params = 0; params < 2; params++) {
        struct arena a;
        arena_init(&a);
        struct cq_stmt *st = (struct cq_stmt *)&a; /* must be overwritten */
        struct cq_error err;
        int rc = cq_parse((const char *)data, size, &lim, params != 0, &a, &st, &err);
        if (rc == CQ_OK) {
            ENSURE(st != NULL && err.code == 0);
            if (!params) ENSURE(st->n_params == 0);
            walk(st, &lim);
        } else {
            ENSURE(rc == CQ_ERROR && st == NULL && err.code != 0);
            ENSURE(memchr(err.msg, '\0', sizeof err.msg) != NULL && err.msg[0] != '\0');
        }
        arena_free(&a);
    }

    size_t half = size / 2;
    char *pattern = malloc(half + 1);
    if (!pattern) return 0;
    memcpy(pattern, data, half);
    pattern[half] = '\0';
    sink += cq_like_match(pattern, (const char *)data + half, size - half);
    free(pattern);
    return 0;
}
