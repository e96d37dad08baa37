/* cli: the command line both binaries share: --conf FILE, --check, --version, --help. */
#ifndef CC_CLI_H
#define CC_CLI_H

#include <stdbool.h>

struct cli {
    const char *conf; /* --conf FILE, else default_conf when that file exists, else NULL */
    bool check;       /* --check: validate the settings and exit */
};

/* Parses argv. Returns -1 to go on, or an exit status (0 after --version/--help, 2 after a bad
 * argument, having printed the usage). */
int cli_parse(int argc, char **argv, const char *program, const char *version,
              const char *default_conf, struct cli *out);

#endif
