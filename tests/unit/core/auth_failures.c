/* Unit tests for src/core/auth_failures.c: failed logins per address in a window, behind the
 * CometQL and browser login throttles. */
#include "test.h"

#include "core/auth_failures.h"

#include <string.h>

static void addr(uint32_t n, uint8_t out[16])
{
    memset(out, 0, 16);
    out[10] = out[11] = 0xff;
    out[12] = (uint8_t)(n >> 24);
    out[13] = (uint8_t)(n >> 16);
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
}

TEST(auth_failures_cap_window_and_reset)
{
    struct auth_failures t;
    auth_failures_init(&t);
    uint8_t a[16], b[16];
    addr(0x7f000002, a);
    addr(0x7f000001, b);
    uint32_t now = 1000;
    for (int i = 0; i < 3; i++) {
        CHECK_INT(auth_failures_blocked(&t, a, now, 3, 60), 0);
        auth_failures_add(&t, a, now + (uint32_t)i, 60);
    }
    CHECK_INT(auth_failures_blocked(&t, a, now + 2, 3, 60), 58); /* the window began at now */
    CHECK_INT(auth_failures_blocked(&t, b, now + 2, 3, 60), 0);  /* another address */
    CHECK_INT(auth_failures_blocked(&t, a, now + 2, 0, 60), 0);  /* max 0: no cap */
    CHECK_INT(auth_failures_blocked(&t, a, now + 59, 3, 60), 1);
    CHECK_INT(auth_failures_blocked(&t, a, now + 60, 3, 60), 0); /* the window ended: forgotten */
    CHECK_INT(auth_failures_size(&t), 0);
    /* a success starts the count afresh */
    auth_failures_add(&t, a, now, 60);
    auth_failures_add(&t, a, now, 60);
    auth_failures_clear(&t, a);
    auth_failures_add(&t, a, now, 60);
    auth_failures_add(&t, a, now, 60);
    CHECK_INT(auth_failures_blocked(&t, a, now, 3, 60), 0);
    auth_failures_free(&t);
}

TEST(auth_failures_bounded_table)
{
    struct auth_failures t;
    auth_failures_init(&t);
    uint8_t ip[16];
    for (uint32_t i = 0; i < AUTH_FAILURES_MAX; i++) {
        addr(0x0a000000 + i, ip);
        auth_failures_add(&t, ip, 100, 60);
    }
    CHECK_INT(auth_failures_size(&t), AUTH_FAILURES_MAX);
    /* full and nothing expired: everything is forgotten, then the new address counts */
    addr(0x0b000000, ip);
    auth_failures_add(&t, ip, 110, 60);
    CHECK_INT(auth_failures_size(&t), 1);
    /* full with expired windows: only those go */
    for (uint32_t i = 1; i < AUTH_FAILURES_MAX; i++) {
        addr(0x0c000000 + i, ip);
        auth_failures_add(&t, ip, 200, 60);
    }
    CHECK_INT(auth_failures_size(&t), AUTH_FAILURES_MAX);
    addr(0x0d000000, ip);
    auth_failures_add(&t, ip, 200, 60); /* 0x0b000000's window (from 110) has ended */
    CHECK_INT(auth_failures_size(&t), AUTH_FAILURES_MAX);
    addr(0x0b000000, ip);
    CHECK_INT(auth_failures_blocked(&t, ip, 200, 1, 60), 0);
    auth_failures_free(&t);
}
