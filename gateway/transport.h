/*
 * The transport table (DESIGN.md principle 4): how a protocol session reaches its peer
 * without knowing whether the bytes travel over a TCP socket (gateway/tcp.c) or, later,
 * a WebSocket. A session is driven by its transport through struct sl_transport_events
 * (bytes arrived, output drained, peer gone) and talks back through struct
 * sl_transport_ops (write, write a shared buffer, pause reading, close).
 *
 * Thread affinity: both tables are used on the core loop thread only.
 */
#ifndef SL_TRANSPORT_H
#define SL_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;
struct sl_buf;

struct sl_transport_ops {
    /* Queue len bytes (copied). 0, or -ENOMEM / -EPIPE (closed). */
    int (*write)(void *conn, const void *data, size_t len);
    /* Queue len bytes at buf->data + off without copying: takes a new reference on buf,
     * dropped once the bytes are sent or the connection goes. 0 or -errno. */
    int (*write_buf)(void *conn, struct sl_buf *buf, size_t off, size_t len);
    /* Bytes queued and not yet handed to the kernel. */
    size_t (*pending)(void *conn);
    /* Stop (true) or resume (false) reading from the peer. */
    void (*pause_read)(void *conn, bool paused);
    /* Close: flush what is queued first (best effort, bounded) when flush is true. The
     * transport calls events->closed afterwards (deferred, never inside this call)
     * unless the connection was rebound to NULL first. */
    void (*close)(void *conn, bool flush);
    /* Route this connection's future events to another session object (NULL: no more
     * events at all, not even `closed`). Used when a reconnecting client takes over a
     * stored session. */
    void (*rebind)(void *conn, void *sess);
    /* The peer's address as text ("127.0.0.1:5000"), valid while the connection is. */
    const char *(*peer)(void *conn);
};

/* What a transport calls on its session. */
struct sl_transport_events {
    /* Bytes arrived in `in`: the session removes what it consumed (whole packets) and
     * leaves a partial packet there for the next call. */
    void (*data)(void *sess, struct evbuffer *in);
    /* The output fell below the low-water mark after having been above the high one. */
    void (*drained)(void *sess);
    /* The connection is gone (peer closed, error, or after close()). The session must
     * not use its transport afterwards. Called exactly once unless detached. */
    void (*closed)(void *sess);
};

/* A connection as the session sees it. */
struct sl_transport {
    const struct sl_transport_ops *ops;
    void *conn;
};

/* Convenience wrappers (inline, loop thread). */
static inline int sl_transport_write(const struct sl_transport *t, const void *d, size_t n)
{
    return t->ops->write(t->conn, d, n);
}

static inline size_t sl_transport_pending(const struct sl_transport *t)
{
    return t->ops->pending(t->conn);
}

#endif
