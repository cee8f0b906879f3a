/*
 * channels.c - who said what in a stereo call (DESIGN §13): the one
 * reading of LUCY_CALL_CHANNELS and a recording decoded per channel or
 * mixed as it says.
 *
 * Each channel's chunks, planned and labelled (channel and speaker role),
 * recognised and merged in time order, are plan.c's. Nothing here
 * knows jobs, the store or the call's person: a segment's speaker is the
 * role "me" / "them"; the API turns "them" into the call's person when it
 * reads a stored transcript.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "asr.h"

/* LUCY_CALL_CHANNELS's values (config.c's enum reads this list) and what
 * each means, row for row. */
const char *const lucy_asr_channels_names[] = {"me,them", "them,me", "mix", NULL};
static const struct lucy_asr_channels layouts[] = {
    {.split = 1, .roles = {"me", "them"}}, /* BCR: the phone's user on the left */
    {.split = 1, .roles = {"them", "me"}},
    {.split = 0, .roles = {NULL, NULL}},
};
_Static_assert(sizeof layouts / sizeof layouts[0] ==
                   sizeof lucy_asr_channels_names / sizeof lucy_asr_channels_names[0] - 1,
               "one layout per LUCY_CALL_CHANNELS value");

int lucy_asr_channels_parse(const char *value, struct lucy_asr_channels *out)
{
    *out = layouts[0];
    if (!value)
        return 0;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (strcmp(value, lucy_asr_channels_names[i]) == 0) {
            *out = layouts[i];
            return 0;
        }
    return LUCY_EINVAL;
}

int lucy_audio_decode_call_fd(int fd, const char *path, const struct lucy_asr_channels *ch,
                              struct lucy_audio *out, char *err, size_t errlen)
{
    if (ch->split)
        return lucy_audio_decode_split_fd(fd, path, out, err, errlen);
    memset(out, 0, sizeof *out);
    int rc = lucy_audio_decode_fd(fd, path, &out->channel[0], err, errlen);
    out->n_channels = rc == 0;
    return rc;
}
