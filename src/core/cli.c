/* cli: command-line parsing shared by ccomet and ccomet-media; see cli.h. */
#include "core/cli.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f, const char *program, const char *default_conf)
{
    fprintf(f,
            "usage: %s [--conf FILE] [--check] [--version]\n"
            "  --conf FILE  settings (default: ./%s, or built-in defaults)\n"
            "  --check      validate the settings and exit\n",
            program, default_conf);
}

int cli_parse(int argc, char **argv, const char *program, const char *version,
              const char *default_conf, struct cli *out)
{
    out->conf = NULL;
    out->check = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--conf") == 0 && i + 1 < argc) {
            out->conf = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0) {
            out->check = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", program, version);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, program, default_conf);
            return 0;
        } else {
            fprintf(stderr, "%s: unknown argument '%s'\n", program, argv[i]);
            usage(stderr, program, default_conf);
            return 2;
        }
    }
    if (!out->conf && access(default_conf, F_OK) == 0) out->conf = default_conf;
    return -1;
}
