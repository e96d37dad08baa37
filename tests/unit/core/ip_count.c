/* Unit tests for src/core/ip_count.c: per-address connection counts behind the per-IP caps. */
#include "test.h"

#include "core/ip_count.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static void key4(const char *text, uint8_t out[16])
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, text, &sa.sin_addr);
    ip_count_key((const struct sockaddr *)&sa, out);
}

static void key6(const char *text, uint8_t out[16])
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, text, &sa.sin6_addr);
    ip_count_key((const struct sockaddr *)&sa, out);
}

TEST(ip_count_cap_per_address)
{
    struct ip_count t;
    ip_count_init(&t);
    uint8_t a[16], b[16];
    key4("127.0.0.2", a);
    key4("127.0.0.1", b);
    for (int i = 0; i < 3; i++)
        CHECK(ip_count_take(&t, a, 3));
    CHECK(!ip_count_take(&t, a, 3)); /* the fourth from a is refused */
    CHECK(ip_count_take(&t, b, 3));  /* another address is not */
    CHECK_INT(ip_count_of(&t, a), 3);
    CHECK_INT(ip_count_of(&t, b), 1);
    ip_count_release(&t, a);
    CHECK(ip_count_take(&t, a, 3)); /* a slot went back */
    for (int i = 0; i < 3; i++)
        ip_count_release(&t, a);
    CHECK_INT(ip_count_of(&t, a), 0);
    ip_count_release(&t, a); /* a release too many is harmless */
    CHECK_INT(ip_count_of(&t, a), 0);
    CHECK(ip_count_take(&t, a, 0)); /* 0: no cap */
    ip_count_free(&t);              /* frees what is still counted (ASan: no leak) */
}

TEST(ip_count_families_share_one_key)
{
    uint8_t v4[16], mapped[16], v6[16];
    key4("10.1.2.3", v4);
    key6("::ffff:10.1.2.3", mapped);
    key6("2001:db8::1", v6);
    CHECK_MEM(v4, mapped, 16); /* IPv4 and its IPv4-mapped IPv6 form are one address */
    CHECK(memcmp(v4, v6, 16) != 0);
    struct ip_count t;
    ip_count_init(&t);
    CHECK(ip_count_take(&t, v4, 1));
    CHECK(!ip_count_take(&t, mapped, 1));
    CHECK(ip_count_take(&t, v6, 1));
    /* many addresses: entries come and go with their last connection */
    for (int i = 0; i < 5000; i++) {
        char text[32];
        snprintf(text, sizeof text, "10.9.%d.%d", i / 250, i % 250);
        uint8_t k[16];
        key4(text, k);
        CHECK(ip_count_take(&t, k, 1));
    }
    for (int i = 0; i < 5000; i += 2) {
        char text[32];
        snprintf(text, sizeof text, "10.9.%d.%d", i / 250, i % 250);
        uint8_t k[16];
        key4(text, k);
        ip_count_release(&t, k);
        CHECK_INT(ip_count_of(&t, k), 0);
    }
    uint8_t odd[16];
    key4("10.9.0.1", odd);
    CHECK_INT(ip_count_of(&t, odd), 1);
    ip_count_free(&t);
}

TEST(ip_count_key_from_text)
{
    uint8_t a[16], b[16];
    ip_count_key_text("127.0.0.3", a);
    key4("127.0.0.3", b);
    CHECK(memcmp(a, b, 16) == 0);
    ip_count_key_text("::ffff:127.0.0.3", a); /* the mapped spelling is the same address */
    CHECK(memcmp(a, b, 16) == 0);
    ip_count_key_text("::1", a);
    key6("::1", b);
    CHECK(memcmp(a, b, 16) == 0);
    static const uint8_t zero[16] = {0};
    ip_count_key_text("not an address", a);
    CHECK(memcmp(a, zero, 16) == 0);
    ip_count_key_text("", a);
    CHECK(memcmp(a, zero, 16) == 0);
}
