/*
 * Runs the Windows-style proof program (wincrypt_proof.c, built as C and
 * as C++) against a real `openssl ocsp` responder on 127.0.0.1: makes the
 * test PKI, lays out the system stores it reads (MY: the server
 * certificates, CA: the issuing CA, ROOT: the root), starts the responder,
 * runs the program and checks that it passed and that the responder was
 * asked exactly once (the WRITE handle's retrieval: the READ handle serves
 * from the directory without asking).
 *
 * Usage: wincrypt_proof_run PROOF-BINARY
 * With SRVOCSP_TEST_WRAPPER set (e.g. "valgrind -q --error-exitcode=99"),
 * the program runs under that command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"
#include "testpki.h"

static int put(const char *root, const char *loc, const char *name, const char *file, X509 *x)
{
    char path[1400];

    snprintf(path, sizeof(path), "%s/%s", root, loc);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", root, loc, name);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s/%s", root, loc, name, file);
    return tp_write_cert(path, x, NULL);
}

int main(int argc, char **argv)
{
    char url[64], stores[1200], ocsp_dir[1200];
    char *dir = NULL;
    tr_responder resp;
    tp_pki pki;
    int port, status = -1, requests, rc = 1;
    pid_t pid;

    if (argc != 2) {
        fprintf(stderr, "usage: wincrypt_proof_run PROOF-BINARY\n");
        return 2;
    }
    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("SKIP: openssl command not found\n");
        return 77;
    }
    memset(&resp, 0, sizeof(resp));
    dir = tr_tmpdir("wincrypt-proof");
    port = tr_free_port();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    if (!tp_pki_make(&pki, url, url, (int64_t)time(NULL)) || !tp_pki_write(&pki, dir)) {
        fprintf(stderr, "cannot make the test PKI\n");
        goto out;
    }
    snprintf(stores, sizeof(stores), "%s/certstores", dir);
    snprintf(ocsp_dir, sizeof(ocsp_dir), "%s/ocsp", dir);
    mkdir(stores, 0755);
    if (!put(stores, "LocalMachine", "MY", "server.pem", pki.good.cert) ||
        !put(stores, "LocalMachine", "MY", "noaia.pem", pki.noaia.cert) ||
        !put(stores, "LocalMachine", "CA", "ca.pem", pki.ca.cert) ||
        !put(stores, "LocalMachine", "ROOT", "root.pem", pki.root.cert)) {
        fprintf(stderr, "cannot write the stores\n");
        goto out_pki;
    }
    if (!tr_responder_start(&resp, port, dir, "ca", 60)) {
        fprintf(stderr, "cannot start openssl ocsp\n");
        goto out_pki;
    }
    setenv("SRVOCSP_CERT_STORE_DIR", stores, 1);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        const char *wrap = getenv("SRVOCSP_TEST_WRAPPER"); /* e.g. valgrind, as for test_cli */

        if (wrap != NULL && wrap[0] != '\0')
            execl("/bin/sh", "sh", "-c", "exec $SRVOCSP_TEST_WRAPPER \"$@\"", "sh", argv[1], ocsp_dir,
                  "good.test", "noaia.test", (char *)NULL);
        else
            execl(argv[1], argv[1], ocsp_dir, "good.test", "noaia.test", (char *)NULL);
        perror(argv[1]);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        perror("fork");
        goto out_resp;
    }
    requests = tr_responder_requests(&resp);
    printf("proof program exit status %d; responder asked %d time(s)\n",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1, requests);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && requests == 1)
        rc = 0;
    else if (requests != 1)
        fprintf(stderr, "expected exactly one request (the WRITE handle's)\n");
out_resp:
    tr_responder_stop(&resp);
out_pki:
    tp_pki_free(&pki);
out:
    tr_rmrf(dir);
    free(dir);
    printf("%d passed, %d failed\n", rc == 0, rc != 0);
    return rc;
}
