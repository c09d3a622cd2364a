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
