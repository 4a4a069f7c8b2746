/* srvocsp: fetch, show (and more) from the command line. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: srvocsp COMMAND [OPTIONS]\n"
               "\n"
               "commands:\n"
               "  fetch   fetch and verify the OCSP response for a certificate once\n"
               "  show    decode (and verify) a DER OCSP response\n"
               "  check   monitoring-plugin check of a response file or a live server's staple\n"
               "  watch   keep <cert>.ocsp files fresh for nginx and HAProxy (a service)\n"
               "\n"
               "Run 'srvocsp COMMAND --help' for a command's options, 'srvocsp --version' for the\n"
               "version, 'man srvocsp' for the manual.\n");
}

int main(int argc, char **argv)
{
    int rc;

    /* Results on stdout and reasons on stderr stay in order on a terminal. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        usage(stderr);
        return EXIT_FAIL;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        /* The loaded library's version: the command and the library come
         * from one build and one package, so they are the same. */
        printf("srvocsp %s\n", srvocsp_version(NULL));
        return 0;
    }
    if (strcmp(argv[1], "fetch") == 0)
        rc = cmd_fetch(argc - 1, argv + 1);
    else if (strcmp(argv[1], "show") == 0)
        rc = cmd_show(argc - 1, argv + 1);
    else if (strcmp(argv[1], "check") == 0)
        rc = cmd_check(argc - 1, argv + 1);
    else if (strcmp(argv[1], "watch") == 0)
        rc = cmd_watch(argc - 1, argv + 1);
    else {
        fprintf(stderr, "srvocsp: unknown command '%s'\n", argv[1]);
        usage(stderr);
        rc = EXIT_FAIL;
    }
    srvocsp_cleanup();
    return rc;
}
