/**
 * How many cached file URLs (files kept without a sha256) a worker may list in one hello or
 * cache update: the worker reports at most this many and the studio refuses a longer list.
 */
export const MAX_CACHED_URLS = 1024;
