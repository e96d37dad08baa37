/* The unit-test runner: runs every registered test (optionally only those whose name contains
 * argv[1]) and ends with "N passed, N failed". */
#include "test.h"

#include "core/log.h"

#include <stdarg.h>
#include <stdlib.h>

struct test_case {
    const char *file, *name;
    test_fn fn;
};

static struct test_case cases[2048];
static size_t n_cases;
static int current_failures;

void test_register(const char *file, const char *name, test_fn fn)
{
    if (n_cases < sizeof cases / sizeof cases[0]) {
        cases[n_cases].file = file;
        cases[n_cases].name = name;
        cases[n_cases].fn = fn;
        n_cases++;
    }
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    current_failures++;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    /* modules log as they work; CCOMET_TEST_LOG=debug shows it */
    enum log_level level = LOG_CRIT;
    const char *env = getenv("CCOMET_TEST_LOG");
    if (env) log_parse_level(env, &level);
    log_set_level(level);
    for (size_t i = 0; i < n_cases; i++) {
        if (argc > 1 && !strstr(cases[i].name, argv[1])) continue;
        current_failures = 0;
        cases[i].fn();
        if (current_failures) {
            printf("not ok - %s: %s\n", cases[i].file, cases[i].name);
            failed++;
        } else {
            printf("ok - %s: %s\n", cases[i].file, cases[i].name);
            passed++;
        }
    }
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
