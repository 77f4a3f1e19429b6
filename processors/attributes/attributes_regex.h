/*
 * Internal: regular expressions for the attributes and redaction processors, on PCRE2 with
 * its JIT, set up to behave like the Go regexp package the Collector's configs are written
 * for: UTF-8 subjects (invalid bytes never make a match fail), `$` at the very end only
 * unless (?m), ASCII \d \w \s \b, leftmost-first alternation, unanchored search. Patterns
 * are compiled once, when an instance is created.
 *
 * PCRE2 backtracks where Go's engine does not, so a hostile attribute value could make a
 * pattern run for a long time: every match runs under a match limit, and hitting it is
 * reported (TH_E2BIG) so the caller can fail closed.
 */
#ifndef TH_PROCESSORS_ATTRIBUTES_REGEX_H
#define TH_PROCESSORS_ATTRIBUTES_REGEX_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "th/arena.h"
#include "th/common.h"

/** The most steps one match may take before it is abandoned with TH_E2BIG. */
#define TH__REGEX_MATCH_LIMIT 1000000u

/**
 * Compile @p pattern (NUL-terminated) with the Go-compatible options and JIT-compile it when
 * the platform has a JIT.
 * @param[out] out the compiled pattern; free with pcre2_code_free().
 * @param[out] err on failure: `invalid regular expression "(": missing closing parenthesis at
 *             offset 1`.
 * @return 0, TH_ECONFIG (the pattern does not compile), TH_ENOMEM.
 */
int th__attributes_regex_compile(const char *pattern, pcre2_code **out, char *err, size_t errlen);

/** @return the number of capture groups of @p re. */
uint32_t th__attributes_regex_groups(const pcre2_code *re);

/**
 * Matching state: match data with room for @p groups capture groups, a match context with
 * the limits, and a JIT stack.
 *
 * PCRE2 match data must never be shared by two threads at once. Each processor instance owns
 * one matcher, and its consume runs on its pipeline's loop thread only, so no lock is needed;
 * a component that ever consumes from several threads needs one matcher per thread.
 */
struct th__attributes_matcher {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
};

/**
 * Set up a matcher for patterns with at most @p groups capture groups.
 * @return 0 or TH_ENOMEM (then deinit is still safe).
 */
int th__attributes_matcher_init(struct th__attributes_matcher *m, uint32_t groups);

/** Free a matcher's state; safe on a zeroed or half-initialised matcher. */
void th__attributes_matcher_deinit(struct th__attributes_matcher *m);

/**
 * Search @p s (@p len bytes) for the first match starting at or after @p start.
 * @return 1 (found; th__attributes_matcher_ovector() has the offsets), 0 (no match),
 *         TH_E2BIG (the match limit was reached), TH_EINVAL (another matching error).
 */
int th__attributes_regex_search(struct th__attributes_matcher *m, const pcre2_code *re,
                                const char *s, size_t len, size_t start);

/** @return the offsets of the last successful search: [2*i] start and [2*i+1] end of group i
 *  (group 0 is the whole match); PCRE2_UNSET for a group that did not take part. */
static inline const PCRE2_SIZE *th__attributes_matcher_ovector(struct th__attributes_matcher *m)
{
    return pcre2_get_ovector_pointer(m->md);
}

/**
 * Make the text that replaces one match.
 * @param[in] ctx the caller's context.
 * @param[in] match,mlen the matched text.
 * @param[out] out room for TH__REGEX_REPL_MAX bytes.
 * @return the length written.
 */
typedef size_t (*th__attributes_repl_fn)(void *ctx, const char *match, size_t mlen, char *out);

/** The longest replacement a th__attributes_repl_fn may write (a SHA-512 in hex, and more). */
#define TH__REGEX_REPL_MAX 160

/**
 * Replace every match of @p re in @p s as Go's Regexp.ReplaceAllStringFunc does: matches are
 * found left to right, an empty match right after a previous match is not replaced, and the
 * search always advances by at least one character (a whole UTF-8 sequence).
 * @param[in] max_out the longest result allowed (0: no limit). A pattern that matches the
 *            empty string inserts a replacement between every two characters, and patterns
 *            applied one after the other multiply that; the limit stops the growth.
 * @param[out] out the new text in @p a (NUL-terminated), or @p s itself when nothing matched.
 * @param[out] outlen its length.
 * @param[out] replaced set to whether anything was replaced.
 * @return 0, TH_ENOMEM, TH_E2BIG (the match limit, or the result would exceed @p max_out) or
 *         TH_EINVAL (another matching error); on an error *out is not set.
 */
int th__attributes_regex_replace_all(struct th__attributes_matcher *m, const pcre2_code *re,
                                     th_arena_t *a, const char *s, size_t len,
                                     th__attributes_repl_fn repl, void *ctx, size_t max_out,
                                     const char **out, size_t *outlen, bool *replaced);

#endif
