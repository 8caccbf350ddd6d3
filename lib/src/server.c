/* SPDX-License-Identifier: MIT */
/*
 * server.c - configuration, and the server's life cycle:
 * new -> start -> (stop) -> wait -> free.
 */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define PS_DGRAM_POLICY_ALL (PS_DGRAM_REFUSE_SELF | PS_DGRAM_REFUSE_PORTS)

/* The defaults, for the whole of this library's ps_config (abi.c copies
 * out what the caller's struct holds). */
void ps__config_init(ps_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->backlog = 4096;
    cfg->workers = 0; /* by style, at ps_server_new (default_workers) */
    cfg->queue_capacity = 1024;
    cfg->policy = PS_POLICY_BLOCK;
    cfg->io_timeout_ms = -1;
    cfg->drain_timeout_ms = 5000;
    cfg->tcp_nodelay = true;
    cfg->read_budget = 65536;
    cfg->max_input = 1u << 20;
    cfg->out_high_water = 1u << 20;
    cfg->out_low_water = 256u << 10;
    cfg->max_output = 64u << 20;
    cfg->max_posts = 65536;
    cfg->connect_timeout_ms = 10000;
    cfg->max_datagram = 65535;
    cfg->dgram_reply_policy = PS_DGRAM_REFUSE_SELF | PS_DGRAM_REFUSE_PORTS;
    cfg->dgram_reply_rate = 1000;
    cfg->dgram_reply_burst = 1000;
    cfg->write_timeout_ms = 60000;
    cfg->header_timeout_ms = 5000;
    cfg->linger_ms = 2000;
    cfg->unix_owner = -1;
    cfg->unix_group = -1;
    cfg->log_level = PS_LOG_INFO;
    cfg->histograms = true;
}

int ps_config_add_listen(ps_config *cfg, const char *addr)
{
    if (cfg->nlisten >= PS_MAX_LISTEN)
        return -ENOSPC;
    cfg->listen[cfg->nlisten++] = addr;
    return 0;
}

/* Descriptor names for ps_config_add_systemd_listeners: string constants,
 * since ps_config holds pointers until ps_server_new copies them. */
static const char *const fd_names[PS_MAX_LISTEN] = {
    "fd:3",  "fd:4",  "fd:5",  "fd:6",  "fd:7",  "fd:8",  "fd:9",  "fd:10",
    "fd:11", "fd:12", "fd:13", "fd:14", "fd:15", "fd:16", "fd:17", "fd:18",
};

int ps_config_add_systemd_listeners(ps_config *cfg)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    char *end;
    long n, i;

    if (!pid || !fds)
        return 0;
    if (strtol(pid, &end, 10) != (long)getpid() || *end)
        return 0; /* meant for another process */
    n = strtol(fds, &end, 10);
    if (*end || n < 0)
        return -EINVAL;
    if (cfg->nlisten + n > PS_MAX_LISTEN)
        return -ENOSPC;
    for (i = 0; i < n; i++)
        cfg->listen[cfg->nlisten++] = fd_names[i];
    return (int)n;
}

static int check_range(ps_err *err, const char *field, long v, long lo, long hi)
{
    if (v < lo || v > hi)
        return ps__set_err(err, -EINVAL, "%s: %ld is out of range (%ld..%ld)", field, v, lo, hi);
    return 0;
}

static int validate_unix_perms(const ps_config *cfg, ps_err *err)
{
    if (cfg->unix_mode < 0 || cfg->unix_mode > 0777)
        return ps__set_err(err, -EINVAL,
                           "unix_mode: %#o is out of range (0 = as created, 01..0777)",
                           (unsigned)cfg->unix_mode);
    if (cfg->unix_owner < -1)
        return ps__set_err(err, -EINVAL, "unix_owner: %d is not a uid (-1 = leave)",
                           cfg->unix_owner);
    if (cfg->unix_group < -1)
        return ps__set_err(err, -EINVAL, "unix_group: %d is not a gid (-1 = leave)",
                           cfg->unix_group);
    return 0;
}

static int validate_handler(const ps_config *cfg, const ps_handler *h, ps_err *err)
{
    bool stream = cfg->udp_same_port;
    bool dgram = stream;
    int i;

    for (i = 0; i < cfg->nlisten; i++) {
        ps_listen_spec sp;
        if (ps__listen_spec(cfg->listen[i], &sp, NULL) < 0 || sp.fd >= 0)
            continue; /* fd:N: its type is known at start (listener.c checks it there) */
        if (sp.type == SOCK_DGRAM)
            dgram = true;
        else
            stream = true;
    }
    if (!h)
        return ps__set_err(err, -EINVAL, "handler: missing");
    if (h->serve && (h->on_data || h->on_open || h->on_close))
        return ps__set_err(err, -EINVAL,
                           "handler: set either serve (blocking) or on_data (event), not both");
    if (stream && !h->serve && !h->on_data)
        return ps__set_err(err, -EINVAL, "handler: needs serve (blocking) or on_data (event)");
    if (dgram && !h->on_datagram)
        return ps__set_err(err, -EINVAL, "handler: udp listeners need on_datagram");
    if (h->busy_len > 0 && !h->busy_msg)
        return ps__set_err(err, -EINVAL, "handler.busy_msg: NULL with busy_len %zu", h->busy_len);
    return 0;
}

/* cfg and h are full-size copies here (abi.c). */
int ps__config_validate(const ps_config *cfg, const ps_handler *h, ps_err *err)
{
    int i, rc;

    if (!cfg)
        return ps__set_err(err, -EINVAL, "config: missing");
    if (cfg->nlisten < 1 || cfg->nlisten > PS_MAX_LISTEN)
        return ps__set_err(err, -EINVAL, "listen: %d addresses given, need 1..%d", cfg->nlisten,
                           PS_MAX_LISTEN);
    for (i = 0; i < cfg->nlisten; i++) {
        ps_listen_spec sp;
        if ((rc = ps__listen_spec(cfg->listen[i], &sp, err)) < 0)
            return rc;
        if (sp.tls && !ps_tls_available())
            return ps__set_err(err, -ENOTSUP,
                               "listen: '%s': this libpoolsrv was built without TLS support",
                               cfg->listen[i]);
        if (sp.tls && !cfg->tls)
            return ps__set_err(err, -EINVAL, "listen: '%s': needs ps_config.tls (ps_tls_new)",
                               cfg->listen[i]);
    }
    if ((rc = check_range(err, "backlog", cfg->backlog, 1, 1 << 20)) < 0 ||
        (rc = check_range(err, "workers", cfg->workers, 0, 1024)) < 0 ||
        (rc = check_range(err, "queue_capacity", cfg->queue_capacity, 1, 1 << 20)) < 0 ||
        (rc = check_range(err, "policy", cfg->policy, PS_POLICY_BLOCK, PS_POLICY_REJECT)) < 0 ||
        (rc = check_range(err, "io_timeout_ms", cfg->io_timeout_ms, -1, INT32_MAX)) < 0 ||
        (rc = check_range(err, "drain_timeout_ms", cfg->drain_timeout_ms, -1, INT32_MAX)) < 0 ||
        (rc = check_range(err, "idle_timeout_ms", cfg->idle_timeout_ms, 0, INT32_MAX)) < 0 ||
        (rc = check_range(err, "first_byte_timeout_ms", cfg->first_byte_timeout_ms, 0,
                          INT32_MAX)) < 0 ||
        (rc = check_range(err, "request_timeout_ms", cfg->request_timeout_ms, 0, INT32_MAX)) < 0 ||
        (rc = check_range(err, "min_rate", cfg->min_rate, 0, INT32_MAX)) < 0 ||
        (rc = check_range(err, "write_timeout_ms", cfg->write_timeout_ms, 0, INT32_MAX)) < 0 ||
        (rc = check_range(err, "max_lifetime_ms", cfg->max_lifetime_ms, 0, INT32_MAX)) < 0 ||
        (rc = check_range(err, "header_timeout_ms", cfg->header_timeout_ms, 0, INT32_MAX)) < 0 ||
        (rc = check_range(err, "linger_ms", cfg->linger_ms, 0, INT32_MAX)) < 0 ||
        (rc = check_range(err, "max_connections", cfg->max_connections, 0, INT32_MAX)) < 0 ||
        (rc = check_range(err, "max_per_client", cfg->max_per_client, 0, INT32_MAX)) < 0 ||
        (rc = check_range(err, "dgram_reply_rate", cfg->dgram_reply_rate, 0, 1000000)) < 0 ||
        (rc = check_range(err, "dgram_reply_burst", cfg->dgram_reply_burst, 1, 1000000)) < 0 ||
        (rc = check_range(err, "log_level", cfg->log_level, PS_LOG_ERROR, PS_LOG_DEBUG)) < 0)
        return rc;
    if (cfg->dgram_reply_policy & ~PS_DGRAM_POLICY_ALL)
        return ps__set_err(err, -EINVAL, "dgram_reply_policy: unknown flags 0x%x",
                           cfg->dgram_reply_policy & ~PS_DGRAM_POLICY_ALL);
    if (cfg->read_budget < 1)
        return ps__set_err(err, -EINVAL, "read_budget: must be at least 1 byte");
    if (cfg->max_datagram < 1 || cfg->max_datagram > 65535)
        return ps__set_err(err, -EINVAL, "max_datagram: %zu is out of range (1..65535)",
                           cfg->max_datagram);
    if (cfg->max_input < 1)
        return ps__set_err(err, -EINVAL, "max_input: must be at least 1 byte");
    if ((rc = validate_unix_perms(cfg, err)) < 0)
        return rc;
    if (cfg->out_high_water < 1 || cfg->out_low_water > cfg->out_high_water)
        return ps__set_err(err, -EINVAL,
                           "out_low_water: %zu must not exceed out_high_water %zu (>= 1)",
                           cfg->out_low_water, cfg->out_high_water);
    if (cfg->max_posts < 1)
        return ps__set_err(err, -EINVAL, "max_posts: must be at least 1");
    if (cfg->max_output > 0 && cfg->max_output < cfg->out_high_water)
        return ps__set_err(err, -EINVAL,
                           "max_output: %zu must be 0 (no limit) or at least out_high_water %zu",
                           cfg->max_output, cfg->out_high_water);
    return validate_handler(cfg, h, err);
}

/* workers = 0: the event style gets one worker per CPU this process may
 * run on (its affinity mask, so taskset and cgroup cpusets count), as
 * nginx's worker_processes auto: a worker only ever waits for readiness or
 * runs a callback, so more workers than CPUs only add threads that wake,
 * migrate and take turns.  The blocking style gets PS_BLOCKING_WORKERS:
 * its workers wait inside handlers (on disks, databases, peers), and one
 * waiting serves nobody, so its pool sizes the requests in progress at
 * once, not the CPUs. */
static int default_workers(bool event_style)
{
    return event_style ? ps__cpu_count() : PS_BLOCKING_WORKERS;
}

ps_server *ps__server_new(const ps_config *cfg, const ps_handler *h, void *user, ps_err *err)
{
    ps_server *s;
    int i;

    if (ps__config_validate(cfg, h, err) < 0)
        return NULL;
    s = calloc(1, sizeof *s);
    if (!s) {
        ps__set_err(err, -ENOMEM, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->h = *h;
    s->user = user;
    s->event_style = h->on_data != NULL;
    if (s->cfg.workers == 0)
        s->cfg.workers = default_workers(s->event_style);
    s->wake_kind = s->bell_kind = PS_KIND_WAKE;
    s->epfd = s->cepfd = s->lepfd = s->bellfd = s->reserve_fd = -1;
    atomic_init(&s->emfile_listener, -1);
    for (i = 0; i < cfg->nlisten; i++) {
        s->listen_copy[i] = strdup(cfg->listen[i]);
        if (!s->listen_copy[i]) {
            ps__set_err(err, -ENOMEM, "out of memory");
            goto out_free_strings;
        }
        s->cfg.listen[i] = s->listen_copy[i];
    }
    s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wakefd < 0) {
        ps__set_err(err, -errno, "eventfd: %s", ps_strerror(errno));
        goto out_free_strings;
    }
    if (ps__registry_init(s) < 0 || ps__dgram_policy_new(s) < 0) {
        ps__set_err(err, -ENOMEM, "out of memory");
        ps__registry_fini(s);
        close(s->wakefd);
        goto out_free_strings;
    }
    pthread_mutex_init(&s->free_lock, NULL);
    pthread_mutex_init(&s->timer_lock, NULL);
    pthread_mutex_init(&s->bench_lock, NULL);
    pthread_cond_init(&s->bench_cv, NULL);
    {
        pthread_condattr_t ca; /* the standby's ticks use the monotonic clock */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->standby_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    s->timer_sleep_until = INT64_MAX;
    s->tls = ps__tls_ref(cfg->tls);
    return s;

out_free_strings:
    for (i = 0; i < PS_MAX_LISTEN; i++)
        free(s->listen_copy[i]);
    free(s);
    return NULL;
}

/* Join the threads and close descriptors.  A running reactor shuts the
 * queue down itself once drained; without one (a failed start) we do.
 * After a failed start (failed) the listeners taken over from a
 * predecessor are handed back open, once no thread can accept on them. */
static void teardown(ps_server *s, bool failed)
{
    if (s->q && !s->reactor_started)
        ps__queue_shutdown(s->q);
    if (s->reactor_started)
        pthread_join(s->reactor_tid, NULL);
    s->reactor_started = false;
    ps__pool_join(s);
    if (failed)
        ps__listeners_release_inherited(s);
    ps__listeners_close(s, 0);
    if (s->cepfd >= 0 && s->cepfd != s->epfd)
        close(s->cepfd);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->bellfd >= 0)
        close(s->bellfd);
    if (s->reserve_fd >= 0)
        close(s->reserve_fd);
    s->epfd = s->cepfd = s->lepfd = s->bellfd = s->reserve_fd = -1;
}

static int start_steps(ps_server *s, ps_err *err)
{
    int rc;

    s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!s->dgram_buf && s->h.on_datagram &&
        !(s->dgram_buf = malloc(s->cfg.max_datagram + 1)))
        return ps__set_err(err, -ENOMEM, "max_datagram: out of memory");
    if ((rc = ps__listeners_open(s, err)) < 0)
        return rc;
    ps__dgram_policy_start(s);
    if ((rc = ps__reactor_start(s, err)) < 0 || (rc = ps__pool_start(s, err)) < 0 ||
        (rc = ps__reactor_run_thread(s, err)) < 0)
        return rc;
    return 0;
}

static void free_workers(ps_server *s)
{
    int i;

    if (s->workers)
        for (i = 0; i < s->cfg.workers; i++)
            free(s->workers[i].scratch);
    free(s->workers);
    s->workers = NULL;
}

/* A failed start leaves the server as new: nothing running or open but
 * the sockets adopted from a predecessor (for a later start). */
static void undo_start(ps_server *s)
{
    teardown(s, true);
    s->nls = 0;
    ps__queue_free(s->q);
    s->q = NULL;
    free_workers(s);
    atomic_store(&s->stopping, false);
    atomic_store(&s->stop_now, false);
    atomic_store(&s->state, PS_STATE_NEW);
}

int ps_server_start(ps_server *s, ps_err *err)
{
    int expect = PS_STATE_NEW;
    int rc;

    if (!atomic_compare_exchange_strong(&s->state, &expect, PS_STATE_STARTING))
        return ps__set_err(err, -EALREADY, "server already started");
    if ((rc = start_steps(s, err)) < 0) {
        undo_start(s);
        return rc;
    }
    atomic_store_explicit(&s->state, PS_STATE_STARTED, memory_order_release);
    ps__log(s, PS_LOG_INFO, "serving on %s (%d workers, queue %d, %s style, policy %s)",
            s->ls[0].name, s->cfg.workers, s->cfg.queue_capacity,
            s->event_style ? "event" : "blocking",
            s->cfg.policy == PS_POLICY_BLOCK ? "block" : "reject");
    return 0;
}

static void request_stop(ps_server *s, bool now)
{
    if (!s || atomic_load(&s->state) == PS_STATE_NEW)
        return;
    if (now)
        atomic_store_explicit(&s->stop_now, true, memory_order_relaxed);
    atomic_store_explicit(&s->stopping, true, memory_order_release);
    ps__reactor_wake(s);
}

void ps_server_stop(ps_server *s)
{
    request_stop(s, false);
}

void ps_server_stop_now(ps_server *s)
{
    request_stop(s, true);
}

int ps_server_wait(ps_server *s)
{
    int st = atomic_load(&s->state);

    if (st == PS_STATE_NEW || st == PS_STATE_STARTING)
        return -EINVAL;
    if (st == PS_STATE_JOINED)
        return 0;
    teardown(s, false);
    atomic_store(&s->state, PS_STATE_JOINED);
    return 0;
}

int ps_server_run(ps_server *s, ps_err *err)
{
    int rc = ps_server_start(s, err);

    return rc < 0 ? rc : ps_server_wait(s);
}

void ps_server_free(ps_server *s)
{
    int i;

    if (!s)
        return;
    if (atomic_load(&s->state) == PS_STATE_STARTED) {
        ps_server_stop(s);
        ps_server_wait(s);
    }
    ps__queue_free(s->q);
    free_workers(s);
    free(s->dgram_buf);
    ps__dgram_policy_free(s);
    ps__handoff_free(s);
    for (i = 0; i < PS_MAX_LISTEN; i++)
        free(s->listen_copy[i]);
    close(s->wakefd);
    ps__registry_fini(s);
    ps__conns_fini(s);
    ps__timers_fini(s);
    ps_tls_free(s->tls);
    pthread_mutex_destroy(&s->free_lock);
    pthread_mutex_destroy(&s->timer_lock);
    pthread_cond_destroy(&s->standby_cv);
    pthread_cond_destroy(&s->bench_cv);
    pthread_mutex_destroy(&s->bench_lock);
    free(s);
}

/* Listeners may be read once start has finished (acquire pairs with the
 * release store of STARTED). */
static bool listeners_ready(const ps_server *s)
{
    int st = atomic_load_explicit(&((ps_server *)s)->state, memory_order_acquire);

    return st == PS_STATE_STARTED || st == PS_STATE_JOINED;
}

int ps_server_nlisteners(const ps_server *s)
{
    return listeners_ready(s) ? s->nls : 0;
}

int ps_server_listen_addr(const ps_server *s, int i, struct sockaddr_storage *ss, socklen_t *len)
{
    if (!listeners_ready(s) || i < 0 || i >= s->nls)
        return -EINVAL;
    memcpy(ss, &s->ls[i].addr, s->ls[i].len);
    *len = s->ls[i].len;
    return 0;
}

const char *ps_server_listen_name(const ps_server *s, int i)
{
    if (!listeners_ready(s) || i < 0 || i >= s->nls)
        return NULL;
    return s->ls[i].name;
}

int ps_server_port(const ps_server *s, int i)
{
    struct sockaddr_storage ss;
    socklen_t len;

    if (ps_server_listen_addr(s, i, &ss, &len) < 0)
        return -EINVAL;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EINVAL;
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void add_counters(ps_stats *o, const ps_counters *c)
{
    o->accepted += LOAD(c->accepted);
    o->rejected += LOAD(c->rejected);
    o->limit_refused += LOAD(c->limit_refused);
    o->accept_errors += LOAD(c->accept_errors);
    o->accept_emfile += LOAD(c->accept_emfile);
    o->queue_full_waits += LOAD(c->queue_full_waits);
    o->closed += LOAD(c->closed);
    o->bytes_in += LOAD(c->bytes_in);
    o->bytes_out += LOAD(c->bytes_out);
    o->timeouts += LOAD(c->timeouts);
    o->io_errors += LOAD(c->io_errors);
    o->forced_closes += LOAD(c->forced_closes);
    o->datagrams += LOAD(c->datagrams);
    o->datagrams_dropped += LOAD(c->datagrams_dropped);
    o->datagrams_truncated += LOAD(c->datagrams_truncated);
    o->replies_refused_self += LOAD(c->replies_refused_self);
    o->replies_refused_port += LOAD(c->replies_refused_port);
    o->replies_refused_rate += LOAD(c->replies_refused_rate);
    o->proxy_errors += LOAD(c->proxy_errors);
    o->output_closes += LOAD(c->output_closes);
    o->tls_handshakes += LOAD(c->tls_handshakes);
    o->tls_resumed += LOAD(c->tls_resumed);
    o->tls_errors += LOAD(c->tls_errors);
}

static void add_hist(ps_histogram *o, const ps_hist *h)
{
    int i;

    for (i = 0; i < PS_HIST_BUCKETS; i++) {
        uint64_t n = LOAD(h->bucket[i]);
        o->bucket[i] += n;
        o->count += n;
    }
    o->sum_ns += LOAD(h->sum_ns);
}

void ps__server_stats(const ps_server *cs, ps_stats *out)
{
    ps_server *s = (ps_server *)cs; /* locks are taken; the server is not changed */
    int i;

    memset(out, 0, sizeof *out);
    add_counters(out, &s->rst);
    if (listeners_ready(s) && s->workers) /* the array exists once started */
        for (i = 0; i < s->cfg.workers; i++) {
            const struct ps_worker *w = &s->workers[i];
            add_counters(out, &w->st);
            add_hist(&out->queue_wait, &w->queue_wait);
            add_hist(&out->turn_time, &w->turn_time);
            add_hist(&out->lifetime, &w->lifetime);
        }
    out->workers = (uint64_t)s->cfg.workers;
    out->queue_capacity = (uint64_t)s->cfg.queue_capacity;
    out->connects = atomic_load_explicit(&s->connects, memory_order_relaxed);
    out->connect_errors = atomic_load_explicit(&s->connect_errors, memory_order_relaxed);
    pthread_mutex_lock(&s->reg_lock);
    out->active = s->reg_count;
    pthread_mutex_unlock(&s->reg_lock);
    if (listeners_ready(s) && s->q) {
        out->queued = ps__queue_len(s->q);
        out->queue_high_water = ps__queue_high_water(s->q);
    }
}
