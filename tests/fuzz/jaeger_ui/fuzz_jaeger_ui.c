/*
 * libFuzzer target for the web UI's request handling and page injection (ui-api/jaeger/
 * jaeger_ui.c). The input is split at newlines into method, path (with query), If-None-Match
 * and Accept-Encoding, and served by a built-in UI under the base path "/b"; the whole input
 * also goes through path resolution and both index.html injections (as a page). Nothing may
 * crash, read out of bounds, or answer with a body that is not the UI's own memory.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "th/otlp.h"
#include "ui-api/jaeger/jaeger_ui.h"

static th_jaeger_ui_t *ui;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ui) {
        struct th_jaeger_ui_cfg cfg = {.base_path = "/b"};
        char err[256];
        if (th_jaeger_ui_create(&cfg, &ui, err, sizeof(err)) != 0) {
            abort();
        }
    }
    const char *p = (const char *)data;
    const char *end = p + size;
    const char *part[4] = {"GET", "/b/", NULL, NULL};
    size_t len[4] = {3, 3, 0, 0};
    for (int i = 0; i < 4 && p <= end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        part[i] = p;
        len[i] = (size_t)(e - p);
        p = e + 1;
        if (!nl) {
            break;
        }
    }
    const char *q = memchr(part[1], '?', len[1]);
    struct th_jaeger_ui_request r = {
        .method = part[0],
        .method_len = len[0],
        .path = part[1],
        .path_len = q ? (size_t)(q - part[1]) : len[1],
        .query = q ? q + 1 : NULL,
        .query_len = q ? len[1] - (size_t)(q - part[1]) - 1 : 0,
        .if_none_match = part[2],
        .if_none_match_len = len[2],
        .accept_encoding = part[3],
        .accept_encoding_len = len[3],
    };
    struct th_jaeger_ui_response resp;
    if (th_jaeger_ui_serve(ui, &r, &resp) == 0) {
        /* touch the whole body: it must be readable memory of the UI */
        volatile uint8_t sum = 0;
        for (size_t i = 0; resp.body && i < resp.len; i++) {
            sum ^= resp.body[i];
        }
        (void)sum;
    }
    char name[256];
    th_jaeger_ui_resolve((const char *)data, size, name, sizeof(name));
    th_buf_t out;
    if (th_jaeger_ui_inject_jaeger(data, size, "function UIConfig() {}", "{\"a\":1}", "/b", &out) ==
        0) {
        th_buf_free(&out);
    }
    if (th_jaeger_ui_inject_jaeger(data, size, NULL, NULL, "", &out) == 0) {
        th_buf_free(&out);
    }
    if (th_jaeger_ui_inject_builtin(data, size, "/b'\"<", &out) == 0) {
        th_buf_free(&out);
    }
    return 0;
}
