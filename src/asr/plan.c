/*
 * plan.c - what of a decoded call is recognised, and by whom (DESIGN §13):
 * each channel cut at its pauses into chunks and labelled (the plan), the
 * chunks recognised through a hook on one or several lanes, the pieces
 * merged in time order.
 *
 * Lanes: pocketsphinx recognises on one core, so a long call takes as long
 * as its speech whatever the machine; with LUCY_ASR_THREADS lanes, each an
 * engine instance on its own thread, it takes that divided by the lanes.
 * Each lane gets a contiguous run of chunks (about the same audio each,
 * counting only chunks still to recognise), so within a run every chunk
 * continues its engine's stream (the cepstral mean carries on) as on one
 * lane; only a run's first chunk starts afresh. Chunks are not handed out
 * one by one: adjacent chunks on different instances would each start
 * afresh, which costs accuracy (docs/benchmarks.md).
 *
 * The hook (the worker's takes chunks from checkpoints and commits the
 * ones it recognises; `lucy transcribe`'s recognises every one) sees which
 * lane calls it, so it uses that lane's engine instance. Nothing here
 * knows jobs, the store or the call's person.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../error.h"
#include "asr.h"

/* The value of "key:  N kB" in /proc/meminfo, in MB; -1 unknown. */
static long meminfo_mb(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            kb = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb / 1024;
}

/* The first number in file (a cgroup's memory.max is "max" when not
 * limited: -1), in bytes; -1 unknown. */
static long long file_number(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char buf[64] = "";
    long long v = -1;
    if (fgets(buf, sizeof buf, f) && buf[0] >= '0' && buf[0] <= '9')
        v = strtoll(buf, NULL, 10);
    fclose(f);
    return v;
}

/* What this process's cgroup (v2) still allows, in MB; -1 unknown or no
 * limit. */
static long cgroup_room_mb(void)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -1;
    char line[512], path[640];
    long room = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
        long long max = file_number(path);
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", line + 3);
        long long cur = file_number(path);
        if (max >= 0 && cur >= 0)
            room = max > cur ? (long)((max - cur) >> 20) : 0;
    }
    fclose(f);
    return room;
}

/* What RLIMIT_AS leaves of the address space, in MB; -1 no limit. */
static long address_room_mb(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return -1;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return -1;
    unsigned long pages = 0;
    int got = fscanf(f, "%lu", &pages);
    fclose(f);
    if (got != 1)
        return -1;
    unsigned long long used = (unsigned long long)pages * (unsigned long long)sysconf(_SC_PAGESIZE);
    return rl.rlim_cur > used ? (long)((rl.rlim_cur - used) >> 20) : 0;
}

int lucy_asr_room_for_lane(char *why, size_t len)
{
    const struct {
        long mb, need;
        const char *what;
    } limits[] = {
        {meminfo_mb("MemAvailable"), LUCY_ASR_LANE_ROOM_MB, "available (MemAvailable)"},
        {cgroup_room_mb(), LUCY_ASR_LANE_ROOM_MB, "left under the cgroup's memory.max"},
        {address_room_mb(), LUCY_ASR_LANE_VM_MB, "of address space left under RLIMIT_AS"},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        if (limits[i].mb >= 0 && limits[i].mb < limits[i].need) {
            snprintf(why, len, "only %ld MB %s, a lane needs %ld MB", limits[i].mb, limits[i].what,
                     limits[i].need);
            return 0;
        }
    return 1;
}

int lucy_asr_lanes(const struct lucy_asr_engine *e, const struct lucy_asr_options *opt,
                   double pending_s, int chunk_s)
{
    if (!e || !e->one_core)
        return 1;
    long n = opt && opt->threads > 0 ? opt->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (n > LUCY_ASR_MAX_LANES)
        n = LUCY_ASR_MAX_LANES;
    if (chunk_s > 0 && pending_s / chunk_s < (double)n)
        n = (long)(pending_s / chunk_s);
    return n < 1 ? 1 : (int)n;
}

int lucy_asr_plan_make(const struct lucy_audio *a, const struct lucy_asr_channels *ch,
                       int max_chunk_s, struct lucy_asr_plan *plan, char *err, size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    plan->audio = a;
    /* Two channels only when they carry two signals (the decoder says so);
     * one channel is mono, mixed or identical: no channel, no speaker. */
    int per_channel = a->n_channels == 2;
    for (int k = 0; k < a->n_channels && k < LUCY_AUDIO_MAX_CHANNELS; k++) {
        struct lucy_asr_track *t = &plan->track[plan->n_tracks++];
        t->pcm = &a->channel[k];
        t->channel = per_channel ? k : -1;
        t->speaker = per_channel ? ch->roles[k] : NULL;
        if (max_chunk_s > 0) {
            int rc = lucy_asr_chunks(t->pcm, max_chunk_s, &t->chunks, &t->n_chunks, err, errlen);
            if (rc)
                return rc;
        } else if (t->pcm->n_samples > 0) {
            /* The whole channel at once, silence included (`--chunk-s 0`). */
            t->chunks = malloc(sizeof *t->chunks);
            if (!t->chunks)
                return LUCY_ENOMEM;
            t->chunks[0] = (struct lucy_chunk){.first_sample = 0, .n_samples = t->pcm->n_samples};
            t->n_chunks = 1;
        }
        for (size_t i = 0; i < t->n_chunks; i++)
            plan->total_s += (double)t->chunks[i].n_samples / LUCY_ASR_SAMPLE_RATE;
        plan->n_chunks += (int)t->n_chunks;
    }
    return 0;
}

void lucy_asr_plan_free(struct lucy_asr_plan *plan)
{
    if (!plan)
        return;
    for (int k = 0; k < LUCY_AUDIO_MAX_CHANNELS; k++)
        free(plan->track[k].chunks);
    memset(plan, 0, sizeof *plan);
}

int lucy_asr_recognise_chunk(const struct lucy_asr_engine *e, void *state,
                             const struct lucy_asr_track *t, const struct lucy_chunk *c,
                             int continues, struct lucy_transcript *piece, char *err, size_t errlen)
{
    struct lucy_pcm view = lucy_pcm_view(t->pcm, c);
    view.continues = continues;
    struct lucy_transcript got = {0};
    int rc = lucy_asr_transcribe(e, state, &view, &got, err, errlen);
    if (rc == 0)
        rc = lucy_transcript_append(
            piece, &got, (int64_t)c->first_sample * 1000 / LUCY_ASR_SAMPLE_RATE, t->channel, NULL);
    if (rc == 0) {
        snprintf(piece->engine, sizeof piece->engine, "%s", got.engine);
        snprintf(piece->model, sizeof piece->model, "%s", got.model);
        snprintf(piece->language, sizeof piece->language, "%s", got.language);
        piece->wall_s = got.wall_s;
    }
    lucy_transcript_free(&got);
    return rc;
}

/* One chunk of the plan, in plan order (track by track), and its piece. */
struct item {
    const struct lucy_asr_track *t;
    const struct lucy_chunk *c;
    int ready; /* run->ready said so: weighs nothing when sharing out */
    int fresh; /* the hook recognised it now */
    int done;  /* piece holds its result */
    struct lucy_transcript piece;
};

/* One lane: items [from, to) through the hook, in order. */
struct lane {
    const struct lucy_asr_run *run;
    struct item *items;
    size_t from, to;
    int index;
    atomic_int *stop; /* set by the first lane that fails */
    double wall_s;    /* engine time of the chunks it recognised */
    int rc;
    char err[1024];
    pthread_t tid;
    int started; /* tid is a thread to join */
};

static void *lane_main(void *arg)
{
    struct lane *l = arg;
    for (size_t i = l->from; i < l->to && !atomic_load(l->stop); i++) {
        struct item *it = &l->items[i];
        /* The lane's engine continues the stream only from the chunk it
         * recognised just before on the same track (not across one taken
         * from a checkpoint, another channel or another lane). */
        const struct item *prev = i > l->from ? &l->items[i - 1] : NULL;
        int continues = prev && prev->t == it->t && prev->fresh && prev->c + 1 == it->c;
        l->rc = l->run->fn(l->run->arg, l->index, it->t, it->c, continues, &it->piece, &it->fresh,
                           l->err, sizeof l->err);
        if (l->rc) {
            atomic_store(l->stop, 1);
            break;
        }
        it->done = 1;
        if (it->fresh)
            l->wall_s += it->piece.wall_s;
    }
    return NULL;
}

/* Shares items out among at most n_lanes lanes: contiguous runs of about
 * equal audio still to recognise. Returns the lanes used (>= 1 when there
 * are items); lane k gets [lanes[k].from, lanes[k].to). */
static int share_out(struct item *items, size_t n, int n_lanes, struct lane *lanes)
{
    double pending = 0;
    size_t n_pending = 0;
    for (size_t i = 0; i < n; i++)
        if (!items[i].ready) {
            pending += (double)items[i].c->n_samples;
            n_pending++;
        }
    if (n_lanes > (int)n_pending)
        n_lanes = n_pending > 0 ? (int)n_pending : 1;
    double share = pending / n_lanes, acc = 0;
    int k = 0;
    lanes[0].from = 0;
    for (size_t i = 0; i < n; i++) {
        /* A lane is full once it holds its share; the last takes the rest. */
        if (k < n_lanes - 1 && acc >= share * (k + 1) && !items[i].ready) {
            lanes[k].to = i;
            lanes[++k].from = i;
        }
        if (!items[i].ready)
            acc += (double)items[i].c->n_samples;
    }
    lanes[k].to = n;
    return k + 1;
}

/* Merges the recognised pieces in plan order into out (see
 * lucy_asr_transcribe_plan); lanes_wall_s: the busiest lane's engine time. */
static int merge(const struct lucy_asr_plan *plan, const char *engine, struct item *items, size_t n,
                 double lanes_wall_s, struct lucy_transcript *out)
{
    double wall_s = lanes_wall_s;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct item *it = &items[i];
        /* What ran now names the model; a resumed chunk only when nothing
         * ran yet. */
        if (it->piece.model[0] && (it->fresh || !out->model[0]))
            snprintf(out->model, sizeof out->model, "%s", it->piece.model);
        if (it->fresh && it->piece.language[0])
            snprintf(out->language, sizeof out->language, "%s", it->piece.language);
        if (!it->fresh) /* its time from the run that recognised it */
            wall_s += it->piece.wall_s;
        rc = lucy_transcript_append(out, &it->piece, 0, it->t->channel, it->t->speaker);
    }
    if (rc)
        return rc;
    lucy_transcript_sort(out);
    if ((rc = lucy_transcript_join(out)) != 0)
        return rc;
    /* Every channel has the same duration and truncation (the decoder sets
     * them on each). */
    const struct lucy_pcm *first = &plan->audio->channel[0];
    snprintf(out->engine, sizeof out->engine, "%s", engine ? engine : "");
    if (!out->language[0])
        snprintf(out->language, sizeof out->language, "en");
    out->audio_s = first->duration_s;
    out->wall_s = wall_s;
    out->rtf = first->duration_s > 0 ? wall_s / first->duration_s : 0;
    out->truncated = first->truncated;
    out->source_duration_s = first->source_duration_s;
    out->channels = plan->audio->n_channels;
    return 0;
}

int lucy_asr_transcribe_plan(const struct lucy_asr_plan *plan, const char *engine,
                             const struct lucy_asr_run *run, struct lucy_transcript *out, char *err,
                             size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t n = 0;
    for (int k = 0; k < plan->n_tracks; k++)
        n += plan->track[k].n_chunks;
    struct item *items = calloc(n ? n : 1, sizeof *items);
    if (!items)
        return LUCY_ENOMEM;
    size_t at = 0;
    for (int k = 0; k < plan->n_tracks; k++)
        for (size_t i = 0; i < plan->track[k].n_chunks; i++, at++) {
            items[at].t = &plan->track[k];
            items[at].c = &plan->track[k].chunks[i];
            items[at].ready = run->ready && run->ready(run->arg, items[at].t, items[at].c);
        }

    atomic_int stop = 0;
    struct lane lanes[LUCY_ASR_MAX_LANES] = {0};
    int want = run->n_lanes < 1                    ? 1
               : run->n_lanes > LUCY_ASR_MAX_LANES ? LUCY_ASR_MAX_LANES
                                                   : run->n_lanes;
    int n_lanes = share_out(items, n, want, lanes);
    int rc = 0;
    for (int k = 0; k < n_lanes; k++) {
        lanes[k] = (struct lane){.run = run,
                                 .items = items,
                                 .from = lanes[k].from,
                                 .to = lanes[k].to,
                                 .index = k,
                                 .stop = &stop};
        if (k > 0 && pthread_create(&lanes[k].tid, NULL, lane_main, &lanes[k]) == 0)
            lanes[k].started = 1;
        else if (k > 0) { /* no thread: this lane's chunks cannot run */
            lanes[k].rc = LUCY_ENOMEM;
            snprintf(lanes[k].err, sizeof lanes[k].err, "no thread for recognition lane %d", k);
            atomic_store(&stop, 1);
        }
    }
    lane_main(&lanes[0]);
    for (int k = 1; k < n_lanes; k++)
        if (lanes[k].started)
            pthread_join(lanes[k].tid, NULL);
    for (int k = 0; k < n_lanes && rc == 0; k++)
        if (lanes[k].rc) {
            rc = lanes[k].rc;
            snprintf(err, errlen, "%s", lanes[k].err);
        }
    double lanes_wall_s = 0;
    for (int k = 0; k < n_lanes; k++)
        if (lanes[k].wall_s > lanes_wall_s)
            lanes_wall_s = lanes[k].wall_s;
    if (rc == 0)
        rc = merge(plan, engine, items, n, lanes_wall_s, out);
    for (size_t i = 0; i < n; i++)
        lucy_transcript_free(&items[i].piece);
    free(items);
    return rc;
}
