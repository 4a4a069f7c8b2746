/*
 * Update callbacks.  The engine thread collects events while it holds the
 * lock and runs them once it has let go of it, in the order they happened.
 * A queued event holds its handle (srvocsp__handle_unhold drops it),
 * never through the public API (which would restart a forked engine from
 * inside its own thread).
 */
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct srvocsp__event {
    srvocsp__event *next;
    srvocsp_handle *h;           /* holds a reference */
    srvocsp_event ev;            /* ev.response holds a reference */
    char reason[SRVOCSP__REASON_LEN];
    char url[SRVOCSP__MAX_URL_LEN];
};

void srvocsp__events_queue(srvocsp__entry *en, srvocsp_event_type type, srvocsp_response *resp,
                           srvocsp_error err, const char *reason, const char *url, int store_errno,
                           srvocsp__event **list)
{
    srvocsp_handle *h;

    for (h = en->handles; h != NULL; h = h->next) {
        srvocsp__event *pe;

        if (h->cb == NULL)
            continue;
        pe = srvocsp__calloc(1, sizeof(*pe));
        if (pe == NULL)
            continue; /* a lost notification, never a lost response */
        atomic_fetch_add(&h->holds, 1);
        pe->h = h;
        pe->ev.type = type;
        pe->ev.response = srvocsp_response_up_ref(resp);
        pe->ev.error = err;
        snprintf(pe->reason, sizeof(pe->reason), "%s", reason ? reason : "");
        snprintf(pe->url, sizeof(pe->url), "%s", url ? url : "");
        pe->ev.reason = pe->reason;
        pe->ev.url = url ? pe->url : NULL;
        pe->ev.next_attempt = en->next_at;
        pe->ev.store_errno = store_errno;
        pe->next = *list;
        *list = pe;
    }
}

/* Events are queued by prepending; they run in the order they happened
 * (an UPDATED before the STORE_FAILED that refers to it). */
void srvocsp__events_run(srvocsp__event *list)
{
    srvocsp__event *rev = NULL;

    while (list != NULL) {
        srvocsp__event *pe = list;

        list = pe->next;
        pe->next = rev;
        rev = pe;
    }
    list = rev;
    while (list != NULL) {
        srvocsp__event *pe = list;

        list = pe->next;
        pe->h->cb(pe->h, &pe->ev, pe->h->cb_arg);
        srvocsp_response_free(pe->ev.response);
        srvocsp__handle_unhold(pe->h);
        free(pe);
    }
}

void srvocsp__entry_add_note_locked(srvocsp__entry *en, srvocsp_error err, const char *note)
{
    srvocsp_engine *e = en->eng;

    srvocsp__entry_set_text(en, SRVOCSP__TEXT_NOTE, note);
    en->note_err = err;
    en->last_err = err;
    srvocsp__entry_set_text(en, SRVOCSP__TEXT_LAST, note);
    if (en->note_pending)
        return;
    en->note_pending = true;
    en->refs++;
    en->note_next = e->notes;
    e->notes = en;
    srvocsp__engine_wake_locked(e);
}

void srvocsp__events_from_notes_locked(srvocsp_engine *e, srvocsp__event **list)
{
    while (e->notes != NULL) {
        srvocsp__entry *en = e->notes;

        e->notes = en->note_next;
        en->note_pending = false;
        if (!en->dead)
            srvocsp__events_queue(en, SRVOCSP_EVENT_FAILED, NULL, en->note_err,
                                  srvocsp__entry_text(en, SRVOCSP__TEXT_NOTE), NULL, 0, list);
        srvocsp__entry_unref_locked(en);
    }
}

void srvocsp__notes_drop_locked(srvocsp_engine *e)
{
    while (e->notes != NULL) {
        srvocsp__entry *en = e->notes;

        e->notes = en->note_next;
        en->note_pending = false;
        if (en->dead)
            srvocsp__entry_unref_locked(en);
        else
            en->refs--; /* freed with its bucket by the teardown */
    }
}
