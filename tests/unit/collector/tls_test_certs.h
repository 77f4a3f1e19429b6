/*
 * Test certificates for the TLS unit tests, made with the openssl command line (as a user
 * would) in a temporary directory: a CA, certificates it signs, optionally with the
 * localhost SAN that a client checking the host name needs.
 */
#ifndef TH_TEST_TLS_CERTS_H
#define TH_TEST_TLS_CERTS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The directory of this test's certificates (set by tls_certs_dir). */
static char dir[64];

/* An EC P-256 key, fast to make. */
#define TLS_TEST_EC_KEY "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

/* One shell command in dir; the test fails when it does. */
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    char full[2200];
    snprintf(full, sizeof(full), "cd %s && (%s) >/dev/null 2>&1", dir, cmd);
    assert_int_equal(system(full), 0);
}

/* A new temporary dir (from @p tmpl, e.g. "/tmp/th-tls-XXXXXX") with the SAN extension file. */
static int tls_certs_dir(const char *tmpl)
{
    snprintf(dir, sizeof(dir), "%s", tmpl);
    if (!mkdtemp(dir)) {
        return -1;
    }
    sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext");
    return 0;
}

/* A self-signed CA: NAME.pem and NAME.key. */
static void tls_make_ca(const char *name, const char *cn)
{
    sh("openssl req -x509 " TLS_TEST_EC_KEY " -keyout %s.key -out %s.pem -days 2 -subj /CN=%s",
       name, name, cn);
}

/* NAME.pem and NAME.key signed by CA (files CA.pem, CA.key); @p san adds localhost. */
static void tls_issue(const char *name, const char *cn, const char *ca, bool san)
{
    sh("openssl req " TLS_TEST_EC_KEY " -keyout %s.key -out %s.csr -subj /CN=%s", name, name, cn);
    sh("openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial -out %s.pem "
       "-days 2 %s",
       name, ca, ca, name, san ? "-extfile san.ext" : "");
}

/* cmocka group teardown: the directory goes. */
static int remove_certs(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
