/*
 * Persistent MQTT sessions as one JSON document (jansson) per client id, written
 * temp + fsync + rename under <data_dir>/__mqtt/.
 */
#include "adapters/mqtt/mqtt_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "adapters/mqtt/mqtt_sub.h"
#include "gateway/logging.h"

struct mqtt_store {
    char *dir;
};

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (tmp[i] == '/') {
            tmp[i] = '\0';
            if (mkdir(tmp, 0750) != 0 && errno != EEXIST) {
                return -errno;
            }
            tmp[i] = '/';
        }
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

struct mqtt_store *mqtt_store_open(const char *data_dir, char **err)
{
    struct mqtt_store *st = calloc(1, sizeof(*st));
    int rc;
    if (st == NULL || asprintf(&st->dir, "%s/__mqtt", data_dir) < 0) {
        free(st);
        *err = strdup("out of memory");
        return NULL;
    }
    rc = mkdir_p(st->dir);
    if (rc != 0) {
        if (asprintf(err, "cannot create %s: %s", st->dir, strerror(-rc)) < 0) {
            *err = NULL;
        }
        free(st->dir);
        free(st);
        return NULL;
    }
    return st;
}

void mqtt_store_free(struct mqtt_store **pst)
{
    if (pst == NULL || *pst == NULL) {
        return;
    }
    free((*pst)->dir);
    free(*pst);
    *pst = NULL;
}

/* <dir>/<hex(client_id)>.json */
static int file_name(const struct mqtt_store *st, const char *cid, char *out, size_t outsz)
{
    size_t n = strlen(st->dir);
    size_t cl = strlen(cid);
    if (n + 1 + cl * 2 + 6 >= outsz) {
        return -ENAMETOOLONG;
    }
    memcpy(out, st->dir, n);
    out[n++] = '/';
    for (size_t i = 0; i < cl; i++) {
        static const char hx[] = "0123456789abcdef";
        out[n++] = hx[(unsigned char)cid[i] >> 4];
        out[n++] = hx[(unsigned char)cid[i] & 15];
    }
    memcpy(out + n, ".json", 6);
    return 0;
}

static void pos_cb(void *arg, const char *topic, int32_t partition, int64_t next)
{
    json_array_append_new(arg, json_pack("[sIi]", topic, (json_int_t)next, (int)partition));
}

static json_t *session_json(struct mqtt_session *s)
{
    json_t *subs = json_array(), *pos = json_array(), *out = json_array(), *q2 = json_array();
    for (uint32_t i = 0; i < s->n_subs; i++) {
        const struct mqtt_sub_entry *e = &s->subs[i];
        json_array_append_new(subs, json_pack("{s:s,s:s?,s:i,s:b,s:b,s:i,s:I}", "f", e->filter,
                                              "g", e->share_group, "q", e->qos,
                                              "nl", e->no_local, "rap", e->rap,
                                              "rh", e->retain_handling,
                                              "id", (json_int_t)e->sub_id));
    }
    mqtt_subs_positions(s, pos_cb, pos);
    for (uint16_t i = 0; i < s->n_out; i++) {
        const struct mqtt_out *o = &s->out[i];
        if (o->reader == NULL && o->state != MQTT_OUT_WAIT_COMP) {
            continue;   /* a retained delivery: not re-readable, not kept */
        }
        json_array_append_new(out, json_pack("[s?iIiii]",
                                             o->reader ? mqtt_reader_topic(o->reader) : NULL,
                                             (int)o->partition, (json_int_t)o->offset,
                                             (int)o->packet_id, (int)o->qos, (int)o->state));
    }
    for (uint16_t i = 0; i < s->n_q2; i++) {
        json_array_append_new(q2, json_integer(s->q2[i]));
    }
    return json_pack("{s:s,s:i,s:I,s:o,s:o,s:o,s:o}", "client_id", s->client_id,
                     "version", (int)s->version, "expiry", (json_int_t)s->session_expiry,
                     "subs", subs, "pos", pos, "out", out, "q2", q2);
}

int mqtt_store_save(struct mqtt_store *st, struct mqtt_session *s)
{
    char path[4096], tmp[4200];
    json_t *doc;
    char *text;
    int fd, rc = 0;
    size_t len, off = 0;

    if (s->client_id == NULL || file_name(st, s->client_id, path, sizeof(path)) != 0) {
        return -ENAMETOOLONG;
    }
    doc = session_json(s);
    text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        return -ENOMEM;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    len = strlen(text);
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fdatasync(fd) != 0) {
        rc = -errno;
    }
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        unlink(tmp);
    } else {
        s->in_store = true;
        s->dirty = false;
    }
out:
    if (rc != 0) {
        sl_warn("[mqtt:store] cannot save session %s: %s", s->client_id, strerror(-rc));
    }
    free(text);
    return rc;
}

void mqtt_store_remove(struct mqtt_store *st, const char *client_id)
{
    char path[4096];
    if (client_id != NULL && file_name(st, client_id, path, sizeof(path)) == 0) {
        unlink(path);
    }
}

static struct mqtt_session *load_one(struct mqtt_broker *b, json_t *doc)
{
    const char *cid = NULL;
    int version = 0;
    json_int_t expiry = 0;
    json_t *subs = NULL, *pos = NULL, *out = NULL, *q2 = NULL, *v;
    struct mqtt_session *s;
    size_t i;

    if (json_unpack(doc, "{s:s,s:i,s:I,s:o,s:o,s:o,s?o}", "client_id", &cid, "version",
                    &version, "expiry", &expiry, "subs", &subs, "pos", &pos, "out", &out,
                    "q2", &q2) != 0 ||
        !json_is_array(subs) || !json_is_array(pos) || !json_is_array(out)) {
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->client_id = strdup(cid)) == NULL) {
        free(s);
        return NULL;
    }
    s->b = b;
    s->version = (uint8_t)version;
    s->session_expiry = (uint32_t)expiry;
    s->state = MQTT_S_OFFLINE;
    s->in_store = true;
    s->send_quota_max = b->lim.max_inflight;
    mqtt_session_take_limits(s);   /* replaced at its next CONNECT */
    s->expire_at_ms = s->session_expiry == 0xFFFFFFFFu
                          ? 0 : mqtt_now_ms() + (int64_t)s->session_expiry * 1000;
    s->next = b->all;
    if (b->all != NULL) {
        b->all->prev = s;
    }
    b->all = s;
    mqtt_broker_index(b, s);
    json_array_foreach(pos, i, v) {
        const char *topic;
        json_int_t next;
        int part;
        if (json_unpack(v, "[sIi]", &topic, &next, &part) == 0) {
            mqtt_subs_restore_pos(s, topic, part, (int64_t)next);
        }
    }
    json_array_foreach(out, i, v) {
        json_t *tj = NULL;
        const char *topic;
        json_int_t off;
        int part, pid, qos, state;
        if (json_unpack(v, "[oiIiii]", &tj, &part, &off, &pid, &qos, &state) == 0) {
            topic = json_is_string(tj) ? json_string_value(tj) : NULL;
            mqtt_subs_restore_out(s, topic, part, (int64_t)off, (uint16_t)pid, (uint8_t)qos,
                                  (uint8_t)state);
        }
    }
    if (json_is_array(q2)) {
        json_array_foreach(q2, i, v) {
            if (json_is_integer(v) && s->n_q2 < 65535) {
                uint16_t *n = realloc(s->q2, (size_t)(s->n_q2 + 1) * sizeof(*n));
                if (n != NULL) {
                    s->q2 = n;
                    s->q2[s->n_q2++] = (uint16_t)json_integer_value(v);
                    s->cap_q2 = s->n_q2;
                }
            }
        }
    }
    json_array_foreach(subs, i, v) {
        const char *f = NULL, *g = NULL;
        json_t *gj = NULL;
        int q = 0, nl = 0, rap = 0, rh = 0;
        json_int_t id = 0;
        struct mqtt_sub_entry *e;
        if (json_unpack(v, "{s:s,s?o,s:i,s:b,s:b,s:i,s:I}", "f", &f, "g", &gj, "q", &q, "nl",
                        &nl, "rap", &rap, "rh", &rh, "id", &id) != 0) {
            continue;
        }
        g = json_is_string(gj) ? json_string_value(gj) : NULL;
        if (s->n_subs == s->cap_subs) {
            uint32_t cap = s->cap_subs ? s->cap_subs * 2 : 2;
            struct mqtt_sub_entry *ne = realloc(s->subs, cap * sizeof(*ne));
            if (ne == NULL) {
                break;
            }
            s->subs = ne;
            s->cap_subs = cap;
        }
        e = &s->subs[s->n_subs];
        memset(e, 0, sizeof(*e));
        e->filter = strdup(f);
        e->share_group = g != NULL ? strdup(g) : NULL;
        e->qos = (uint8_t)q;
        e->no_local = nl;
        e->rap = rap;
        e->retain_handling = (uint8_t)rh;
        e->sub_id = (uint32_t)id;
        if (e->filter == NULL) {
            free(e->share_group);
            continue;
        }
        s->n_subs++;
        if (mqtt_subs_add(b->subs, s, s->n_subs - 1, NULL) != 0) {
            sl_warn("[mqtt:store] %s: subscription %s not restored", cid, f);
        }
    }
    return s;
}

int mqtt_store_load_all(struct mqtt_store *st, struct mqtt_broker *b)
{
    DIR *d = opendir(st->dir);
    struct dirent *de;
    int n = 0;

    if (d == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        char path[4200];
        size_t len = strlen(de->d_name);
        json_error_t jerr;
        json_t *doc;
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", st->dir, de->d_name);
        doc = json_load_file(path, 0, &jerr);
        if (doc == NULL) {
            sl_warn("[mqtt:store] %s: %s (ignored)", path, jerr.text);
            continue;
        }
        if (load_one(b, doc) != NULL) {
            n++;
        } else {
            sl_warn("[mqtt:store] %s: not a session (ignored)", path);
        }
        json_decref(doc);
    }
    closedir(d);
    return n;
}
