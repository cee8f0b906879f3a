/*
 * module.c - the media module's table (media.h): the one symbol
 * lucy-media.so exports; everything else in the module is hidden.
 */
#include "media.h"

__attribute__((visibility("default"))) const struct lucy_media lucy_media_module = {
    .abi = LUCY_MEDIA_ABI,
    .sizes = LUCY_MEDIA_SIZES,
    .decode_fd = lucy_media_decode_fd,
    .decode_split_fd = lucy_media_decode_split_fd,
    .chunks = lucy_media_asr_chunks,
    .asr_select = lucy_media_asr_select,
    .asr_check = lucy_media_asr_check,
    .asr_open = lucy_media_asr_open,
    .asr_transcribe = lucy_media_asr_transcribe,
    .asr_close = lucy_media_asr_close,
    .asr_model = lucy_media_asr_model,
    .probe_fd = lucy_media_probe_fd,
};
