/*
 * libFuzzer target: MQTT session packet handling, on one broker + log shared by all runs
 * (in a mkdtemp() directory, flush: os), so state built by earlier inputs (subscriptions,
 * retained messages, stored sessions) is exercised too. Two kinds of input:
 *
 * - Plain (first byte anything but SCRIPT_MAGIC, e.g. a CONNECT): the bytes are fed (in
 *   two chunks) to one fresh session over a fake transport, with no auth hook.
 *
 * - Script (first byte SCRIPT_MAGIC): up to N_CONN connections and a fake auth hook with
 *   users whose password hashes are cheap (PBKDF2, 1 iteration). A CONNECT of a user with
 *   a hash is parked (MQTT_AUTH_PENDING, the daemon's worker path) and its check queued
 *   here; the script decides when and how the verdict arrives (mqtt_broker_auth_done):
 *   computed (mqtt_auth_check, inline, with its cache), forced ok / bad / busy / other,
 *   re-decide (-1), twice, late after the client left, for an unknown ticket. It also
 *   sends bytes on any connection (held while the session is paused, as a transport
 *   would, or pushed through anyway), closes connections, changes the users as a SIGHUP
 *   reload does (cache cleared, checks in flight decided anew) and refuses every parked
 *   CONNECT as a listener stop does (mqtt_broker_refuse_parked). No threads: every
 *   verdict is delivered by the fuzzer on this thread, so a run is deterministic. See
 *   run_script for the byte format.
 *
 * Checked: whatever comes back on each connection is a sequence of well-formed MQTT
 * packets starting with a CONNACK; to a v5 client every PUBLISH decodes and its topic
 * aliases are consistent (within the client's maximum, an empty topic only with an alias
 * assigned earlier on this connection, none on a DUP resend). In scripts also: a parked
 * session has written nothing and paused reading, the broker's parked list matches
 * n_parked, a verdict for a ticket nobody waits for changes nothing, and once every
 * connection closed nothing is parked.
 */
#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "adapters/mqtt/mqtt_auth.h"
#include "adapters/mqtt/mqtt_codec.h"
#include "adapters/mqtt/mqtt_session.h"
#include "gateway/config.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "routing/route.h"

/* One client connection. */
struct fake {
    struct evbuffer *out;            /* written by the server, not checked yet */
    struct evbuffer *in;             /* sent by the client, not read by the session yet */
    bool open;                       /* a session was made for it, no closed event yet */
    bool closed;                     /* the server closed it */
    bool paused;                     /* the session paused reading */
    size_t written;                  /* bytes the server wrote, ever */
    void *sess;                      /* NULL once rebound to nothing */
    /* Topic aliases the server assigned on this connection (lengths of their topics + 1;
     * 0 unassigned). The topics themselves need not be kept: the check is that an empty
     * topic only ever uses an assigned alias. */
    uint32_t aliases_seen[MQTT_ALIAS_OUT_CAP + 1];
};

static int f_write(void *c, const void *d, size_t n)
{
    struct fake *f = c;
    if (f->closed) {
        return -EPIPE;
    }
    f->written += n;
    return evbuffer_add(f->out, d, n);
}

static int f_write_buf(void *c, struct sl_buf *b, size_t off, size_t n)
{
    return f_write(c, b->data + off, n);
}

static size_t f_pending(void *c)
{
    return evbuffer_get_length(((struct fake *)c)->out);
}

static void f_pause(void *c, bool p)
{
    ((struct fake *)c)->paused = p;
}

static void f_close(void *c, bool flush)
{
    (void)flush;
    ((struct fake *)c)->closed = true;
}

static void f_rebind(void *c, void *s)
{
    ((struct fake *)c)->sess = s;
}

static const char *f_peer(void *c)
{
    (void)c;
    return "fuzz";
}

static const struct sl_transport_ops ops = {
    .write = f_write, .write_buf = f_write_buf, .pending = f_pending, .pause_read = f_pause,
    .close = f_close, .rebind = f_rebind, .peer = f_peer,
};

static struct sl_gateway gw;
static struct mqtt_broker *broker;
static struct mqtt_auth *checker;    /* inline (no mailbox, no threads): computes verdicts */
static char dir[] = "/tmp/sl_fuzz_mqtt_XXXXXX";

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* At exit: free everything and remove the directory. */
static void fini(void)
{
    /* The daemon's order: the log closes first (its pending append callbacks still
     * reach the broker), then the adapter's state is freed. */
    sl_log_close(&gw.log);
    mqtt_broker_free(&broker);
    mqtt_auth_free(&checker);
    rt_table_free(&gw.routes);
    sl_config_free(&gw.cfg);
    event_base_free(gw.base);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void init(void)
{
    struct sl_log_options lo;
    struct mqtt_limits lim;
    struct sl_config *cfg;
    char *err = NULL;

    if (mkdtemp(dir) == NULL) {
        abort();
    }
    evthread_use_pthreads();
    gw.base = event_base_new();
    cfg = sl_config_defaults();
    free(cfg->data_dir);
    cfg->data_dir = strdup(dir);
    cfg->topic_defaults.flush = SL_FLUSH_OS;
    gw.cfg = cfg;
    sl_gateway_log_options(cfg, &lo);
    gw.log = sl_log_open(gw.base, &lo, &err);
    gw.routes = rt_table_new();
    mqtt_limits_defaults(&lim);
    lim.max_packet_size = 65536;
    broker = gw.log != NULL ? mqtt_broker_new(&gw, &lim, dir, &err) : NULL;
    checker = mqtt_auth_new(NULL, 0, 1, 16, NULL, NULL);
    if (broker == NULL || checker == NULL) {
        abort();
    }
    atexit(fini);
}

/* A PUBLISH to a v5 client: decodes, and its alias use is consistent. max: the
 * session's alias maximum (it never grows during a connection). */
static void check_publish_v5(struct fake *f, const uint8_t *pkt, size_t len, uint16_t max)
{
    struct mqtt_packet p;
    const struct mqtt_publish *pb = &p.u.publish;
    if (mqtt_decode(pkt, len, MQTT_V5, &p) != 0 || p.type != MQTT_PUBLISH) {
        abort();
    }
    if (!mqtt_prop_has(&pb->props, MQTT_PROP_TOPIC_ALIAS)) {
        if (pb->topic.len == 0) {
            abort();
        }
        return;
    }
    if (pb->dup || pb->props.topic_alias == 0 || pb->props.topic_alias > max) {
        abort();
    }
    if (pb->topic.len > 0) {
        f->aliases_seen[pb->props.topic_alias] = (uint32_t)pb->topic.len + 1;
    } else if (f->aliases_seen[pb->props.topic_alias] == 0) {
        abort();
    }
}

/* What the server wrote to f since the last check is whole, well-formed MQTT packets
 * (v5 decoding accepts every server packet we send in either version's framing), the
 * connection's first one a CONNACK. Drains what it checked. */
static void check_output(struct fake *f)
{
    size_t len = evbuffer_get_length(f->out);
    uint8_t *out = evbuffer_pullup(f->out, -1);
    size_t off = 0, plen;
    const struct mqtt_session *s = f->sess;
    bool v5 = s != NULL && s->version == MQTT_V5;
    bool first = f->written == len;

    while (off < len && mqtt_frame(out + off, len - off, 0, &plen) == 1) {
        if (first && off == 0 && (out[0] >> 4) != MQTT_CONNACK) {
            abort();
        }
        if (v5 && (out[off] >> 4) == MQTT_PUBLISH) {
            check_publish_v5(f, out + off, plen, s->alias_out.max);
        }
        off += plen;
    }
    if (off != len) {
        abort();
    }
    evbuffer_drain(f->out, len);
}

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    f->out = evbuffer_new();
    f->in = evbuffer_new();
    if (f->out == NULL || f->in == NULL) {
        abort();
    }
}

static void fake_free(struct fake *f)
{
    evbuffer_free(f->in);
    evbuffer_free(f->out);
}

/* A new connection on f (whose previous one, if any, is gone). */
static void fake_open(struct fake *f)
{
    struct sl_transport t = {.ops = &ops, .conn = f};
    evbuffer_drain(f->in, evbuffer_get_length(f->in));
    evbuffer_drain(f->out, evbuffer_get_length(f->out));
    f->closed = f->paused = false;
    f->written = 0;
    memset(f->aliases_seen, 0, sizeof(f->aliases_seen));
    f->sess = mqtt_session_new(broker, &t);
    if (f->sess == NULL) {
        abort();
    }
    f->open = true;
}

/* The client went away (or the server's close completed): the closed event. */
static void fake_gone(struct fake *f)
{
    if (f->open && f->sess != NULL) {
        f->closed = true;
        mqtt_transport_events.closed(f->sess);
    }
    f->open = false;
    f->sess = NULL;
}

static void run_loop(int n)
{
    for (int i = 0; i < n; i++) {
        event_base_loop(gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
}

/* ------------------------------------------------------------ plain input ---- */

static void run_plain(const uint8_t *data, size_t size)
{
    struct fake f;
    size_t half = size / 2;

    broker->auth = NULL;
    fake_init(&f);
    fake_open(&f);
    evbuffer_add(f.in, data, half);
    mqtt_transport_events.data(f.sess, f.in);
    if (!f.closed) {
        evbuffer_add(f.in, data + half, size - half);
        mqtt_transport_events.data(f.sess, f.in);
    }
    run_loop(4);
    if (!f.closed) {
        mqtt_transport_events.drained(f.sess);
    }
    check_output(&f);
    fake_gone(&f);
    run_loop(2);
    fake_free(&f);
}

/* ----------------------------------------------------------- script input ---- */

#define SCRIPT_MAGIC 0xA5
#define N_CONN 4
#define MAX_CHECKS 16                /* past that the hook answers 0x89, as the daemon does */
#define MAX_OPS 512

/* Users: alice (password "secret") and bob ("other"), 1 iteration each. */
#define H_SECRET "pbkdf2-sha256$1$c2FsdHNhbHQ=$7q77FNs/69qVkPyRNSqXo6plaOX9a1Kyv7l1dRFK7ZE="
#define H_OTHER "pbkdf2-sha256$1$cGVwcGVyMTI=$Dw/2WnbMVDeIqtbrqnovKuYsYSfp6DsKw1VsnEA9Amg="

struct user {
    const char *name, *hash;
};

/* The users a reload may switch to; anonymous clients allowed where a set says so. */
static const struct {
    struct user users[2];
    size_t n;
    bool anonymous;
} user_sets[] = {
    {{{"alice", H_SECRET}, {"bob", H_OTHER}}, 2, false},
    {{{"alice", H_OTHER}}, 1, false},          /* alice's password changed, bob gone */
    {{{NULL, NULL}}, 0, true},                 /* no users: anyone */
    {{{"alice", H_SECRET}, {"bob", H_SECRET}}, 2, true},
};

/* A check queued by the hook: the daemon's worker job. */
struct check {
    uint64_t ticket;
    const char *hash;
    uint8_t *password;
    size_t len;
};

static struct {
    unsigned set;                    /* user_sets index */
    bool inline_hashes;              /* the hook checks at once (as with the cache warm) */
    struct check checks[MAX_CHECKS];
    size_t n_checks;
    uint64_t stale_ticket;           /* checks up to this ticket ran against old users */
} fz;

/* The hook, modelled on the listener's users_auth: anonymous per the user set, a user
 * with a hash queued (or checked at once), everything else refused. */
static int fz_auth(void *arg, uint64_t ticket, const char *client_id,
                   const struct mqtt_str *user, const struct mqtt_bin *password)
{
    struct check *c;
    (void)arg;
    (void)client_id;
    if (user == NULL) {
        return user_sets[fz.set].anonymous ? 0 : 0x87;
    }
    for (size_t i = 0; i < user_sets[fz.set].n; i++) {
        const struct user *u = &user_sets[fz.set].users[i];
        if (strlen(u->name) != user->len || memcmp(u->name, user->ptr, user->len) != 0) {
            continue;
        }
        if (password == NULL) {
            return 0x86;
        }
        if (fz.inline_hashes) {
            return mqtt_auth_check(checker, ticket, u->hash, password->ptr, password->len);
        }
        if (fz.n_checks == MAX_CHECKS) {
            return 0x89;
        }
        c = &fz.checks[fz.n_checks];
        c->password = malloc(password->len > 0 ? password->len : 1);
        if (c->password == NULL) {
            return 0x97;
        }
        memcpy(c->password, password->ptr, password->len);
        c->len = password->len;
        c->hash = u->hash;
        c->ticket = ticket;
        fz.n_checks++;
        return MQTT_AUTH_PENDING;
    }
    return user_sets[fz.set].anonymous && user_sets[fz.set].n == 0 ? 0 : 0x86;
}

static void check_drop(size_t i)
{
    free(fz.checks[i].password);
    memmove(&fz.checks[i], &fz.checks[i + 1], (fz.n_checks - i - 1) * sizeof(fz.checks[0]));
    fz.n_checks--;
}

/* The broker's parked list is consistent, and every parked session wrote nothing and
 * paused reading (a parked session is always some connection's current session). */
static void check_parked(struct fake *conns)
{
    size_t n = 0;
    for (const struct mqtt_session *p = broker->parked; p != NULL; p = p->pk_next) {
        bool found = false;
        if (p->state != MQTT_S_AUTH || p->auth_ticket == 0 || ++n > broker->n_parked) {
            abort();
        }
        for (int i = 0; i < N_CONN; i++) {
            if (conns[i].sess == p) {
                if (!conns[i].open || conns[i].written != 0 || !conns[i].paused) {
                    abort();
                }
                found = true;
            }
        }
        if (!found) {
            abort();
        }
    }
    if (n != broker->n_parked) {
        abort();
    }
}

static bool is_parked(uint64_t ticket)
{
    for (const struct mqtt_session *p = broker->parked; p != NULL; p = p->pk_next) {
        if (p->auth_ticket == ticket) {
            return true;
        }
    }
    return false;
}

/* Deliver verdict for ticket. One nobody waits for must change nothing. */
static void deliver(struct fake *conns, uint64_t ticket, int verdict)
{
    size_t written[N_CONN];
    bool closed[N_CONN];
    bool waited = is_parked(ticket);
    size_t n_parked = broker->n_parked;

    for (int i = 0; i < N_CONN; i++) {
        written[i] = conns[i].written;
        closed[i] = conns[i].closed;
    }
    mqtt_broker_auth_done(broker, ticket, verdict);
    if (waited) {
        return;
    }
    if (broker->n_parked != n_parked) {
        abort();
    }
    for (int i = 0; i < N_CONN; i++) {
        if (conns[i].written != written[i] || conns[i].closed != closed[i]) {
            abort();
        }
    }
}

/* Verdict kinds (the second argument byte's bits 3-5). */
static int verdict_of(const struct check *c, unsigned kind)
{
    switch (kind) {
    case 0:
    case 1:   /* as the listener's on_auth_verdict: computed, or decided anew if stale */
        if (c->ticket <= fz.stale_ticket) {
            return -1;
        }
        return mqtt_auth_check(checker, c->ticket, c->hash, c->password, c->len);
    case 2:
        return 0;
    case 3:
        return 0x86;
    case 4:
        return 0x89;
    case 5:
        return -1;
    case 6:
        return 0x87;
    default:
        return 0x97;
    }
}

/*
 * Script: SCRIPT_MAGIC, a flags byte (bits 0-1: the initial user set, bit 2: hashes
 * checked inline), then operations until the input ends, each one byte: bits 0-2 the
 * operation, bit 3 its flag, bits 4-5 the connection:
 *   0 data    a length byte and that many bytes from the client; delivered unless the
 *             session paused reading (flag: delivered anyway, as an event already on its
 *             way). A connection that was gone is opened anew first.
 *   1 close   the client disconnects (closed event).
 *   2 verdict an argument byte: bits 0-2 which queued check, bits 3-5 its kind (see
 *             verdict_of); flag: keep it queued (delivered again later: a duplicate).
 *   3 reload  an argument byte: the user set; the cache forgets, checks queued so far
 *             are decided anew when their verdict comes (as mqtt_reload).
 *   4 stop    refuse every parked CONNECT (mqtt_broker_refuse_parked, 0x88); the queued
 *             checks stay, their verdicts come late.
 *   5 loop    run the event loop once.
 *   6 drained the connection's output drained.
 *   7 ticket  an argument byte: a verdict (bad, or ok with the flag) for ticket
 *             next_ticket - byte: an old, current or never issued one.
 * At the end every connection closes, then the checks still queued get their verdicts.
 */
static void run_script(const uint8_t *data, size_t size)
{
    struct fake conns[N_CONN];
    size_t pos = 2;

    if (size < 2) {
        return;
    }
    fz.set = data[1] & 3;
    fz.inline_hashes = (data[1] & 4) != 0;
    fz.stale_ticket = broker->next_ticket;
    mqtt_auth_cache_clear(checker);
    broker->auth = fz_auth;
    for (int i = 0; i < N_CONN; i++) {
        fake_init(&conns[i]);
    }
    for (int n = 0; n < MAX_OPS && pos < size; n++) {
        uint8_t op = data[pos++];
        struct fake *f = &conns[(op >> 4) & 3];
        bool flag = (op & 8) != 0;
        uint8_t arg = 0;

        if ((op & 7) != 1 && (op & 7) != 4 && (op & 7) != 5 && (op & 7) != 6) {
            if (pos == size) {
                break;
            }
            arg = data[pos++];
        }
        switch (op & 7) {
        case 0: {
            size_t len = arg <= size - pos ? arg : size - pos;
            if (!f->open) {
                fake_open(f);
            }
            if (!f->closed && f->sess != NULL) {
                evbuffer_add(f->in, data + pos, len);
                if (!f->paused || flag) {
                    mqtt_transport_events.data(f->sess, f->in);
                }
            }
            pos += len;
            break;
        }
        case 1:
            fake_gone(f);
            break;
        case 2:
            if (fz.n_checks > 0) {
                size_t i = (arg & 7) % fz.n_checks;
                uint64_t ticket = fz.checks[i].ticket;
                int verdict = verdict_of(&fz.checks[i], (arg >> 3) & 7);
                if (!flag) {
                    check_drop(i);
                }
                deliver(conns, ticket, verdict);
            }
            break;
        case 3:
            fz.set = arg & 3;
            mqtt_auth_cache_clear(checker);
            fz.stale_ticket = broker->next_ticket;
            break;
        case 4:
            mqtt_broker_refuse_parked(broker, 0x88);
            break;
        case 5:
            run_loop(1);
            break;
        case 6:
            if (f->open && f->sess != NULL && !f->closed) {
                mqtt_transport_events.drained(f->sess);
            }
            break;
        default:
            deliver(conns, broker->next_ticket - arg, flag ? 0 : 0x86);
            break;
        }
        check_parked(conns);
        for (int i = 0; i < N_CONN; i++) {
            check_output(&conns[i]);
        }
    }
    run_loop(2);
    for (int i = 0; i < N_CONN; i++) {
        check_output(&conns[i]);
        fake_gone(&conns[i]);
    }
    if (broker->parked != NULL || broker->n_parked != 0) {
        abort();
    }
    /* late verdicts: nobody waits any more */
    while (fz.n_checks > 0) {
        deliver(conns, fz.checks[0].ticket, verdict_of(&fz.checks[0], 0));
        check_drop(0);
    }
    run_loop(2);
    for (int i = 0; i < N_CONN; i++) {
        fake_free(&conns[i]);
    }
    broker->auth = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;

    if (!ready) {
        init();
        ready = true;
    }
    if (size > 0 && data[0] == SCRIPT_MAGIC) {
        run_script(data, size);
    } else {
        run_plain(data, size);
    }
    return 0;
}
