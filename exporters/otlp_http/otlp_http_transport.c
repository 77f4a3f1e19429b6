/*
 * The otlp_http transport: libcurl's multi interface driven by the exporter's libuv loop.
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION → one uv_poll each) and when
 * to wake it (CURLMOPT_TIMERFUNCTION → one uv_timer); we hand events back with
 * curl_multi_socket_action and collect finished transfers with curl_multi_info_read. Each
 * request gets an easy handle from a small pool (configured once, reused), so connections
 * stay alive in the multi's cache and as many requests run in parallel as the helper sends.
 * HTTP/2 is offered by ALPN on https when force_attempt_http2; plain http is HTTP/1.1.
 *
 * Everything here runs on the loop's thread, except create and destroy.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include <curl/curl.h>

#include "exporters/otlp_http/otlp_http.h"

/* One request: an easy handle with its buffers, reused from request to request. */
struct req {
    struct req *next, *prev; /* the idle list (next only) or the active list */
    th_otlphttp_transport_t *t;
    CURL *easy;
    th_export_done_cb done;
    void *arg;
    th_buf_t json; /* the body as OTLP/JSON (encoding: json) */
    th_buf_t zbuf; /* the body compressed */
    th_buf_t resp; /* the first TH_OTLPHTTP_MAX_RESPONSE bytes of the response */
    char errbuf[CURL_ERROR_SIZE];
};

/* A socket curl asked us to watch. Freed by the poll handle's close callback. */
struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    th_otlphttp_transport_t *t;
    struct sock *next, *prev;
};

/* A header list replaced while requests that were given it are still in flight. */
struct retired {
    struct curl_slist *list;
    struct retired *next;
};

struct th_otlphttp_transport {
    const struct th_otlphttp_cfg *cfg;
    struct th_component *comp;
    char *url;                     /* the traces URL, for messages */
    char *connect_url;             /* what curl is given (server_name_override changes host) */
    struct curl_slist *headers;    /* Content-Type, Content-Encoding, user headers, auth */
    struct th_auth_client auth;    /* the authenticator's header, refreshed per request */
    struct retired *retired;       /* header lists that requests in flight still use */
    struct curl_slist *connect_to; /* server_name_override: connect to the real host */
    char *ec_curves;               /* curve_preferences in OpenSSL's names */
    char user_agent[96];
    bool json;
    bool https;
    struct th_otlphttp_compressor z;

    uv_loop_t *loop;
    uv_timer_t timer;
    CURLM *multi;
    CURLSH *share; /* cookies between easy handles */
    struct req *idle;
    struct req *active;
    struct sock *socks;
    bool started;
    bool stopping;
    struct th_otlphttp_transport_stats stats;
};

/* ---- Creation: everything that needs no I/O ------------------------------------------- */

/* Go's GOARCH names, as the Collector's User-Agent has them. */
static const char *go_arch(const char *machine)
{
    if (strcmp(machine, "x86_64") == 0) {
        return "amd64";
    }
    if (strcmp(machine, "aarch64") == 0) {
        return "arm64";
    }
    if (machine[0] == 'i' && strcmp(machine + 2, "86") == 0) {
        return "386";
    }
    return machine;
}

static bool has_header(const th_strmap_t *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->keys[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Append "Name: value" to a curl list; curl sends "Name;" as the header with an empty
 * value ("Name:" would remove it). */
static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = th_malloc(n);
    if (line == NULL) {
        return TH_ENOMEM;
    }
    if (value[0] == '\0') {
        snprintf(line, n, "%s;", name);
    } else {
        snprintf(line, n, "%s: %s", name, value);
    }
    struct curl_slist *l = curl_slist_append(*list, line);
    th_free(line);
    if (l == NULL) {
        return TH_ENOMEM;
    }
    *list = l;
    return 0;
}

/* A header name is an RFC 9110 token; a value has no line breaks (which would let a config
 * value smuggle a second header or request). */
static bool header_ok(const char *name, const char *value)
{
    if (name[0] == '\0' || strcspn(name, " \t\r\n:;()<>@,\"/[]?={}") != strlen(name)) {
        return false;
    }
    return strpbrk(value, "\r\n") == NULL;
}

static void free_retired(th_otlphttp_transport_t *t)
{
    while (t->retired) {
        struct retired *r = t->retired;
        t->retired = r->next;
        curl_slist_free_all(r->list);
        th_free(r);
    }
}

/* Put t->auth's header into a new list, replacing a header of the same name (the
 * authenticator's wins, as in the Collector's RoundTripper). The old list is freed, or kept
 * until no request that was given it is in flight. */
static int put_auth_header(th_otlphttp_transport_t *t)
{
    const char *name = t->auth.name;
    size_t nl = strlen(name);
    const th_buf_t *value = &t->auth.value;
    char *v = th_strndup(value->len ? (const char *)value->ptr : "", value->len);
    struct retired *old = t->active ? th_malloc(sizeof(*old)) : NULL;
    if (v == NULL || (t->active && old == NULL)) {
        th_free(v);
        th_free(old);
        return TH_ENOMEM;
    }
    struct curl_slist *list = NULL;
    int ret = 0;
    for (struct curl_slist *l = t->headers; ret == 0 && l != NULL; l = l->next) {
        bool same =
            strncasecmp(l->data, name, nl) == 0 && (l->data[nl] == ':' || l->data[nl] == ';');
        if (!same) {
            struct curl_slist *n = curl_slist_append(list, l->data);
            ret = n ? 0 : TH_ENOMEM;
            list = n ? n : list;
        }
    }
    if (ret == 0) {
        ret = add_header(&list, name, v);
    }
    explicit_bzero(v, value->len);
    th_free(v);
    if (ret != 0) {
        curl_slist_free_all(list);
        th_free(old);
        return ret;
    }
    if (old) {
        old->list = t->headers;
        old->next = t->retired;
        t->retired = old;
    } else {
        curl_slist_free_all(t->headers);
    }
    t->headers = list;
    return 0;
}

int th__otlphttp_transport_set_auth(th_otlphttp_transport_t *t, struct th_auth_client *auth)
{
    th_auth_client_free(&t->auth);
    t->auth = *auth;
    memset(auth, 0, sizeof(*auth));
    return th_auth_enabled(&t->auth.a) ? put_auth_header(t) : 0;
}

static int build_headers(th_otlphttp_transport_t *t, const char *host_header, const char **err)
{
    const th_strmap_t *h = &t->cfg->headers;
    static char msg[160];
    int ret = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (!header_ok(h->keys[i], h->vals[i])) {
            snprintf(msg, sizeof(msg), "headers: \"%.60s\" is not a valid header name and value",
                     h->keys[i]);
            *err = msg;
            return TH_ECONFIG;
        }
    }
    /* Ours first, each only when the user's headers do not override it. */
    if (!has_header(h, "Content-Type")) {
        ret = add_header(&t->headers, "Content-Type",
                         t->json ? "application/json" : "application/x-protobuf");
    }
    const char *enc = th__otlphttp_codec_header(t->z.codec);
    if (ret == 0 && enc != NULL && !has_header(h, "Content-Encoding")) {
        ret = add_header(&t->headers, "Content-Encoding", enc);
    }
    if (ret == 0 && host_header != NULL && !has_header(h, "Host")) {
        ret = add_header(&t->headers, "Host", host_header);
    }
    /* No "Expect: 100-continue" round trip before large bodies: OTLP servers answer at once. */
    if (ret == 0 && !has_header(h, "Expect")) {
        struct curl_slist *l = curl_slist_append(t->headers, "Expect:");
        ret = l ? 0 : TH_ENOMEM;
        t->headers = l ? l : t->headers;
    }
    for (size_t i = 0; ret == 0 && i < h->n; i++) {
        ret = add_header(&t->headers, h->keys[i], h->vals[i]);
    }
    return ret;
}

/* server_name_override: curl takes the TLS name from the URL, so the URL gets the override
 * as its host, CURLOPT_CONNECT_TO sends the connection to the real host, and the Host header
 * keeps the real one. */
static int apply_server_name(th_otlphttp_transport_t *t, char **host_header)
{
    int ret = TH_ENOMEM;
    char *host = NULL, *port = NULL, *explicit_port = NULL, *url = NULL;
    CURLU *u = curl_url();
    if (u == NULL) {
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, t->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        ret = TH_ECONFIG;
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &explicit_port, 0) != CURLUE_OK) {
        explicit_port = NULL;
    }
    char line[600];
    snprintf(line, sizeof(line), "::%s:%s", host, port);
    struct curl_slist *l = curl_slist_append(NULL, line);
    if (l == NULL) {
        goto out;
    }
    t->connect_to = l;
    snprintf(line, sizeof(line), "%s%s%s", host, explicit_port ? ":" : "",
             explicit_port ? explicit_port : "");
    *host_header = th_strdup(line);
    if (*host_header == NULL ||
        curl_url_set(u, CURLUPART_HOST, t->cfg->tls.server_name_override, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        ret = *host_header == NULL ? TH_ENOMEM : TH_ECONFIG;
        goto out;
    }
    t->connect_url = th_strdup(url);
    ret = t->connect_url ? 0 : TH_ENOMEM;
out:
    curl_free(url);
    curl_free(explicit_port);
    curl_free(port);
    curl_free(host);
    curl_url_cleanup(u);
    return ret;
}

/* curve_preferences in Go's names → OpenSSL's list for CURLOPT_SSL_EC_CURVES. */
static int build_curves(th_otlphttp_transport_t *t)
{
    const th_strlist_t *c = &t->cfg->tls.curve_preferences;
    if (c->n == 0) {
        return 0;
    }
    t->ec_curves = th_calloc(c->n, 8);
    if (t->ec_curves == NULL) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < c->n; i++) {
        const char *name = strcmp(c->v[i], "X25519") == 0 ? "X25519"
                           : strcmp(c->v[i], "P256") == 0 ? "P-256"
                           : strcmp(c->v[i], "P384") == 0 ? "P-384"
                                                          : "P-521";
        if (i > 0) {
            strcat(t->ec_curves, ":");
        }
        strcat(t->ec_curves, name);
    }
    return 0;
}

int th__otlphttp_transport_create(const struct th_otlphttp_cfg *cfg, struct th_component *c,
                                  th_otlphttp_transport_t **out, const char **err)
{
    char *host_header = NULL;
    int ret;
    /* Thread-safe in this libcurl (the "threadsafe" feature), and idempotent. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return TH_ENOMEM;
    }
    th_otlphttp_transport_t *t = th_calloc(1, sizeof(*t));
    if (t == NULL) {
        return TH_ENOMEM;
    }
    t->cfg = cfg;
    t->comp = c;
    t->json = cfg->encoding != NULL && strcmp(cfg->encoding, "json") == 0;
    int codec = th__otlphttp_codec_parse(cfg->compression);
    if (codec < 0) {
        *err = "compression: not supported";
        ret = TH_ECONFIG;
        goto fail;
    }
    t->z.codec = codec;
    t->z.level = (int)cfg->compression_params.level;
    ret = th__otlphttp_traces_url(cfg, &t->url, err);
    if (ret != 0) {
        goto fail;
    }
    t->https = strncasecmp(t->url, "https://", 8) == 0;
    if (t->https && cfg->tls.server_name_override != NULL &&
        cfg->tls.server_name_override[0] != '\0') {
        ret = apply_server_name(t, &host_header);
        if (ret == TH_ECONFIG) {
            *err = "tls::server_name_override: cannot apply it to the URL";
        }
    } else {
        t->connect_url = th_strdup(t->url);
        ret = t->connect_url ? 0 : TH_ENOMEM;
    }
    if (ret == 0) {
        ret = build_headers(t, host_header, err);
    }
    if (ret == 0) {
        ret = build_curves(t);
    }
    if (ret != 0) {
        goto fail;
    }
    struct utsname un;
    snprintf(t->user_agent, sizeof(t->user_agent), "tracehouse/%s (linux/%s)", TH_VERSION,
             uname(&un) == 0 ? go_arch(un.machine) : "unknown");
    th_free(host_header);
    *out = t;
    return 0;
fail:
    th_free(host_header);
    th__otlphttp_transport_ops.destroy(t);
    return ret;
}

/* ---- Easy handles --------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
    struct req *r = userdata;
    size_t len = size * n;
    /* Keep the start (what gets parsed) and read the rest away, so the connection stays
     * usable; a response that does not fit is judged on its first 64 KiB, as in Go. */
    size_t room = TH_OTLPHTTP_MAX_RESPONSE - TH_MIN(r->resp.len, TH_OTLPHTTP_MAX_RESPONSE);
    if (room > 0 && th_buf_append(&r->resp, p, TH_MIN(len, room)) != 0) {
        return CURL_WRITEFUNC_ERROR;
    }
    return len;
}

static long tls_version(const char *v, bool max)
{
    static const struct {
        const char *name;
        long min, max;
    } map[] = {
        {"1.0", CURL_SSLVERSION_TLSv1_0, CURL_SSLVERSION_MAX_TLSv1_0},
        {"1.1", CURL_SSLVERSION_TLSv1_1, CURL_SSLVERSION_MAX_TLSv1_1},
        {"1.2", CURL_SSLVERSION_TLSv1_2, CURL_SSLVERSION_MAX_TLSv1_2},
        {"1.3", CURL_SSLVERSION_TLSv1_3, CURL_SSLVERSION_MAX_TLSv1_3},
    };
    for (size_t i = 0; v != NULL && i < TH_ARRAY_SIZE(map); i++) {
        if (strcmp(v, map[i].name) == 0) {
            return max ? map[i].max : map[i].min;
        }
    }
    return max ? CURL_SSLVERSION_MAX_DEFAULT : CURL_SSLVERSION_TLSv1_2;
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* A PEM given as text: curl copies it. */
static CURLcode set_blob(CURL *e, CURLoption opt, const char *pem)
{
    struct curl_blob b = {.data = (void *)pem, .len = strlen(pem), .flags = CURL_BLOB_COPY};
    return curl_easy_setopt(e, opt, &b);
}

/* Every option that does not change between requests, set once per easy handle. */
static CURLcode setup_easy(th_otlphttp_transport_t *t, struct req *r)
{
    const struct th_otlphttp_cfg *cfg = t->cfg;
    const struct th_otlphttp_tls_cfg *tls = &cfg->tls;
    CURL *e = r->easy;
    CURLcode rc = CURLE_OK;
#define OPT(o, v)                                                                                  \
    do {                                                                                           \
        if (rc == CURLE_OK) {                                                                      \
            rc = curl_easy_setopt(e, (o), (v));                                                    \
        }                                                                                          \
    } while (0)
    OPT(CURLOPT_URL, t->connect_url);
    OPT(CURLOPT_PROTOCOLS_STR, "http,https");
    OPT(CURLOPT_POST, 1L);
    OPT(CURLOPT_HTTPHEADER, t->headers);
    OPT(CURLOPT_USERAGENT, t->user_agent);
    OPT(CURLOPT_NOSIGNAL, 1L);
    OPT(CURLOPT_PRIVATE, r);
    OPT(CURLOPT_WRITEFUNCTION, on_body);
    OPT(CURLOPT_WRITEDATA, r);
    OPT(CURLOPT_ERRORBUFFER, r->errbuf);
    OPT(CURLOPT_TIMEOUT_MS, (long)(cfg->timeout / 1000000));
    if (t->https && cfg->force_attempt_http2) {
        OPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        /* Wait for a connection that may multiplex rather than open one per request. */
        OPT(CURLOPT_PIPEWAIT, 1L);
    } else {
        OPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    }
    if (cfg->disable_keep_alives) {
        OPT(CURLOPT_FORBID_REUSE, 1L);
    }
    /* Go's 0 is "no idle limit"; curl's 0 would mean "never reuse". */
    long idle_s = cfg->idle_conn_timeout > 0 ? (long)(cfg->idle_conn_timeout / 1000000000) : 0;
    OPT(CURLOPT_MAXAGE_CONN, idle_s > 0 ? idle_s : 86400L * 365);
    if (set(cfg->proxy_url)) {
        OPT(CURLOPT_PROXY, cfg->proxy_url);
    }
    if (cfg->read_buffer_size > 0) {
        OPT(CURLOPT_BUFFERSIZE, (long)TH_MIN(TH_MAX(cfg->read_buffer_size, 1024), 10 << 20));
    }
    if (cfg->write_buffer_size > 0) {
        OPT(CURLOPT_UPLOAD_BUFFERSIZE,
            (long)TH_MIN(TH_MAX(cfg->write_buffer_size, 16384), 2 << 20));
    }
    if (t->connect_to != NULL) {
        OPT(CURLOPT_CONNECT_TO, t->connect_to);
    }
    if (t->share != NULL) {
        OPT(CURLOPT_SHARE, t->share);
        OPT(CURLOPT_COOKIEFILE, "");
    }
    if (t->https) {
        OPT(CURLOPT_SSLVERSION,
            tls_version(tls->min_version, false) | tls_version(tls->max_version, true));
        if (set(tls->ca_file)) {
            OPT(CURLOPT_CAINFO, tls->ca_file);
        }
        if (set(tls->ca_pem) && rc == CURLE_OK) {
            rc = set_blob(e, CURLOPT_CAINFO_BLOB, tls->ca_pem);
        }
        if ((set(tls->ca_file) || set(tls->ca_pem)) && tls->include_system_ca_certs_pool) {
            OPT(CURLOPT_CAPATH, "/etc/ssl/certs");
        }
        if (set(tls->cert_file)) {
            OPT(CURLOPT_SSLCERT, tls->cert_file);
        }
        if (set(tls->cert_pem) && rc == CURLE_OK) {
            rc = set_blob(e, CURLOPT_SSLCERT_BLOB, tls->cert_pem);
        }
        if (set(tls->key_file)) {
            OPT(CURLOPT_SSLKEY, tls->key_file);
        }
        if (set(tls->key_pem) && rc == CURLE_OK) {
            rc = set_blob(e, CURLOPT_SSLKEY_BLOB, tls->key_pem);
        }
        if (tls->insecure_skip_verify) {
            OPT(CURLOPT_SSL_VERIFYPEER, 0L);
            OPT(CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (t->ec_curves != NULL) {
            OPT(CURLOPT_SSL_EC_CURVES, t->ec_curves);
        }
    }
#undef OPT
    return rc;
}

static void req_free(struct req *r)
{
    if (r == NULL) {
        return;
    }
    if (r->easy != NULL) {
        curl_easy_cleanup(r->easy);
    }
    th_buf_free(&r->json);
    th_buf_free(&r->zbuf);
    th_buf_free(&r->resp);
    th_free(r);
}

/* An idle easy handle, or a new one. @return 0, TH_ENOMEM, TH_ECONFIG (curl refused an
 * option: a bad value that config checks cannot see, or a feature this libcurl lacks). */
static int req_get(th_otlphttp_transport_t *t, struct req **out)
{
    struct req *r = t->idle;
    if (r != NULL) {
        t->idle = r->next;
        *out = r;
        return 0;
    }
    r = th_calloc(1, sizeof(*r));
    if (r == NULL) {
        return TH_ENOMEM;
    }
    r->t = t;
    r->easy = curl_easy_init();
    if (r->easy == NULL) {
        th_free(r);
        return TH_ENOMEM;
    }
    CURLcode rc = setup_easy(t, r);
    if (rc != CURLE_OK) {
        req_free(r);
        return rc == CURLE_OUT_OF_MEMORY ? TH_ENOMEM : TH_ECONFIG;
    }
    t->stats.easy_handles++;
    *out = r;
    return 0;
}

static void req_put_idle(th_otlphttp_transport_t *t, struct req *r)
{
    r->done = NULL;
    r->arg = NULL;
    r->next = t->idle;
    r->prev = NULL;
    t->idle = r;
}

static void active_link(th_otlphttp_transport_t *t, struct req *r)
{
    r->prev = NULL;
    r->next = t->active;
    if (t->active != NULL) {
        t->active->prev = r;
    }
    t->active = r;
}

static void active_unlink(th_otlphttp_transport_t *t, struct req *r)
{
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        t->active = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    r->next = r->prev = NULL;
}

/* ---- The loop glue -------------------------------------------------------------------- */

/* Leave the request's slot and tell the helper; nothing touches @p r after done. */
static void complete(th_otlphttp_transport_t *t, struct req *r, const struct th_export_result *res)
{
    th_export_done_cb done = r->done;
    void *arg = r->arg;
    if (t->multi != NULL) {
        curl_multi_remove_handle(t->multi, r->easy);
    }
    active_unlink(t, r);
    req_put_idle(t, r);
    if (t->active == NULL) {
        free_retired(t);
    }
    t->stats.completed++;
    t->stats.in_flight--;
    done(arg, res);
}

/* Turn finished transfers into results. done may call send (the helper starting the next
 * request), which only adds a handle; the loop keeps reading messages after it. */
static void check_done(th_otlphttp_transport_t *t)
{
    CURLMsg *m;
    int left;
    while (t->multi != NULL && (m = curl_multi_info_read(t->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        struct req *r = NULL;
        CURL *e = m->easy_handle;
        CURLcode code = m->data.result;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
        long status = 0;
        long conns = 0;
        char *ct = NULL;
        struct curl_header *h = NULL;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
        t->stats.connections += (uint64_t)conns;
        const char *retry_after = NULL;
        if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK) {
            retry_after = h->value;
        }
        struct th_otlphttp_response resp = {
            .url = t->url,
            .status = code == CURLE_OK ? status : 0,
            .curl_code = code,
            .curl_error = r->errbuf,
            .content_type = ct,
            .retry_after = retry_after,
            .body = r->resp.ptr,
            .body_len = r->resp.len,
            .now = time(NULL),
        };
        struct th_export_result res;
        th__otlphttp_classify(&resp, &res);
        complete(t, r, &res);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = p->data;
    th_otlphttp_transport_t *t = s->t;
    int flags = 0;
    int running;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
        flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    }
    /* s may be closed inside (curl dropping the socket): read nothing from it after. */
    curl_multi_socket_action(t->multi, s->fd, flags, &running);
    check_done(t);
}

static void on_sock_closed(uv_handle_t *h)
{
    th_free(h->data);
}

static void sock_close(th_otlphttp_transport_t *t, struct sock *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        t->socks = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* CURLMOPT_SOCKETFUNCTION: watch @p fd for what curl wants, or stop watching it. */
static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    th_otlphttp_transport_t *t = userp;
    struct sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            sock_close(t, s);
        }
        return 0;
    }
    if (s == NULL) {
        s = th_calloc(1, sizeof(*s));
        if (s == NULL) {
            return -1;
        }
        if (uv_poll_init_socket(t->loop, &s->poll, fd) != 0) {
            th_free(s);
            return -1;
        }
        s->fd = fd;
        s->t = t;
        s->poll.data = s;
        s->next = t->socks;
        if (t->socks != NULL) {
            t->socks->prev = s;
        }
        t->socks = s;
        curl_multi_assign(t->multi, fd, s);
    }
    int events = 0;
    events |= (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ? UV_READABLE : 0;
    events |= (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ? UV_WRITABLE : 0;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

static void on_timer(uv_timer_t *h)
{
    th_otlphttp_transport_t *t = h->data;
    int running;
    curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(t);
}

/* CURLMOPT_TIMERFUNCTION: one timer, re-armed to whatever curl asks (-1: none). A 0 ms
 * timeout still goes through the loop, never straight back into curl. */
static int on_curl_timer(CURLM *m, long ms, void *userp)
{
    th_otlphttp_transport_t *t = userp;
    if (ms < 0) {
        uv_timer_stop(&t->timer);
        return 0;
    }
    return uv_timer_start(&t->timer, on_timer, (uint64_t)ms, 0) == 0 ? 0 : -1;
}

/* ---- The transport ops ---------------------------------------------------------------- */

static int t_start(void *self, uv_loop_t *loop)
{
    th_otlphttp_transport_t *t = self;
    const struct th_otlphttp_cfg *cfg = t->cfg;
    struct req *r = NULL;
    int ret;
    if (t->started) {
        return TH_EINVAL;
    }
    t->loop = loop;
    t->multi = curl_multi_init();
    if (t->multi == NULL) {
        return TH_ENOMEM;
    }
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
    if (cfg->max_conns_per_host > 0) {
        curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->max_conns_per_host);
    }
    if (cfg->max_idle_conns > 0) {
        curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_idle_conns);
    }
    if (cfg->cookies_enabled) {
        t->share = curl_share_init();
        if (t->share == NULL ||
            curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE) != CURLSHE_OK) {
            ret = TH_ENOMEM;
            goto fail;
        }
    }
    /* One easy handle now: it proves curl takes every option before any data is at stake. */
    ret = req_get(t, &r);
    if (ret != 0) {
        goto fail;
    }
    req_put_idle(t, r);
    if (uv_timer_init(loop, &t->timer) != 0) {
        ret = TH_EIO;
        goto fail;
    }
    t->timer.data = t;
    t->started = true;
    return 0;
fail:
    while ((r = t->idle) != NULL) {
        t->idle = r->next;
        req_free(r);
    }
    curl_share_cleanup(t->share);
    t->share = NULL;
    curl_multi_cleanup(t->multi);
    t->multi = NULL;
    return ret;
}

static int t_send(void *self, const uint8_t *pb, size_t len, th_export_done_cb done, void *arg)
{
    th_otlphttp_transport_t *t = self;
    struct req *r = NULL;
    if (!t->started || t->stopping) {
        return TH_ESHUTDOWN;
    }
    int ret = req_get(t, &r);
    if (ret != 0) {
        return ret;
    }
    const uint8_t *body = pb;
    size_t n = len;
    if (t->json) {
        ret = th__otlphttp_pb_to_json(pb, len, &r->json);
        if (ret != 0) {
            /* Bytes that are not a request cannot become one by retrying. */
            ret = ret == TH_EDECODE ? TH_EPERM : ret;
            goto fail;
        }
        body = r->json.ptr;
        n = r->json.len;
    }
    if (t->z.codec != TH_OTLPHTTP_NONE) {
        ret = th__otlphttp_compress(&t->z, body, n, &r->zbuf);
        if (ret != 0) {
            goto fail;
        }
        body = r->zbuf.ptr;
        n = r->zbuf.len;
    }
    /* A rotated credential (a token file) goes out from this request on; when taking it
     * fails, the last one is sent and the server's answer says whether it still holds. */
    if (th_auth_client_refresh(&t->auth) == 1 && put_auth_header(t) != 0) {
        ret = TH_ENOMEM;
        goto fail;
    }
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, t->headers);
    r->resp.len = 0;
    r->errbuf[0] = '\0';
    r->done = done;
    r->arg = arg;
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, n > 0 ? (const char *)body : "");
    CURLMcode mc = curl_multi_add_handle(t->multi, r->easy);
    if (mc != CURLM_OK) {
        ret = mc == CURLM_OUT_OF_MEMORY ? TH_ENOMEM : TH_EIO;
        goto fail;
    }
    active_link(t, r);
    t->stats.requests++;
    t->stats.in_flight++;
    t->stats.max_in_flight = TH_MAX(t->stats.max_in_flight, t->stats.in_flight);
    return 0;
fail:
    req_put_idle(t, r);
    return ret;
}

static void t_stop(void *self)
{
    th_otlphttp_transport_t *t = self;
    if (!t->started || t->stopping) {
        return;
    }
    t->stopping = true;
    struct th_export_result res = {.err = TH_ESHUTDOWN, .retry_after_ns = -1};
    snprintf(res.message, sizeof(res.message), "POST %s cancelled: the exporter is stopping",
             t->url);
    struct req *r;
    while ((r = t->active) != NULL) {
        complete(t, r, &res);
    }
    /* Closing the multi closes the cached connections; curl reports each socket removed,
     * which closes its poll handle. Whatever is left is closed here. */
    curl_multi_cleanup(t->multi);
    t->multi = NULL;
    while (t->socks != NULL) {
        sock_close(t, t->socks);
    }
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, NULL);
}

static void t_destroy(void *self)
{
    th_otlphttp_transport_t *t = self;
    if (t == NULL) {
        return;
    }
    /* Never started, or stopped: no handle of ours is open on any loop. */
    th_assert(!t->started || t->stopping);
    struct req *r;
    while ((r = t->idle) != NULL) {
        t->idle = r->next;
        req_free(r);
    }
    curl_share_cleanup(t->share);
    free_retired(t);
    curl_slist_free_all(t->headers);
    th_auth_client_free(&t->auth);
    curl_slist_free_all(t->connect_to);
    th__otlphttp_compressor_deinit(&t->z);
    th_free(t->ec_curves);
    th_free(t->connect_url);
    th_free(t->url);
    th_free(t);
}

const struct th_export_transport_ops th__otlphttp_transport_ops = {
    .start = t_start,
    .send = t_send,
    .stop = t_stop,
    .destroy = t_destroy,
};

void th__otlphttp_transport_stats(const th_otlphttp_transport_t *t,
                                  struct th_otlphttp_transport_stats *out)
{
    *out = t->stats;
}

const char *th__otlphttp_transport_url(const th_otlphttp_transport_t *t)
{
    return t->url;
}
