/*
 * media.c - `lucy doctor`'s media check: the media module (src/media)
 * loads, and the configured speech engine can run (lucy_asr_check: names,
 * URL, model path). Nothing is transcribed and no model is loaded; the
 * module is given back when the command exits.
 */
#include <jansson.h>

#include "../asr/asr.h"
#include "../config.h"
#include "../media/media.h"
#include "doctor.h"

void lucy_doctor_check_media(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    char err[1024] = "";
    const struct lucy_media *m = lucy_media_hold(err, sizeof err);
    json_object_set_new(r->details, "loaded", json_boolean(m != NULL));
    if (!m) {
        json_object_set_new(r->details, "error", json_string(err));
        lucy_doctor_say(r, "%s", err);
        lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_MEDIA_MISSING);
        return;
    }
    struct lucy_asr_options opt = {
        .engine = d->cfg->asr_engine,
        .whisper_model = d->cfg->whisper_model,
        .url = d->cfg->asr_url,
        .threads = d->cfg->asr_threads,
    };
    const struct lucy_asr_engine *e = NULL;
    if (lucy_asr_check(&opt, &e, err, sizeof err) != 0) {
        json_object_set_new(r->details, "error", json_string(err));
        lucy_doctor_say(r, "media module loaded; the speech engine cannot run: %s", err);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_ASR_ENGINE);
    } else {
        json_object_set_new(r->details, "engine", json_string(e->name));
        lucy_doctor_say(r, "media module loaded; speech engine %s (LUCY_ASR_ENGINE=%s)", e->name,
                        opt.engine && opt.engine[0] ? opt.engine : "auto");
    }
    lucy_media_drop();
}
