/* SPDX-License-Identifier: MIT */
/*
 * trials.c - the event-style pool's floor of pollers, set by trying: how
 * many workers at least may wait on the connections' set (pool.c keeps
 * the allowance above it by its own rules).
 *
 * The allowance follows saturation: one poller more while the pollers
 * never find the set empty, one fewer each time one does.  Under echo load
 * that keeps one poller, as it should: the clients take what it leaves of
 * the two cores (0-2% idle), and a second poller only competes with them
 * (the same throughput, twice the p99).  Under keep-alive HTTPS it keeps
 * one too, but there a core sat 11% idle: the set is empty for a moment
 * between bursts, though a second poller would have had work.  So the pool
 * tries, as .NET's thread pool sizes itself by its throughput: now and
 * then it counts the bytes its connections move in windows of
 * PS_TRIAL_WINDOW_NS, alternately with its floor of pollers and with one
 * more (or one fewer, when it holds more), and keeps the trial only if it
 * moved PS_TRIAL_GAIN_PCT more (or lost less than PS_TRIAL_LOSS_PCT).  A
 * trial of one more needs PS_TRIAL_IDLE_PCT of the CPUs' time idle since
 * the last (/proc/stat): with none spare, the extra poller would only take
 * a core from the clients.  Each failed trial doubles the wait before the
 * next, from PS_TRIAL_GAP_MIN_NS to PS_TRIAL_GAP_MAX_NS.  A step runs at
 * the end of a turn once due (a clock comparison per turn; ctl_next_ns),
 * by one worker at a time (ctl_busy); between trials a step every window
 * keeps the floor, which lapses when they stop (an idle pool, ps__floor_held).
 * Without /proc/stat, no trial adds a poller. */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>

#define PS_TRIAL_WINDOW_NS 50000000LL
#define PS_TRIAL_SETTLE_NS 2000000LL /* for the standby to join, or a poller to leave */
#define PS_TRIAL_PHASES 4            /* windows: the floor, the trial, the floor, the trial */
#define PS_TRIAL_GAP_MIN_NS 1000000000LL
#define PS_TRIAL_GAP_MAX_NS 8000000000LL
#define PS_TRIAL_GAIN_PCT 5
#define PS_TRIAL_LOSS_PCT 2
#define PS_TRIAL_IDLE_PCT 5 /* of the CPUs' time idle, for a trial of one poller more */

enum { CTL_WAIT, CTL_SETTLE, CTL_MEASURE };

static uint64_t bytes_moved(const ps_server *s)
{
    uint64_t n = 0;
    int i;

    for (i = 0; i < s->cfg.workers; i++)
        n += atomic_load_explicit(&s->workers[i].st.bytes_in, memory_order_relaxed) +
             atomic_load_explicit(&s->workers[i].st.bytes_out, memory_order_relaxed);
    return n;
}

/* The floor becomes f, and the allowance at least f.  A lower floor
 * lowers the allowance to f at once, since a trial's window must run the
 * count it tests (saturation raises it again within a tick), unless long
 * turns hold it up: their hold stands.  A raise opens a poller's place,
 * which the standby takes at once rather than at its next tick. */
void ps__pool_set_floor(ps_server *s, int f)
{
    int old = atomic_exchange(&s->poll_floor, f), a = atomic_load(&s->poll_allowed);

    if (a < f || (f < old && ps__long_hold_left(s, ps__now_ns()) <= 0))
        atomic_store(&s->poll_allowed, f);
    if (f > old) {
        pthread_mutex_lock(&s->bench_lock);
        s->join_poll = true;
        pthread_cond_signal(&s->standby_cv);
        pthread_mutex_unlock(&s->bench_lock);
    }
}

/* The floor, while trials keep it (else 1, taking it back: the steps
 * stopped with the turns).  *hold: ms until a poller should look again. */
int ps__floor_held(ps_server *s, int64_t now, int *hold)
{
    int f = atomic_load_explicit(&s->poll_floor, memory_order_relaxed);
    int64_t left;

    if (f <= 1)
        return 1;
    left =
        atomic_load_explicit(&s->ctl_last_ns, memory_order_relaxed) + 3 * PS_TRIAL_WINDOW_NS - now;
    if (left > 0) {
        *hold = (int)(left / 1000000) + 1;
        return f;
    }
    atomic_compare_exchange_strong(&s->poll_floor, &f, 1);
    return 1;
}

/* Wait gap ns before the next trial.  The CPUs' idle time is counted from
 * the wait's start: read now, unless the caller just did (looked). */
static void trial_wait(ps_server *s, int64_t now, int64_t gap, bool looked)
{
    s->ctl_state = CTL_WAIT;
    s->ctl_t0 = now + gap; /* in CTL_WAIT: when the wait ends */
    if (!looked)
        s->ctl_looked = ps__cpu_idle(&s->ctl_idle0, &s->ctl_total0) == 0;
}

/* Did the CPUs we may run on spend PS_TRIAL_IDLE_PCT of their time idle
 * since the wait began?  Else a poller more has no core to run on: under
 * echo load the clients take what the one poller leaves (0-2% idle), and
 * trying a second there costs the p99 of its windows; keep-alive HTTPS
 * left 11% idle with one poller.  The reading stays, as the start of the
 * next wait's count. */
static bool cpus_to_spare(ps_server *s)
{
    uint64_t idle0 = s->ctl_idle0, total0 = s->ctl_total0;
    bool looked = s->ctl_looked;

    s->ctl_looked = ps__cpu_idle(&s->ctl_idle0, &s->ctl_total0) == 0;
    return looked && s->ctl_looked && s->ctl_total0 > total0 &&
           (s->ctl_idle0 - idle0) * 100 >= (s->ctl_total0 - total0) * PS_TRIAL_IDLE_PCT;
}

/* The next window: set its floor (even phases the floor the trial left,
 * odd ones the trial's) and let it settle before it counts. */
static void trial_phase(ps_server *s, int phase)
{
    s->ctl_phase = phase;
    s->ctl_state = CTL_SETTLE;
    ps__pool_set_floor(s, phase % 2 ? s->ctl_to : s->ctl_from);
}

/* Whether to keep a trial from floor `from` to `to`, given the bytes moved
 * in the floor's windows [0] and the trial's [1], and their lengths in ns. */
bool ps__trial_kept(int from, int to, const uint64_t bytes[2], const int64_t ns[2])
{
    /* rates in bytes per ms; + 1 ms keeps an empty window from dividing by 0 */
    uint64_t b = bytes[0] / (uint64_t)(ns[0] / 1000000 + 1);
    uint64_t t = bytes[1] / (uint64_t)(ns[1] / 1000000 + 1);

    if (to > from)
        return t * 100 > b * (100 + PS_TRIAL_GAIN_PCT);
    return t * 100 >= b * (100 - PS_TRIAL_LOSS_PCT);
}

/* The trial is over: keep its floor or go back. */
static void trial_end(ps_server *s, int64_t now)
{
    atomic_fetch_add_explicit(&s->ctl_ended, 1, memory_order_relaxed);
    if (ps__trial_kept(s->ctl_from, s->ctl_to, s->ctl_bytes, s->ctl_ns)) {
        s->ctl_gap_ns = PS_TRIAL_GAP_MIN_NS;
    } else {
        if (atomic_load(&s->poll_floor) != s->ctl_from)
            ps__pool_set_floor(s, s->ctl_from);
        if (s->ctl_gap_ns < PS_TRIAL_GAP_MAX_NS)
            s->ctl_gap_ns *= 2;
    }
    trial_wait(s, now, s->ctl_gap_ns, false);
}

/* The floor a trial from f tries: one up or one down, by turns from a
 * middle floor. */
static int trial_target(ps_server *s, int f)
{
    if (f >= s->ctl_max)
        return f - 1;
    if (f == 1)
        return f + 1;
    s->ctl_up = !s->ctl_up;
    return s->ctl_up ? f + 1 : f - 1;
}

static int64_t trial_step_locked(ps_server *s, int64_t now, int64_t last)
{
    int f = atomic_load(&s->poll_floor);
    int i;

    if (now - last > 2 * PS_TRIAL_WINDOW_NS) { /* no turn for a while: the
                                                  windows held idle time */
        if (s->ctl_state != CTL_WAIT && f != s->ctl_from)
            ps__pool_set_floor(s, s->ctl_from); /* the trial is void */
        s->ctl_gap_ns = PS_TRIAL_GAP_MIN_NS;
        trial_wait(s, now, PS_TRIAL_GAP_MIN_NS, false);
        return now + PS_TRIAL_WINDOW_NS;
    }
    switch (s->ctl_state) {
    case CTL_WAIT:
        if (now < s->ctl_t0) /* steps go on meanwhile: they keep the floor */
            return s->ctl_t0 < now + PS_TRIAL_WINDOW_NS ? s->ctl_t0 : now + PS_TRIAL_WINDOW_NS;
        s->ctl_from = f;
        s->ctl_to = trial_target(s, f);
        if (s->ctl_to > f && !cpus_to_spare(s)) {
            trial_wait(s, now, s->ctl_gap_ns, true);
            return now + PS_TRIAL_WINDOW_NS;
        }
        for (i = 0; i < 2; i++)
            s->ctl_bytes[i] = s->ctl_ns[i] = 0;
        atomic_fetch_add_explicit(&s->ctl_trials, 1, memory_order_relaxed);
        trial_phase(s, 0);
        return now + PS_TRIAL_SETTLE_NS;
    case CTL_SETTLE:
        s->ctl_state = CTL_MEASURE;
        s->ctl_t0 = now;
        s->ctl_bytes0 = bytes_moved(s);
        return now + PS_TRIAL_WINDOW_NS;
    default:
        i = s->ctl_phase % 2;
        s->ctl_bytes[i] += bytes_moved(s) - s->ctl_bytes0;
        s->ctl_ns[i] += now - s->ctl_t0;
        if (s->ctl_phase + 1 < PS_TRIAL_PHASES) {
            trial_phase(s, s->ctl_phase + 1);
            return now + PS_TRIAL_SETTLE_NS;
        }
        trial_end(s, now);
        return now + PS_TRIAL_WINDOW_NS;
    }
}

void ps__trial_step(ps_server *s, int64_t now)
{
    int64_t next;

    if (atomic_exchange_explicit(&s->ctl_busy, true, memory_order_acquire))
        return;
    next = trial_step_locked(s, now, atomic_load_explicit(&s->ctl_last_ns, memory_order_relaxed));
    atomic_store_explicit(&s->ctl_last_ns, now, memory_order_relaxed);
    atomic_store_explicit(&s->ctl_next_ns, next, memory_order_relaxed);
    atomic_store_explicit(&s->ctl_busy, false, memory_order_release);
}

/* Before the workers start.  Trials need turns timed (run_item: event
 * style, more than one worker) and a second CPU to be worth it. */
void ps__trials_init(ps_server *s)
{
    atomic_store(&s->poll_floor, 1);
    s->ctl_max = ps__cpu_count() < s->cfg.workers ? ps__cpu_count() : s->cfg.workers;
    s->ctl_gap_ns = PS_TRIAL_GAP_MIN_NS;
    trial_wait(s, 0, PS_TRIAL_GAP_MIN_NS, false);
    atomic_store(&s->ctl_next_ns, s->event_style && s->ctl_max > 1 ? 0 : INT64_MAX);
}
