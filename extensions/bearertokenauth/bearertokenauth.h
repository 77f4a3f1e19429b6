/*
 * The bearertokenauth extension (contrib extension/bearertokenauthextension): a static token,
 * a list of tokens, or a file of tokens (one a line, re-read when it changes), checked on
 * incoming requests (`Authorization: Bearer <token>`) and added to outgoing ones. Tokens are
 * kept only as SHA-256 digests for checking, and compared in constant time, so neither the
 * content nor the length of a valid token leaks through timing.
 */
#ifndef TH_EXTENSION_BEARERTOKENAUTH_H
#define TH_EXTENSION_BEARERTOKENAUTH_H

#include <pthread.h>

#include "th/auth.h"
#include "th/component.h"

/** How often at most the token file is looked at again (on the next request after it). */
#define TH_BEARERTOKENAUTH_RECHECK_NS ((uint64_t)1000000000)
/** The largest token file read. */
#define TH_BEARERTOKENAUTH_MAX_FILE ((size_t)1 << 20)

/** extensions::bearertokenauth[/name]. */
struct th_bearertokenauth_cfg {
    const char *header;   /**< the request header; "Authorization" */
    const char *scheme;   /**< "Bearer"; "" sends and expects the bare token */
    const char *token;    /**< one token (secret) */
    th_strlist_t tokens;  /**< several tokens (secret); exclusive with token */
    const char *filename; /**< a file of tokens, one a line; takes precedence */
};

/** The config table of struct th_bearertokenauth_cfg. */
extern const struct th_cfg_field th_bearertokenauth_config[];

/**
 * The rules across keys: a token, tokens or a filename; not both token and tokens; a header
 * name made of token characters.
 * @param[out] err a static message.
 * @return 0 or TH_ECONFIG.
 */
int th_bearertokenauth_config_check(const void *cfg, const char **err);

/** The ops table registered as extension "bearertokenauth". */
extern const struct th_component_ops th_extension_bearertokenauth_ops;

/** A set of accepted tokens: digests for checking, the first token for the client side. */
struct th_bearer_tokens {
    size_t n;
    uint8_t (*digests)[TH_AUTH_DIGEST_LEN];
    char *first; /**< NUL-terminated, or NULL when n is 0 */
};

/**
 * Build a token set from the text of a token file: one token a line, spaces around it
 * dropped, empty lines skipped.
 * @param[out] out the set; free with th_bearertokenauth_tokens_free().
 * @return 0 or TH_ENOMEM.
 */
int th_bearertokenauth_tokens_parse(const char *text, size_t len, struct th_bearer_tokens **out);

/**
 * Build a token set from a list of tokens (empty ones are skipped).
 * @return 0 or TH_ENOMEM.
 */
int th_bearertokenauth_tokens_from_list(const char *const *v, size_t n,
                                        struct th_bearer_tokens **out);

/** Free a token set; NULL is allowed. */
void th_bearertokenauth_tokens_free(struct th_bearer_tokens *t);

/**
 * Check a header value against a set: `<scheme> <token>` with the scheme matched
 * case-insensitively (the bare token when @p scheme is ""), the token compared by digest with
 * every token of the set, in time independent of which one (if any) matches.
 * @return true when the value carries one of the tokens.
 */
bool th_bearertokenauth_match(const struct th_bearer_tokens *t, const char *scheme,
                              const char *value, size_t len);

/** The instance. */
struct th_bearertokenauth {
    struct th_component base;
    const struct th_bearertokenauth_cfg *cfg;
    char header[128];     /* lower case */
    char challenge[160];  /* WWW-Authenticate */
    pthread_mutex_t lock; /* guards tokens, file_digest, file_failing */
    bool lock_inited;
    struct th_bearer_tokens *tokens;
    uint8_t file_digest[TH_AUTH_DIGEST_LEN]; /* of the file text last loaded */
    bool file_failing;                       /* the last reload could not read the file */
    int running;                             /* atomic: started and not shut down */
    uint64_t next_check_ns;                  /* atomic: when to look at the file again */
};

/**
 * Look at the token file now, and take its tokens when its content changed (logged with the
 * number of tokens, never their text). Called by start and, at most once a second, by
 * requests.
 * @return 0 (loaded or unchanged), or the error reading it (logged; the previous tokens stay).
 */
int th_bearertokenauth_reload(struct th_bearertokenauth *b);

#endif
