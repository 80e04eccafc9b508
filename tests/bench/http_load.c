/*
 * http_load: a small HTTP/1.1 load generator for sluice's REST port. The issue allows
 * "wrk from Debian, or a C client"; wrk with a Lua request() costs about as much CPU
 * per request as sluice's HTTP thread, and on a 2-core machine the client's CPU is
 * taken from the server. This one does what wrk does and little else: CONNS keep-alive
 * connections on one epoll thread, one request in flight per connection (no
 * pipelining), each answer read whole (status line, Content-Length) before the next
 * request is sent.
 *
 *   http_load -p PORT [-c CONNS (64)] [-d SECONDS (5)] [-m single|batch] [-t TOPIC]
 *       single: POST /topics/TOPIC?key=kN (N rotating over 1000), a 100-byte
 *               text/plain body: the request tests/bench/post.lua makes.
 *       batch:  POST /topics/TOPIC, a batch of 100 CloudEvents with 100 bytes of data
 *               each: the request tests/bench/post_batch.lua makes.
 *
 * Output: one line of key=value pairs (requests/s, answers that were not 2xx, latency
 * percentiles). Bounded by -d and by a deadline of -d + 10 s for the last answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define RBUF 65536
#define MAX_LAT (1u << 24)

struct conn {
    int fd;
    char *req;                 /* the request being sent */
    size_t req_len, req_off;
    size_t rlen;               /* bytes in rbuf */
    int64_t sent_at;
    char rbuf[RBUF];
};

static struct {
    int port, conns, seconds;
    bool batch;
    const char *topic;
    char *body;
    size_t body_len;
    uint64_t seq, done, non2xx, errors;
    uint32_t *lat;             /* microseconds, one per answer (capped) */
    size_t n_lat;
} g = {.conns = 64, .seconds = 5, .topic = NULL};

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what)
{
    fprintf(stderr, "http_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void make_body(void)
{
    size_t cap = 32768, n = 0;
    char data[101];

    memset(data, g.batch ? 'y' : 'x', 100);
    data[100] = '\0';
    g.body = malloc(cap);
    if (g.body == NULL) {
        die("malloc");
    }
    if (!g.batch) {
        memcpy(g.body, data, 100);
        g.body_len = 100;
        return;
    }
    g.body[n++] = '[';
    for (int i = 1; i <= 100; i++) {
        n += (size_t)snprintf(g.body + n, cap - n,
                              "%s{\"specversion\":\"1.0\",\"id\":\"e%d\",\"source\":\"/bench\","
                              "\"type\":\"bench\",\"subject\":\"bench\",\"data\":\"%s\"}",
                              i > 1 ? "," : "", i, data);
    }
    g.body[n++] = ']';
    g.body_len = n;
}

/* Build the next request of c (a new key each time in single mode). */
static void next_request(struct conn *c)
{
    char head[512];
    int h;

    if (g.batch) {
        h = snprintf(head, sizeof(head),
                     "POST /topics/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/cloudevents-batch+json\r\n"
                     "Content-Length: %zu\r\n\r\n", g.topic, g.body_len);
    } else {
        h = snprintf(head, sizeof(head),
                     "POST /topics/%s?key=k%llu HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
                     g.topic, (unsigned long long)(++g.seq % 1000), g.body_len);
    }
    memcpy(c->req, head, (size_t)h);
    memcpy(c->req + h, g.body, g.body_len);
    c->req_len = (size_t)h + g.body_len;
    c->req_off = 0;
    c->sent_at = now_us();
}

/* Send what is left of c's request. 0 done, 1 would block, -1 error. */
static int send_some(struct conn *c)
{
    while (c->req_off < c->req_len) {
        ssize_t n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);

        if (n < 0) {
            return errno == EAGAIN ? 1 : -1;
        }
        c->req_off += (size_t)n;
    }
    return 0;
}

/* One whole answer at the start of rbuf? Its length, 0 if not yet, -1 if malformed. */
static long answer_len(const struct conn *c, int *status)
{
    const char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    const char *cl;
    long head, body = 0;

    if (end == NULL) {
        return c->rlen >= RBUF ? -1 : 0;
    }
    head = end + 4 - c->rbuf;
    if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.", 7) != 0) {
        return -1;
    }
    *status = atoi(c->rbuf + 9);
    for (cl = memchr(c->rbuf, '\n', (size_t)(end - c->rbuf)); cl != NULL && end - cl > 16;
         cl = memchr(cl + 1, '\n', (size_t)(end - cl - 1))) {
        if (strncasecmp(cl, "\ncontent-length:", 16) == 0) {
            body = strtol(cl + 16, NULL, 10);
            break;
        }
    }
    if (body < 0 || head + body > RBUF) {
        return -1;
    }
    return (size_t)(head + body) <= c->rlen ? head + body : 0;
}

static int open_conn(struct conn *c, int ep)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    int one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        return -1;
    }
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (g.n_lat == 0) {
        return 0;
    }
    return g.lat[(size_t)(p * (double)(g.n_lat - 1))] / 1000.0;
}

/* Read c's answers; send its next request while the run lasts. -1: drop c. */
static int serve(struct conn *c, bool running, int *inflight)
{
    for (;;) {
        ssize_t n;
        long len;
        int status = 0;

        if (c->req_off < c->req_len) {
            int rc = send_some(c);

            if (rc != 0) {
                return rc < 0 ? -1 : 0;
            }
        }
        n = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            return -1;
        }
        if (n < 0) {
            return 0;
        }
        c->rlen += (size_t)n;
        len = answer_len(c, &status);
        if (len < 0) {
            return -1;
        }
        if (len == 0) {
            continue;
        }
        if (c->rlen != (size_t)len) {
            return -1;             /* an answer nobody asked for */
        }
        c->rlen = 0;
        (*inflight)--;
        if (running) {
            g.done++;
            if (status < 200 || status > 299) {
                g.non2xx++;
            }
            if (g.n_lat < MAX_LAT) {
                g.lat[g.n_lat++] = (uint32_t)(now_us() - c->sent_at);
            }
            next_request(c);
            (*inflight)++;
        } else {
            c->req_len = c->req_off = 0;
            return 0;
        }
    }
}

int main(int argc, char **argv)
{
    struct epoll_event evs[256];
    struct conn *cs;
    int64_t t0, stop, deadline, t_end = 0;
    int ep, opt, inflight = 0, open_n = 0;
    bool running = true;

    while ((opt = getopt(argc, argv, "p:c:d:m:t:")) != -1) {
        switch (opt) {
        case 'p': g.port = atoi(optarg); break;
        case 'c': g.conns = atoi(optarg); break;
        case 'd': g.seconds = atoi(optarg); break;
        case 'm': g.batch = strcmp(optarg, "batch") == 0; break;
        case 't': g.topic = optarg; break;
        default:
            fprintf(stderr, "usage: http_load -p PORT [-c CONNS] [-d SECONDS] "
                            "[-m single|batch] [-t TOPIC]\n");
            return 2;
        }
    }
    if (g.port <= 0 || g.conns <= 0 || g.conns > 10000 || g.seconds <= 0) {
        fprintf(stderr, "http_load: -p PORT is required; -c 1..10000, -d > 0\n");
        return 2;
    }
    if (g.topic == NULL) {
        g.topic = g.batch ? "benchbatch" : "bench";
    }
    make_body();
    g.lat = malloc(sizeof(*g.lat) * MAX_LAT);
    cs = calloc((size_t)g.conns, sizeof(*cs));
    ep = epoll_create1(0);
    if (g.lat == NULL || cs == NULL || ep < 0) {
        die("setup");
    }
    for (int i = 0; i < g.conns; i++) {
        cs[i].req = malloc(512 + g.body_len);
        if (cs[i].req == NULL || open_conn(&cs[i], ep) < 0) {
            die("connect");
        }
        open_n++;
    }
    t0 = now_us();
    stop = t0 + (int64_t)g.seconds * 1000000;
    deadline = stop + 10 * 1000000;
    for (int i = 0; i < g.conns; i++) {
        next_request(&cs[i]);
        inflight++;
        if (send_some(&cs[i]) < 0) {
            die("send");
        }
    }
    while (open_n > 0 && (running || inflight > 0)) {
        int64_t now = now_us();
        int n, wait_ms;

        if (running && now >= stop) {
            running = false;
            t_end = now;
        }
        if (now >= deadline) {
            break;
        }
        wait_ms = (int)(((running ? stop : deadline) - now) / 1000) + 1;
        n = epoll_wait(ep, evs, 256, wait_ms);
        if (n < 0 && errno != EINTR) {
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;

            if (c->fd >= 0 && serve(c, running, &inflight) < 0) {
                if (running || c->req_len > 0) {
                    g.errors++;      /* not: an idle connection closed after the run */
                }
                if (c->req_len > 0) {
                    inflight--;
                }
                close(c->fd);
                c->fd = -1;
                open_n--;
            }
        }
    }
    if (running) {
        t_end = now_us();
    }
    qsort(g.lat, g.n_lat, sizeof(*g.lat), cmp_u32);
    printf("http_load mode=%s conns=%d seconds=%.2f requests=%llu requests_per_s=%.0f "
           "events_per_s=%.0f non2xx=%llu errors=%llu p50_ms=%.2f p99_ms=%.2f unanswered=%d\n",
           g.batch ? "batch" : "single", g.conns, (double)(t_end - t0) / 1e6,
           (unsigned long long)g.done, (double)g.done * 1e6 / (double)(t_end - t0),
           (double)g.done * (g.batch ? 100.0 : 1.0) * 1e6 / (double)(t_end - t0),
           (unsigned long long)g.non2xx, (unsigned long long)g.errors, pct(0.50), pct(0.99),
           inflight);
    for (int i = 0; i < g.conns; i++) {
        if (cs[i].fd >= 0) {
            close(cs[i].fd);
        }
        free(cs[i].req);
    }
    free(cs);
    free(g.lat);
    free(g.body);
    close(ep);
    return g.errors > 0 || g.non2xx > 0 ? 1 : 0;
}
