/* proto.h: small MessagePack helpers shared by the coordinator/worker protocol and the journal. */
#pragma once
#include <msgpack.h>
#include <string.h>

/* the value of `key` in a map, or NULL (not a map, or no such key) */
static inline const msgpack_object *proto_map_get(const msgpack_object *m, const char *key) {
    if (m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl && !memcmp(k->via.str.ptr, key, kl))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

/* 1 if the n bytes at buf hold one MessagePack object whose containers never claim more elements
 * than there are bytes left (every element takes at least one byte), else 0. msgpack-c allocates a
 * container's elements before it reads them, so a crafted map32 count of 2^32 - 1 would ask for
 * ~128 GB; run this before msgpack_unpack_next on anything read from a file or a message.
 * Strings, bins and exts are referenced in place (no allocation); only their lengths are checked. */
static inline int proto_msgpack_bounded(const void *buf, size_t n) {
    const unsigned char *p = buf;
    size_t   pos = 0;
    uint64_t pending = 1; /* objects still to read */
#define PROTO_NEED(k) do { if ((size_t)(k) > n - pos) return 0; } while (0)
#define PROTO_BE(k, out) do { PROTO_NEED(k); uint64_t v_ = 0; for (int i_ = 0; i_ < (k); i_++) v_ = v_ << 8 | p[pos + i_]; pos += (k); (out) = v_; } while (0)
    while (pending > 0) {
        PROTO_NEED(1);
        pending--;
        unsigned char b = p[pos++];
        uint64_t      elems = 0, skip = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) { /* fixint, nil, bool */
        } else if (b <= 0x8f) {
            elems = 2u * (b & 0x0f);
        } else if (b <= 0x9f) {
            elems = b & 0x0f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: PROTO_BE(1, skip); break;              /* bin8, str8 */
            case 0xc5: case 0xda: PROTO_BE(2, skip); break;              /* bin16, str16 */
            case 0xc6: case 0xdb: PROTO_BE(4, skip); break;              /* bin32, str32 */
            case 0xc7: PROTO_BE(1, skip); skip += 1; break;              /* ext8: type byte */
            case 0xc8: PROTO_BE(2, skip); skip += 1; break;
            case 0xc9: PROTO_BE(4, skip); skip += 1; break;
            case 0xca: case 0xce: case 0xd2: skip = 4; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xd4: skip = 2; break;                                  /* fixext 1, 2, 4, 8, 16 */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: PROTO_BE(2, elems); break;                        /* array16, array32 */
            case 0xdd: PROTO_BE(4, elems); break;
            case 0xde: PROTO_BE(2, elems); elems *= 2; break;            /* map16, map32 */
            case 0xdf: PROTO_BE(4, elems); elems *= 2; break;
            default: return 0;                                           /* 0xc1: never used */
            }
        }
        PROTO_NEED(skip);
        pos += (size_t)skip;
        if (elems > n - pos || pending + elems > n - pos) return 0;
        pending += elems;
    }
#undef PROTO_NEED
#undef PROTO_BE
    return 1;
}
