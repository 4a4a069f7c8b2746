/* The fleet's shared store: which kind of store a URL names.  The engine
 * asks for "the store at this URL" and never names a backend; Redis
 * (redis://, unix:// and redis-sentinel://) is the only kind today, and its constructor says
 * which scheme it does not know. */
#include "store/store.h"

srvocsp__store *srvocsp__store_open_shared(const char *url, const char *prefix)
{
    return srvocsp__store_redis_new(url, prefix);
}
