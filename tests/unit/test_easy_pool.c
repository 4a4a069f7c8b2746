/* The transport's kept easy handles (net/easy_pool.c): a handle comes
 * back reset, no more than the cap are kept (the rest are cleaned up:
 * ASan and valgrind would see them leak), and the shared header lists say
 * what every request says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "net/easy_pool.h"

static void test_reuse_is_reset(void **s)
{
    srvocsp__easy_pool p;
    CURL *a, *b;
    char *priv = (char *)&p;

    (void)s;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    assert_true(srvocsp__easy_pool_init(&p));
    a = srvocsp__easy_get(&p);
    assert_non_null(a);
    curl_easy_setopt(a, CURLOPT_PRIVATE, (char *)&p);
    srvocsp__easy_put(&p, a);
    assert_int_equal(p.n_idle, 1);
    b = srvocsp__easy_get(&p);
    assert_ptr_equal(a, b); /* the kept one */
    assert_int_equal(p.n_idle, 0);
    /* ... with its options back at their defaults. */
    curl_easy_getinfo(b, CURLINFO_PRIVATE, &priv);
    assert_null(priv);
    srvocsp__easy_put(&p, b);
    srvocsp__easy_put(&p, NULL); /* ignored */
    assert_int_equal(p.n_idle, 1);
    srvocsp__easy_pool_free(&p);
}

static void test_cap(void **s)
{
    srvocsp__easy_pool p;
    CURL *h[SRVOCSP__EASY_POOL_MAX + 6];
    unsigned i;

    (void)s;
    assert_true(srvocsp__easy_pool_init(&p));
    for (i = 0; i < SRVOCSP__EASY_POOL_MAX + 6; i++)
        assert_non_null(h[i] = srvocsp__easy_get(&p));
    for (i = 0; i < SRVOCSP__EASY_POOL_MAX + 6; i++)
        srvocsp__easy_put(&p, h[i]); /* past the cap: cleaned up (ASan sees a leak otherwise) */
    assert_int_equal(p.n_idle, SRVOCSP__EASY_POOL_MAX);
    h[0] = srvocsp__easy_get(&p);
    assert_int_equal(p.n_idle, SRVOCSP__EASY_POOL_MAX - 1);
    srvocsp__easy_put(&p, h[0]); /* room again: kept */
    assert_int_equal(p.n_idle, SRVOCSP__EASY_POOL_MAX);
    srvocsp__easy_pool_free(&p); /* frees every kept one */
}

static void test_headers(void **s)
{
    srvocsp__easy_pool p;
    struct curl_slist *g, *q;

    (void)s;
    assert_true(srvocsp__easy_pool_init(&p));
    g = srvocsp__easy_headers(&p, false);
    q = srvocsp__easy_headers(&p, true);
    assert_string_equal(g->data, "Accept: application/ocsp-response");
    assert_null(g->next);
    assert_string_equal(q->data, "Accept: application/ocsp-response");
    assert_non_null(q->next);
    assert_string_equal(q->next->data, "Content-Type: application/ocsp-request");
    assert_null(q->next->next);
    srvocsp__easy_pool_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_is_reset),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_headers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    curl_global_cleanup();
    return rc;
}
