/* test: the unit-test harness. A test file mirrors a source file (tests/unit/proto/mysql_packet.c
 * for src/proto/mysql_packet.c) and declares tests with TEST(name) { ... }; they register
 * themselves and tests/unit/main.c runs them all, each one's failures counted, never aborting
 * the run. */
#ifndef CC_TEST_H
#define CC_TEST_H

#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *file, const char *name, test_fn fn);
void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void register_##name(void)                                 \
    {                                                                                              \
        test_register(__FILE__, #name, test_##name);                                               \
    }                                                                                              \
    static void test_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                            \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) test_fail(__FILE__, __LINE__, "%s == %lld, expected %lld", #a, a_, b_);      \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            test_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", \
                      b_ ? b_ : "(null)");                                                         \
    } while (0)

#define CHECK_MEM(a, b, n)                                                                         \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0)                                                            \
            test_fail(__FILE__, __LINE__, "%s differs from %s over %zu bytes", #a, #b,             \
                      (size_t)(n));                                                                \
    } while (0)

#endif
