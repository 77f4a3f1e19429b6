/*
 * Base64 (RFC 4648): one encoder and one decoder for every module that needs them, so the
 * alphabet handling and the padding rules live in one place.
 */
#include "th/base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t th_base64_encoded_len(size_t len, bool pad)
{
    if (pad) {
        return (len + 2) / 3 * 4;
    }
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

size_t th_base64_encode(const uint8_t *in, size_t len, char *out, bool pad)
{
    size_t n = 0;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[n++] = alphabet[v >> 18 & 63];
        out[n++] = alphabet[v >> 12 & 63];
        out[n++] = alphabet[v >> 6 & 63];
        out[n++] = alphabet[v & 63];
    }
    if (i < len) {
        /* One or two bytes left: two or three characters, then the padding. */
        bool two = i + 1 < len;
        uint32_t v = (uint32_t)in[i] << 16 | (two ? (uint32_t)in[i + 1] << 8 : 0);
        out[n++] = alphabet[v >> 18 & 63];
        out[n++] = alphabet[v >> 12 & 63];
        if (two) {
            out[n++] = alphabet[v >> 6 & 63];
        }
        if (pad) {
            if (!two) {
                out[n++] = '=';
            }
            out[n++] = '=';
        }
    }
    return n;
}

/* Each character's value plus one, so 0 means "not base64"; both alphabets. */
static const uint8_t values[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
    ['-'] = 63, ['_'] = 64,
};

int th_base64_value(int c)
{
    if (c < 0 || c > 255) {
        return -1;
    }
    return values[c] - 1;
}

int th_base64_decode(const char *s, size_t len, uint8_t *out, size_t *out_len)
{
    while (len > 0 && s[len - 1] == '=') {
        len--;
    }
    *out_len = 0;
    if (len % 4 == 1) {
        return TH_EINVAL;
    }
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = th_base64_value((unsigned char)s[i]);
        if (v < 0) {
            return TH_EINVAL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    *out_len = n;
    return 0;
}
