/*
 * Internal: attribute lists and values as the processors that edit them need them (the
 * attributes and redaction processors). The semantics follow the Collector's pdata Map and
 * Value (pcommon), so that the processors built on them behave as the Collector's do:
 * lookups return the first entry with a key, AsString() renders values the way pcommon does,
 * and typed config values are read from YAML as the Collector's confmap types them.
 *
 * Memory: every struct and string these functions create is allocated in the arena they are
 * given (the batch's arena for span data, an instance's arena for config values), never with
 * malloc per attribute. Lists are edited in place: a removal compacts the pointer array, an
 * insertion allocates a bigger pointer array in the arena.
 */
#ifndef TH_PROCESSORS_ATTRIBUTES_VALUE_H
#define TH_PROCESSORS_ATTRIBUTES_VALUE_H

#include <stddef.h>
#include <sys/types.h>

#include "th/batch.h"
#include "th/config.h"

typedef Opentelemetry__Proto__Common__V1__ArrayValue th__attributes_array_t;
typedef Opentelemetry__Proto__Common__V1__KeyValueList th__attributes_kvlist_t;

#define TH__ANY_EMPTY  OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET
#define TH__ANY_STRING OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE
#define TH__ANY_BOOL   OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE
#define TH__ANY_INT    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE
#define TH__ANY_DOUBLE OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE
#define TH__ANY_ARRAY  OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE
#define TH__ANY_KVLIST OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE
#define TH__ANY_BYTES  OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE

/**
 * An attribute list as it sits in its message (span, resource, scope, event, link): the
 * pointer array and the count, both edited in place.
 */
struct th__attributes_list {
    th_otlp_kv_t ***kvs;
    size_t *n;
};

/**
 * Find the first attribute named @p key.
 * @return its index, or -1.
 */
ssize_t th__attributes_find(th_otlp_kv_t *const *kvs, size_t n, const char *key);

/** @return the value of the first attribute named @p key, or NULL (also for a NULL value). */
th_otlp_any_t *th__attributes_get(th_otlp_kv_t *const *kvs, size_t n, const char *key);

/**
 * Remove the attribute at @p i, keeping the order of the others (the array is compacted).
 * @param[in,out] n the count, decremented.
 */
void th__attributes_remove_at(th_otlp_kv_t **kvs, size_t *n, size_t i);

/**
 * Remove the first attribute named @p key.
 * @return true when one was removed.
 */
bool th__attributes_remove(struct th__attributes_list l, const char *key);

/**
 * Append a new attribute (the key is copied into @p a; the value is used as is, so it must
 * live in @p a or longer). The pointer array is replaced by a bigger one in @p a.
 * @return 0 or TH_ENOMEM (the list is unchanged).
 */
int th__attributes_append(th_arena_t *a, struct th__attributes_list l, const char *key,
                          size_t keylen, th_otlp_any_t *value);

/**
 * The value to overwrite for @p key: the existing one (a NULL value is replaced by a fresh
 * empty one), or a new empty value appended under @p key (pcommon's PutEmpty).
 * @param[out] out the value, allocated in @p a when new.
 * @return 0 or TH_ENOMEM.
 */
int th__attributes_put_empty(th_arena_t *a, struct th__attributes_list l, const char *key,
                             th_otlp_any_t **out);

/** Set @p v to a string without copying (@p s must live as long as the value). */
void th__attributes_value_set_str(th_otlp_any_t *v, char *s);

/**
 * Set @p v to a copy of @p len bytes of @p s, made in @p a.
 * @return 0 or TH_ENOMEM (@p v is unchanged).
 */
int th__attributes_value_set_strn(th_arena_t *a, th_otlp_any_t *v, const char *s, size_t len);

/** Set @p v to an int. */
void th__attributes_value_set_int(th_otlp_any_t *v, int64_t i);

/** Set @p v to a double. */
void th__attributes_value_set_double(th_otlp_any_t *v, double d);

/**
 * Deep-copy @p src into @p dst: strings, bytes, arrays and maps are copied into @p a, so the
 * copy shares nothing with the source (pcommon's CopyTo).
 * @return 0 or TH_ENOMEM (@p dst may then hold a partial copy, in @p a).
 */
int th__attributes_value_copy(th_arena_t *a, th_otlp_any_t *dst, const th_otlp_any_t *src);

/** @return a deep copy of @p src allocated in @p a, or NULL when memory is short. */
th_otlp_any_t *th__attributes_value_dup(th_arena_t *a, const th_otlp_any_t *src);

/**
 * Deep equality by type and content (ints and doubles of equal numeric value differ, as in
 * pcommon). NULL equals an empty value.
 */
bool th__attributes_value_equal(const th_otlp_any_t *x, const th_otlp_any_t *y);

/**
 * Render a value as pcommon's Value.AsString() does: strings as they are, bools as
 * "true"/"false", ints in decimal, doubles as ES6 numbers ("1.5", "1e+21", "1e-7"), bytes as
 * padded standard base64, arrays and maps as JSON (map keys sorted, as Go's encoding/json
 * writes them), empty as "".
 * @param[out] out the text; a string value is returned as is (not copied), anything else is
 *             made in @p a. NUL-terminated.
 * @param[out] len its length.
 * @return 0 or TH_ENOMEM.
 */
int th__attributes_value_as_string(th_arena_t *a, const th_otlp_any_t *v, const char **out,
                                   size_t *len);

/**
 * Format a double as Go's strconv.FormatFloat(d, 'f', -1, 64): the shortest digits that read
 * back to @p d, without an exponent ("0.000001", "1e21" as "1000000000000000000000").
 * @param[out] buf room for 400 bytes.
 * @return the length written (NUL-terminated).
 */
size_t th__attributes_fmt_double_plain(double d, char *buf, size_t cap);

/**
 * Type a YAML node as the Collector's confmap and pcommon.Value.FromRaw do: a plain scalar is
 * an int (decimal, 0x, 0o, 0b, leading-0 octal, with _ separators), a double, a bool
 * (true/false in any of the three YAML spellings) or a string; a quoted scalar is a string;
 * a sequence is an array and a map a key/value list, recursively.
 * @param[in] n the node; a NULL node (or NULL pointer) gives NULL (no value).
 * @param[out] out the value allocated in @p a, or NULL for a null node.
 * @return 0 or TH_ENOMEM.
 */
int th__attributes_value_from_node(th_arena_t *a, const th_node_t *n, th_otlp_any_t **out);

/** @return the pcommon type name of a value ("Str", "Int", "Double", "Bool", "Map", "Slice",
 *  "Bytes", "Empty"), for messages. */
const char *th__attributes_type_name(const th_otlp_any_t *v);

#endif
