/* The per-responder memory of the HTTP method (net/method_memo.c), with
 * the time passed in: what is listed, how long it is kept, what makes
 * room. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "net/method_memo.h"

#define DAY_MS SRVOCSP__MEMO_KEEP_MS

static void test_key(void **s)
{
    char k[SRVOCSP__MEMO_KEY_LEN];

    (void)s;
    assert_true(srvocsp__responder_key("http://ocsp.example.com", k, sizeof(k)));
    assert_string_equal(k, "http://ocsp.example.com:80/");
    assert_true(srvocsp__responder_key("https://ocsp.example.com/ca1?x=1#f", k, sizeof(k)));
    assert_string_equal(k, "https://ocsp.example.com:443/ca1");
    assert_true(srvocsp__responder_key("http://127.0.0.1:8080/a/", k, sizeof(k)));
    assert_string_equal(k, "http://127.0.0.1:8080/a/");
    assert_false(srvocsp__responder_key("not a url", k, sizeof(k)));
    assert_false(srvocsp__responder_key("http://ocsp.example.com/", k, 10)); /* does not fit */
}

static void test_learn_list_forget(void **s)
{
    srvocsp_method_fallback f[4];
    int64_t t = 1000;

    (void)s;
    srvocsp__memo_reset();
    assert_int_equal(srvocsp__memo_pick("http://a:80/", t, NULL), SRVOCSP__AS_ASKED);
    srvocsp__memo_learn("http://a:80/", SRVOCSP__USE_POST, "GET answered HTTP 400", t);
    assert_int_equal(srvocsp__memo_pick("http://a:80/", t + 1, NULL), SRVOCSP__USE_POST);
    assert_int_equal(srvocsp__memo_list(f, 4, t + 1000), 1);
    assert_string_equal(f[0].responder, "http://a:80/");
    assert_string_equal(f[0].method, "POST");
    assert_string_equal(f[0].why, "GET answered HTTP 400");
    assert_int_equal(f[0].requests, 2); /* the one that learnt it, and one picked */
    assert_int_equal(f[0].forget_in_s, DAY_MS / 1000 - 1);
    /* Learnt again later (another fallback): kept a day from then, same report. */
    srvocsp__memo_learn("http://a:80/", SRVOCSP__USE_POST, NULL, t + DAY_MS / 2);
    assert_int_equal(srvocsp__memo_list(f + 1, 1, t + DAY_MS / 2), 1);
    assert_int_equal(f[1].id, f[0].id);
    assert_string_equal(f[1].why, "GET answered HTTP 400");
    assert_int_equal(srvocsp__memo_pick("http://a:80/", t + DAY_MS + 1, NULL), SRVOCSP__USE_POST);
    /* A day after it was last learnt: GET again. */
    assert_int_equal(srvocsp__memo_pick("http://a:80/", t + DAY_MS / 2 + DAY_MS, NULL),
                     SRVOCSP__AS_ASKED);
    assert_int_equal(srvocsp__memo_list(f, 4, t + DAY_MS / 2 + DAY_MS), 0);
    /* Forgotten at once when the first choice works again. */
    srvocsp__memo_learn("http://b:80/", SRVOCSP__USE_GET, "POST answered HTTP 405", t);
    srvocsp__memo_forget("http://b:80/");
    assert_int_equal(srvocsp__memo_pick("http://b:80/", t, NULL), SRVOCSP__AS_ASKED);
}

static void test_trial(void **s)
{
    srvocsp_method_fallback f[2];
    bool trial = false;

    (void)s;
    srvocsp__memo_reset();
    srvocsp__memo_suspect_get("http://h:80/", "GET got no answer in 2000 ms", 0);
    assert_int_equal(srvocsp__memo_pick("http://h:80/", 1, &trial), SRVOCSP__USE_POST);
    assert_true(trial);
    assert_int_equal(srvocsp__memo_list(f, 2, 1), 0); /* not reported until POST works */
    srvocsp__memo_learn("http://h:80/", SRVOCSP__USE_POST, NULL, 2);
    assert_int_equal(srvocsp__memo_pick("http://h:80/", 3, &trial), SRVOCSP__USE_POST);
    assert_false(trial);
    assert_int_equal(srvocsp__memo_list(f, 2, 3), 1);
    assert_string_equal(f[0].why, "GET got no answer in 2000 ms");
    /* A confirmed entry is not put back on trial by another hang. */
    srvocsp__memo_suspect_get("http://h:80/", "again", 4);
    assert_int_equal(srvocsp__memo_pick("http://h:80/", 5, &trial), SRVOCSP__USE_POST);
    assert_false(trial);
}

/* What srvocsp watch does with the list: report each entry whose id is
 * above the largest reported so far.  Returns how many it reported now and
 * the responder of the last one in |who|. */
static int report_new(uint64_t *logged, char *who, size_t len, int64_t now)
{
    srvocsp_method_fallback f[SRVOCSP__MEMO_SLOTS];
    size_t i, n = srvocsp__memo_list(f, SRVOCSP__MEMO_SLOTS, now);
    int reported = 0;

    for (i = 0; i < n; i++) {
        if (f[i].id <= *logged)
            continue;
        *logged = f[i].id;
        /* Bounded by hand: GCC takes the whole array for the source. */
        if (len > 0) {
            size_t k = strnlen(f[i].responder, sizeof(f[i].responder));

            k = k < len ? k : len - 1;
            memcpy(who, f[i].responder, k);
            who[k] = '\0';
        }
        reported++;
    }
    return reported;
}

static void test_trial_confirmed_after_another(void **s)
{
    srvocsp_method_fallback f[2];
    uint64_t logged = 0;
    char who[SRVOCSP__MEMO_KEY_LEN] = "";

    (void)s;
    srvocsp__memo_reset();
    /* A's GET hangs (on trial); B refuses GET and is learnt, and reported. */
    srvocsp__memo_suspect_get("http://a:80/", "GET got no answer in 2000 ms", 10);
    srvocsp__memo_learn("http://b:80/", SRVOCSP__USE_POST, "GET answered HTTP 400", 20);
    assert_int_equal(report_new(&logged, who, sizeof(who), 21), 1);
    assert_string_equal(who, "http://b:80/");
    /* A's POST works: confirmed after B, so listed after B and reported. */
    srvocsp__memo_learn("http://a:80/", SRVOCSP__USE_POST, NULL, 30);
    assert_int_equal(srvocsp__memo_list(f, 2, 31), 2);
    assert_string_equal(f[0].responder, "http://b:80/");
    assert_string_equal(f[1].responder, "http://a:80/");
    assert_true(f[1].id > f[0].id);
    assert_string_equal(f[1].why, "GET got no answer in 2000 ms");
    assert_int_equal(report_new(&logged, who, sizeof(who), 31), 1);
    assert_string_equal(who, "http://a:80/");
    /* Confirmed again as they were: nothing new to report. */
    srvocsp__memo_learn("http://a:80/", SRVOCSP__USE_POST, NULL, 40);
    srvocsp__memo_learn("http://b:80/", SRVOCSP__USE_POST, NULL, 41);
    assert_int_equal(report_new(&logged, who, sizeof(who), 42), 0);
    /* B now needs GET (a front refusing POST): a new finding, reported. */
    srvocsp__memo_learn("http://b:80/", SRVOCSP__USE_GET, "POST answered HTTP 405", 50);
    assert_int_equal(report_new(&logged, who, sizeof(who), 51), 1);
    assert_string_equal(who, "http://b:80/");
    /* Forgotten and learnt again later: reported again. */
    srvocsp__memo_forget("http://a:80/");
    srvocsp__memo_learn("http://a:80/", SRVOCSP__USE_POST, "GET answered HTTP 404", 60);
    assert_int_equal(report_new(&logged, who, sizeof(who), 61), 1);
    assert_string_equal(who, "http://a:80/");
}

static void test_full(void **s)
{
    char k[64];
    int i;

    (void)s;
    srvocsp__memo_reset();
    /* One more responder than there are slots: the one nearest to being
     * forgotten (the first learnt) makes room. */
    for (i = 0; i <= SRVOCSP__MEMO_SLOTS; i++) {
        snprintf(k, sizeof(k), "http://r%d:80/", i);
        srvocsp__memo_learn(k, SRVOCSP__USE_POST, "GET answered HTTP 400", i);
    }
    assert_int_equal(srvocsp__memo_list(NULL, 0, SRVOCSP__MEMO_SLOTS + 1), SRVOCSP__MEMO_SLOTS);
    assert_int_equal(srvocsp__memo_pick("http://r0:80/", SRVOCSP__MEMO_SLOTS + 1, NULL),
                     SRVOCSP__AS_ASKED);
    assert_int_equal(srvocsp__memo_pick("http://r1:80/", SRVOCSP__MEMO_SLOTS + 1, NULL),
                     SRVOCSP__USE_POST);
    snprintf(k, sizeof(k), "http://r%d:80/", SRVOCSP__MEMO_SLOTS);
    assert_int_equal(srvocsp__memo_pick(k, SRVOCSP__MEMO_SLOTS + 1, NULL), SRVOCSP__USE_POST);
}

/* What an answer says about its method, rule by rule (the table of
 * docs/responders.md); the bodies are the two kinds that matter: an OCSP
 * response (successful, or malformedRequest) and anything else. */
static void test_answer_rules(void **state)
{
    /* OCSPResponse { malformedRequest (1) } and { successful (0), [0] ... } */
    static const unsigned char malformed[] = {0x30, 0x03, 0x0a, 0x01, 0x01};
    static const unsigned char unauthorized[] = {0x30, 0x03, 0x0a, 0x01, 0x06};
    static const unsigned char html[] = "<html>405</html>";
    char why[160];
    long refused[] = {301, 302, 307, 308, 400, 404, 405, 414};

    (void)state;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        why[0] = '\0';
        assert_true(srvocsp__get_refused(refused[i], NULL, 0, why, sizeof(why)));
        assert_non_null(strstr(why, "GET answered HTTP"));
    }
    assert_non_null(strstr(why, "414"));
    assert_true(srvocsp__get_refused(301, NULL, 0, why, sizeof(why)));
    assert_non_null(strstr(why, "redirect, not followed"));
    /* Down or busy is not a refusal of the method. */
    assert_false(srvocsp__get_refused(500, NULL, 0, why, sizeof(why)));
    assert_false(srvocsp__get_refused(503, NULL, 0, why, sizeof(why)));
    assert_true(srvocsp__get_refused(200, html, sizeof(html) - 1, why, sizeof(why)));
    assert_non_null(strstr(why, "not an OCSP response"));
    assert_true(srvocsp__get_refused(200, malformed, sizeof(malformed), why, sizeof(why)));
    assert_non_null(strstr(why, "malformedRequest"));
    /* An answer about the certificate is an answer. */
    assert_false(srvocsp__get_refused(200, unauthorized, sizeof(unauthorized), why, sizeof(why)));

    assert_true(srvocsp__post_refused(405, why, sizeof(why)));
    assert_true(srvocsp__post_refused(501, why, sizeof(why)));
    assert_string_equal(why, "POST answered HTTP 501");
    assert_false(srvocsp__post_refused(400, why, sizeof(why)));

    assert_true(srvocsp__answer_judgeable(200, unauthorized, sizeof(unauthorized)));
    assert_false(srvocsp__answer_judgeable(200, malformed, sizeof(malformed)));
    assert_false(srvocsp__answer_judgeable(200, html, sizeof(html) - 1));
    assert_false(srvocsp__answer_judgeable(404, unauthorized, sizeof(unauthorized)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_learn_list_forget),
        cmocka_unit_test(test_trial),
        cmocka_unit_test(test_trial_confirmed_after_another),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_answer_rules),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
