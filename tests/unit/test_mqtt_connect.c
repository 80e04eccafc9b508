/*
 * MQTT CONNECT handling without sockets (fixture: mqtt_fixture.h): password hashes, the
 * auth hook, CONNECTs parked for a password verdict (verdicts late, repeated, after a
 * disconnect, after a users reload; take-over while pending; Server busy; stop), limits
 * after a reload, and the Session Expiry Interval in CONNACK.
 */
#include "mqtt_fixture.h"

static void test_password_hash(void **state)
{
    /* made with Python's hashlib.pbkdf2_hmac("sha256", b"s3cret", salt, 1000) */
    static const char h[] = "pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==$"
                            "8W5yLmqTx7pmJ5+3qp/ZOQP9vTuo+lMNfP/lMdTb9u8=";
    (void)state;
    assert_true(mqtt_password_ok(h, (const uint8_t *)"s3cret", 6));
    assert_false(mqtt_password_ok(h, (const uint8_t *)"s3cres", 6));
    assert_false(mqtt_password_ok(h, (const uint8_t *)"", 0));
    assert_false(mqtt_password_ok("$6$salt$abc", (const uint8_t *)"s3cret", 6));
    assert_false(mqtt_password_ok("pbkdf2-sha256$0$c2FsdA==$AAAA", (const uint8_t *)"x", 1));
}

static int deny_auth(void *arg, uint64_t ticket, const char *cid, const struct mqtt_str *user,
                     const struct mqtt_bin *pw)
{
    (void)arg;
    (void)ticket;
    (void)cid;
    (void)pw;
    return user != NULL && user->len == 2 && memcmp(user->ptr, "ok", 2) == 0 ? 0 : 0x86;
}

static void test_auth_hook(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *b = open_conn(f, 1), *c = open_conn(f, 2);
    struct mqtt_packet p, r;

    f->b->auth = deny_auth;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    p.u.connect.protocol_level = MQTT_V5;
    p.u.connect.clean_start = true;
    p.u.connect.client_id.ptr = "who";
    p.u.connect.client_id.len = 3;
    send_pkt(a, &p, MQTT_V5);
    assert_true(next_pkt(a, MQTT_V5, &r));
    assert_int_equal(r.type, MQTT_CONNACK);
    assert_int_equal(r.u.connack.reason, 0x86);
    assert_true(a->closed);
    p.u.connect.protocol_level = MQTT_V311;
    send_pkt(b, &p, MQTT_V311);
    assert_true(next_pkt(b, MQTT_V311, &r));
    assert_int_equal(r.u.connack.reason, 4);       /* 3.1.1: bad user name or password */
    assert_true(b->closed);
    p.u.connect.protocol_level = MQTT_V5;
    p.u.connect.has_username = true;
    p.u.connect.username.ptr = "ok";
    p.u.connect.username.len = 2;
    send_pkt(c, &p, MQTT_V5);
    assert_true(next_pkt(c, MQTT_V5, &r));
    assert_int_equal(r.u.connack.reason, 0);
    assert_false(c->closed);
}

/* ---- CONNECTs parked for a password verdict ---- */

/* An auth hook that parks every CONNECT with a password (the tickets go to last_ticket),
 * answers busy for user "busy", allows everyone else. */
static uint64_t last_ticket;

static int parking_auth(void *arg, uint64_t ticket, const char *cid, const struct mqtt_str *user,
                        const struct mqtt_bin *pw)
{
    (void)arg;
    (void)cid;
    if (user != NULL && user->len == 4 && memcmp(user->ptr, "busy", 4) == 0) {
        return 0x89;
    }
    if (pw != NULL) {
        last_ticket = ticket;
        return MQTT_AUTH_PENDING;
    }
    return 0;
}

/* CONNECT cid with user "u" and password "pw" (password NULL: none, anonymous). */
static void send_connect_pw(struct fake *c, const char *cid, enum mqtt_version v,
                            const char *user, const char *password)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    p.u.connect.protocol_level = (uint8_t)v;
    p.u.connect.clean_start = true;
    p.u.connect.keep_alive = 30;
    p.u.connect.client_id.ptr = cid;
    p.u.connect.client_id.len = strlen(cid);
    if (user != NULL) {
        p.u.connect.has_username = true;
        p.u.connect.username.ptr = user;
        p.u.connect.username.len = strlen(user);
    }
    if (password != NULL) {
        p.u.connect.has_password = true;
        p.u.connect.password.ptr = (const uint8_t *)password;
        p.u.connect.password.len = strlen(password);
    }
    send_pkt(c, &p, v);
}

static void send_ping(struct fake *c, enum mqtt_version v)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PINGREQ;
    send_pkt(c, &p, v);
}

static void expect_connack(struct fake *c, enum mqtt_version v, uint8_t reason)
{
    struct mqtt_packet r;
    assert_true(next_pkt(c, v, &r));
    assert_int_equal(r.type, MQTT_CONNACK);
    assert_int_equal(r.u.connack.reason, reason);
}

static void expect_type(struct fake *c, enum mqtt_version v, enum mqtt_type t)
{
    struct mqtt_packet r;
    assert_true(next_pkt(c, v, &r));
    assert_int_equal(r.type, t);
}

/* What the TCP transport does after close(): the closed event, once (none when the
 * session detached the connection with rebind(NULL)). */
static void deliver_closed(struct fake *c)
{
    if (c->closed && !c->notified && c->sess != NULL) {
        c->notified = true;
        mqtt_transport_events.closed(c->sess);
    }
}

static void test_auth_parked_connect(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *b = open_conn(f, 1), *c = open_conn(f, 2);
    uint64_t ta, tb, tc;

    f->b->auth = parking_auth;
    /* the CONNECT parks: no CONNACK, reading paused; a PINGREQ sent right behind it waits */
    send_connect_pw(a, "pa", MQTT_V5, "u", "pw");
    ta = last_ticket;
    assert_int_equal(evbuffer_get_length(a->out), 0);
    assert_true(a->paused);
    assert_int_equal(f->b->n_parked, 1);
    send_ping(a, MQTT_V5);
    send_ping(a, MQTT_V5);
    assert_int_equal(evbuffer_get_length(a->out), 0);
    send_connect_pw(b, "pb", MQTT_V5, "u", "bad");
    tb = last_ticket;
    send_connect_pw(c, "pc", MQTT_V311, "u", "bad");
    tc = last_ticket;
    assert_true(ta != tb && tb != tc && ta != 0);
    assert_int_equal(f->b->n_parked, 3);
    /* verdicts in any order: the right password is accepted, then the held pings run */
    mqtt_broker_auth_done(f->b, tb, 0x86);
    expect_connack(b, MQTT_V5, 0x86);
    assert_true(b->closed);
    mqtt_broker_auth_done(f->b, ta, 0);
    expect_connack(a, MQTT_V5, 0);
    expect_type(a, MQTT_V5, MQTT_PINGRESP);
    expect_type(a, MQTT_V5, MQTT_PINGRESP);
    assert_false(a->paused);
    assert_false(a->closed);
    assert_non_null(mqtt_broker_find(f->b, "pa"));
    mqtt_broker_auth_done(f->b, tc, 0x86);
    expect_connack(c, MQTT_V311, 4);                /* 3.1.1: bad user name or password */
    assert_true(c->closed);
    assert_int_equal(f->b->n_parked, 0);
    /* a late or repeated verdict is ignored */
    mqtt_broker_auth_done(f->b, ta, 0);
    mqtt_broker_auth_done(f->b, tb, 0);
    assert_int_equal(evbuffer_get_length(a->out), 0);
    assert_int_equal(evbuffer_get_length(b->out), 0);
    /* the session works as usual */
    send_ping(a, MQTT_V5);
    expect_type(a, MQTT_V5, MQTT_PINGRESP);
}

/* A verdict of -1 (the users changed while the hash ran: a SIGHUP reload) decides the
 * CONNECT again: it parks anew with a fresh ticket, and that verdict finishes it. */
static void test_auth_recheck_after_reload(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0);
    uint64_t t1, t2;

    f->b->auth = parking_auth;
    send_connect_pw(a, "ra", MQTT_V5, "u", "pw");
    t1 = last_ticket;
    send_ping(a, MQTT_V5);
    mqtt_broker_auth_done(f->b, t1, -1);
    t2 = last_ticket;
    assert_true(t2 > t1);
    assert_int_equal(f->b->n_parked, 1);
    assert_int_equal(evbuffer_get_length(a->out), 0);
    assert_true(a->paused);
    mqtt_broker_auth_done(f->b, t1, 0);             /* the old ticket is gone */
    assert_int_equal(evbuffer_get_length(a->out), 0);
    mqtt_broker_auth_done(f->b, t2, 0);
    expect_connack(a, MQTT_V5, 0);
    expect_type(a, MQTT_V5, MQTT_PINGRESP);
    assert_false(a->paused);
    assert_int_equal(f->b->n_parked, 0);
}

/* CONNECT cid (v5) and return the CONNACK's properties (reason 0 asserted). */
static struct mqtt_props connect_props(struct fake *c, const char *cid)
{
    struct mqtt_packet r;
    send_connect_pw(c, cid, MQTT_V5, NULL, NULL);
    assert_true(next_pkt(c, MQTT_V5, &r));
    assert_int_equal(r.type, MQTT_CONNACK);
    assert_int_equal(r.u.connack.reason, 0);
    return r.u.connack.props;
}

/* A reload replaces b->lim: connections made after it get (and are told) the new
 * limits, a connection made before keeps what its CONNACK announced. */
static void test_reload_limits_new_connections_only(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *b;
    static char big[2001];
    struct mqtt_props pr;

    memset(big, 'x', sizeof(big) - 1);
    pr = connect_props(a, "before");
    assert_int_equal(pr.max_packet_size, 4096);
    assert_int_equal(pr.receive_max, 1024);
    assert_int_equal(pr.topic_alias_max, 64);
    f->b->lim.max_packet_size = 1024;               /* what mqtt_reload does */
    f->b->lim.receive_max = 5;
    f->b->lim.topic_alias_max = 2;
    f->b->lim.max_subscriptions = 1;
    b = open_conn(f, 1);
    pr = connect_props(b, "after");
    assert_int_equal(pr.max_packet_size, 1024);
    assert_int_equal(pr.receive_max, 5);
    assert_int_equal(pr.topic_alias_max, 2);
    /* the old connection: 2 kB packets and two subscriptions still fine */
    do_publish(a, MQTT_V5, "lim/a", big, 0, 0);
    assert_false(a->closed);
    do_subscribe(a, MQTT_V5, "lim/x", 0);
    do_subscribe(a, MQTT_V5, "lim/y", 0);
    /* the new one: one subscription, then 0x97; a 2 kB packet is too large (0x95) */
    do_subscribe(b, MQTT_V5, "lim/x", 0);
    {
        struct mqtt_packet p, r;
        struct mqtt_subscription sub = {.filter = {"lim/y", 5}, .qos = 0};
        memset(&p, 0, sizeof(p));
        p.type = MQTT_SUBSCRIBE;
        p.u.subscribe.packet_id = 2;
        p.u.subscribe.subs.items = &sub;
        p.u.subscribe.subs.count = 1;
        send_pkt(b, &p, MQTT_V5);
        assert_true(next_pkt(b, MQTT_V5, &r));
        assert_int_equal(r.type, MQTT_SUBACK);
        assert_int_equal(r.u.suback.reasons.ptr[0], 0x97);
    }
    do_publish(b, MQTT_V5, "lim/b", big, 0, 0);
    assert_true(b->closed);
    {
        struct mqtt_packet r;
        assert_true(next_pkt(b, MQTT_V5, &r));
        assert_int_equal(r.type, MQTT_DISCONNECT);
        assert_int_equal(r.u.disconnect.reason, 0x95);
    }
    assert_false(a->closed);
}

/* MQTT 5 3.2.2.3.2: when the server lowers the Session Expiry Interval the client asked
 * for, the CONNACK carries the value used; otherwise it carries none. */
static void test_connack_session_expiry_capped(void **state)
{
    struct fixture *f = *state;
    struct mqtt_props pr;

    f->b->lim.max_session_expiry = 3600;
    pr = do_connect(open_conn(f, 0), "capped", MQTT_V5, true, 86400);
    assert_true(mqtt_prop_has(&pr, MQTT_PROP_SESSION_EXPIRY));
    assert_int_equal(pr.session_expiry, 3600);
    pr = do_connect(open_conn(f, 1), "within", MQTT_V5, true, 60);
    assert_false(mqtt_prop_has(&pr, MQTT_PROP_SESSION_EXPIRY));
}

static void test_auth_verdict_after_disconnect(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *b = open_conn(f, 1);
    uint64_t ta;

    f->b->auth = parking_auth;
    send_connect_pw(a, "gone", MQTT_V5, "u", "pw");
    ta = last_ticket;
    send_ping(a, MQTT_V5);
    /* the client hangs up while its password is checked: the session is freed */
    a->closed = true;
    deliver_closed(a);
    assert_int_equal(f->b->n_parked, 0);
    assert_int_equal(f->b->n_connected, 1);
    /* the verdict finds nothing (ASan: no use after free) */
    mqtt_broker_auth_done(f->b, ta, 0);
    assert_null(mqtt_broker_find(f->b, "gone"));
    assert_int_equal(evbuffer_get_length(a->out), 0);
    /* a later client with the same id is unaffected */
    do_connect(b, "gone", MQTT_V5, true, 0);
    mqtt_broker_auth_done(f->b, ta, 0);
    send_ping(b, MQTT_V5);
    expect_type(b, MQTT_V5, MQTT_PINGRESP);
}

/* A persistent 3.1.1 CONNECT for cid with user "u", password "pw" (parks under
 * parking_auth), then the first byte of a PUBLISH: left unread when the verdict came. */
static void send_connect_persist_partial(struct fake *c, const char *cid)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    p.u.connect.protocol_level = MQTT_V311;
    p.u.connect.keep_alive = 30;
    p.u.connect.client_id.ptr = cid;
    p.u.connect.client_id.len = strlen(cid);
    p.u.connect.has_username = true;
    p.u.connect.username.ptr = "u";
    p.u.connect.username.len = 1;
    p.u.connect.has_password = true;
    p.u.connect.password.ptr = (const uint8_t *)"pw";
    p.u.connect.password.len = 2;
    send_pkt(c, &p, MQTT_V311);
    feed(c, "\x30", 1);
}

/* Bytes held since a parked CONNECT belong to that connection: a partial packet it left
 * behind must not lead the stream of the next connection resuming the session (found by
 * fuzz_mqtt_session: the held buffer was kept offline, then leaked or replayed). */
static void test_auth_resume_drops_partial_packet(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *b = open_conn(f, 1), *c = open_conn(f, 2);
    struct mqtt_packet p;

    f->b->auth = parking_auth;
    send_connect_persist_partial(a, "hs");
    mqtt_broker_auth_done(f->b, last_ticket, 0);
    expect_connack(a, MQTT_V311, 0);
    a->closed = true;
    deliver_closed(a);
    /* resumed at once (no password): its PINGREQ is answered */
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    p.u.connect.protocol_level = MQTT_V311;
    p.u.connect.keep_alive = 30;
    p.u.connect.client_id.ptr = "hs";
    p.u.connect.client_id.len = 2;
    send_pkt(b, &p, MQTT_V311);
    expect_connack(b, MQTT_V311, 0);
    send_ping(b, MQTT_V311);
    expect_type(b, MQTT_V311, MQTT_PINGRESP);
    /* resumed through a parked CONNECT whose own held bytes replace the session's (ASan:
     * nothing leaks) */
    feed(b, "\x30", 1);
    b->closed = true;
    deliver_closed(b);
    send_connect_persist_partial(c, "hs");
    mqtt_broker_auth_done(f->b, last_ticket, 0);
    expect_connack(c, MQTT_V311, 0);
    feed(c, "\x00", 1);                          /* completes the PUBLISH: no topic */
    assert_true(c->closed);
}

static void test_auth_takeover_while_pending(void **state)
{
    struct fixture *f = *state;
    struct fake *old = open_conn(f, 0), *nw = open_conn(f, 1), *p1 = open_conn(f, 2),
                *p2 = open_conn(f, 3), *wr = open_conn(f, 4);
    uint64_t t_new, t_p1, t_wr;

    f->b->auth = parking_auth;
    /* an active client keeps working while a second one with its id waits for a verdict */
    do_connect(old, "dev", MQTT_V5, true, 0);
    send_connect_pw(nw, "dev", MQTT_V5, "u", "pw");
    t_new = last_ticket;
    send_connect_pw(wr, "dev", MQTT_V5, "u", "wrong");
    t_wr = last_ticket;
    send_ping(old, MQTT_V5);
    expect_type(old, MQTT_V5, MQTT_PINGRESP);
    assert_false(old->closed);
    /* a wrong password does not disturb the active client */
    mqtt_broker_auth_done(f->b, t_wr, 0x86);
    expect_connack(wr, MQTT_V5, 0x86);
    assert_false(old->closed);
    /* the right one takes the client id over, as a synchronous CONNECT would */
    mqtt_broker_auth_done(f->b, t_new, 0);
    expect_type(old, MQTT_V5, MQTT_DISCONNECT);
    assert_true(old->closed);
    expect_connack(nw, MQTT_V5, 0);
    assert_ptr_equal(mqtt_broker_find(f->b, "dev"), nw->sess);
    deliver_closed(old);

    /* newest accepted CONNECT wins: a parked older one is dropped, its verdict ignored */
    send_connect_pw(p1, "twin", MQTT_V5, "u", "pw");
    t_p1 = last_ticket;
    send_connect_pw(p2, "twin", MQTT_V5, NULL, NULL);      /* anonymous: decided at once */
    expect_connack(p2, MQTT_V5, 0);
    assert_true(p1->closed);
    assert_int_equal(evbuffer_get_length(p1->out), 0);      /* no CONNACK to the old one */
    deliver_closed(p1);
    assert_int_equal(f->b->n_parked, 0);
    mqtt_broker_auth_done(f->b, t_p1, 0);
    assert_false(p2->closed);
    assert_ptr_equal(mqtt_broker_find(f->b, "twin"), p2->sess);
    send_ping(p2, MQTT_V5);
    expect_type(p2, MQTT_V5, MQTT_PINGRESP);
}

static void test_auth_busy_and_stop(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *b = open_conn(f, 1), *c = open_conn(f, 2),
                *d = open_conn(f, 3);

    f->b->auth = parking_auth;
    /* the checker's queue is full: Server busy (3.1.1: server unavailable) */
    send_connect_pw(a, "b5", MQTT_V5, "busy", "pw");
    expect_connack(a, MQTT_V5, 0x89);
    assert_true(a->closed);
    send_connect_pw(b, "b3", MQTT_V311, "busy", "pw");
    expect_connack(b, MQTT_V311, 3);
    assert_true(b->closed);
    /* listener stop with checks in flight: parked CONNECTs get Server unavailable */
    send_connect_pw(c, "s5", MQTT_V5, "u", "pw");
    send_connect_pw(d, "s3", MQTT_V311, "u", "pw");
    assert_int_equal(f->b->n_parked, 2);
    mqtt_broker_refuse_parked(f->b, 0x88);
    expect_connack(c, MQTT_V5, 0x88);
    expect_connack(d, MQTT_V311, 3);
    assert_true(c->closed && d->closed);
    assert_int_equal(f->b->n_parked, 0);
    assert_int_equal(f->b->n_connected, 2);   /* a and b: their closed events are pending */
    c->sess = d->sess = NULL;                 /* detached: no closed event comes */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_resume_drops_partial_packet, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connack_session_expiry_capped, setup, teardown),
        cmocka_unit_test(test_password_hash),
        cmocka_unit_test_setup_teardown(test_auth_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_parked_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_recheck_after_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_limits_new_connections_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth_verdict_after_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_takeover_while_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_busy_and_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
