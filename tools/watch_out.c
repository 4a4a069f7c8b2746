/*
 * srvocsp watch, what it writes for nginx beside the .ocsp file: the
 * snippet that turns stapling on or off.  Runs on watch's main thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "watch.h"

/* nginx loads ssl_stapling_file at (re)load and staples whatever it holds
 * until the next one; an empty or missing file makes the (re)load fail.
 * The only way to make it staple nothing is a configuration without the
 * file: this snippet, included in the server block, is that switch. */
/* |s| as an nginx quoted string: false when it cannot be one (a line break
 * would end the comment or directive it sits in). */
static bool nginx_quote(const char *s, char *out, size_t cap)
{
    size_t n = 0;

    if (cap < 3)
        return false;
    out[n++] = '"';
    for (; *s; s++) {
        if (*s == '\n' || *s == '\r' || n + 4 >= cap)
            return false;
        if (*s == '"' || *s == '\\')
            out[n++] = '\\';
        out[n++] = *s;
    }
    out[n++] = '"';
    out[n] = '\0';
    return true;
}

int wout_write_snippet(const wcert *c, bool on, const char *why)
{
    char text[9000], quoted[8300], *old;
    size_t old_len = 0;
    int n, err;

    if (!nginx_quote(c->ocsp_path, quoted, sizeof(quoted)) || strpbrk(c->path, "\r\n")) {
        errno = EINVAL; /* a file name nginx cannot be given */
        return -1;
    }
    if (on)
        n = snprintf(text, sizeof(text),
                     "# written by srvocsp watch: %s has a servable OCSP response\n"
                     "ssl_stapling on;\nssl_stapling_file %s;\n",
                     c->path, quoted);
    else
        n = snprintf(text, sizeof(text),
                     "# written by srvocsp watch: no servable OCSP response for %s (%s)\n"
                     "ssl_stapling off;\n",
                     c->path, why ? why : "none yet");
    if (n < 0 || (size_t)n >= sizeof(text)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    old = (char *)cli_read_file(c->snippet_path, 64 * 1024, &old_len);
    /* The comment carries the reason; only a change of directive matters. */
    if (old != NULL) {
        const char *d_old, *d_new = strstr(text, "\nssl_stapling");

        old[old_len] = '\0'; /* cli_read_file leaves room for it */
        d_old = strstr(old, "\nssl_stapling");
        if (d_old && strcmp(d_old, d_new) == 0) {
            free(old);
            return 0;
        }
    }
    free(old);
    err = srvocsp__write_file_atomic(c->snippet_path, (const unsigned char *)text, (size_t)n);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 1;
}
