/*
 * Config of the exporter helper: the Collector's `retry_on_failure` and `sending_queue`
 * tables and their validation (configretry.BackOffConfig.Validate, queuebatch.Config.Validate),
 * with the Collector's messages. Exporters put these tables in their own.
 */
#include <stddef.h>
#include <string.h>

#include "exporters/helper/exporterhelper_internal.h"

#define RETRY_OFF(f) offsetof(struct th_retry_cfg, f)
#define QUEUE_OFF(f) offsetof(struct th_queue_cfg, f)

/* Bounds are checked by th_exporterhelper_config_check, as in the Collector, which checks
 * retry values only when retrying is enabled. */
const struct th_cfg_field th_retry_cfg_fields[] = {
    {.name = "enabled",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = RETRY_OFF(enabled),
     .desc = "retry failed requests"},
    {.name = "initial_interval",
     .type = TH_CFG_DURATION,
     .def = "5s",
     .offset = RETRY_OFF(initial_interval_ns),
     .desc = "wait before the first retry"},
    {.name = "max_interval",
     .type = TH_CFG_DURATION,
     .def = "30s",
     .offset = RETRY_OFF(max_interval_ns),
     .desc = "the wait between retries grows up to this"},
    {.name = "max_elapsed_time",
     .type = TH_CFG_DURATION,
     .def = "300s",
     .offset = RETRY_OFF(max_elapsed_time_ns),
     .desc = "give a request up after retrying this long; 0 retries forever"},
    {.name = "multiplier",
     .type = TH_CFG_DOUBLE,
     .def = "1.5",
     .offset = RETRY_OFF(multiplier),
     .desc = "the wait grows by this factor after each retry"},
    {.name = "randomization_factor",
     .type = TH_CFG_DOUBLE,
     .def = "0.5",
     .offset = RETRY_OFF(randomization_factor),
     .desc = "each wait is randomised by ± this fraction (0 to 1)"},
    {.name = NULL},
};

static const char *const sizers[] = {"requests", "items", "bytes", NULL};

/* No `enabled` row: the exporter's OPTIONAL row handles that pseudo-key (aux). */
const struct th_cfg_field th_queue_cfg_fields[] = {
    {.name = "num_consumers",
     .type = TH_CFG_INT,
     .def = "10",
     .offset = QUEUE_OFF(num_consumers),
     .desc = "requests sent at once (each retries on its own)"},
    {.name = "queue_size",
     .type = TH_CFG_INT,
     .def = "1000",
     .offset = QUEUE_OFF(queue_size),
     .desc = "capacity of the queue, in units of sizer"},
    {.name = "sizer",
     .type = TH_CFG_ENUM,
     .def = "requests",
     .offset = QUEUE_OFF(sizer),
     .choices = sizers,
     .desc = "what queue_size counts: requests, items (spans) or bytes (of protobuf)"},
    {.name = "block_on_overflow",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = QUEUE_OFF(block_on_overflow),
     .desc = "when full, hold the data (the sender waits for its answer) instead of refusing "
             "it with a retryable error"},
    {.name = "blocking",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = QUEUE_OFF(blocking),
     .desc = "deprecated name of block_on_overflow"},
    {.name = "wait_for_result",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = QUEUE_OFF(wait_for_result),
     .desc = "answer the sender only once the data is delivered (or failed for good)"},
    {.name = "storage",
     .type = TH_CFG_STRING,
     .offset = QUEUE_OFF(storage),
     .desc = "id of a file_storage extension: keep the queue on disk there (persistent queue)"},
    {.name = "batch",
     .type = TH_CFG_NODE,
     .offset = QUEUE_OFF(batch),
     .flags = TH_CFG_F_NOOP,
     .desc = "accepted for compatibility: batching in the queue is not done; use the batch "
             "processor"},
    {.name = NULL},
};

int th_exporterhelper_config_check(const struct th_retry_cfg *retry,
                                   const struct th_queue_cfg *queue, const char **err)
{
    if (retry && retry->enabled) {
        if (retry->initial_interval_ns < 0) {
            *err = "retry_on_failure: 'initial_interval' must be non-negative";
            return TH_ECONFIG;
        }
        if (retry->randomization_factor < 0 || retry->randomization_factor > 1) {
            *err = "retry_on_failure: 'randomization_factor' must be within [0, 1]";
            return TH_ECONFIG;
        }
        if (retry->multiplier < 0) {
            *err = "retry_on_failure: 'multiplier' must be non-negative";
            return TH_ECONFIG;
        }
        if (retry->max_interval_ns < 0) {
            *err = "retry_on_failure: 'max_interval' must be non-negative";
            return TH_ECONFIG;
        }
        if (retry->max_elapsed_time_ns < 0) {
            *err = "retry_on_failure: 'max_elapsed_time' must be non-negative";
            return TH_ECONFIG;
        }
        if (retry->max_elapsed_time_ns > 0) {
            if (retry->max_elapsed_time_ns < retry->initial_interval_ns) {
                *err = "retry_on_failure: 'max_elapsed_time' must not be less than "
                       "'initial_interval'";
                return TH_ECONFIG;
            }
            if (retry->max_elapsed_time_ns < retry->max_interval_ns) {
                *err = "retry_on_failure: 'max_elapsed_time' must not be less than "
                       "'max_interval'";
                return TH_ECONFIG;
            }
        }
    }
    if (queue && queue->enabled) {
        if (queue->num_consumers <= 0) {
            *err = "sending_queue: `num_consumers` must be positive";
            return TH_ECONFIG;
        }
        if (queue->queue_size <= 0) {
            *err = "sending_queue: `queue_size` must be positive";
            return TH_ECONFIG;
        }
        if (queue->num_consumers > 100000) {
            *err = "sending_queue: `num_consumers` must be at most 100000";
            return TH_ECONFIG;
        }
        if (queue->sizer && *queue->sizer && strcmp(queue->sizer, "requests") &&
            strcmp(queue->sizer, "items") && strcmp(queue->sizer, "bytes")) {
            *err = "sending_queue: `sizer` must be requests, items or bytes";
            return TH_ECONFIG;
        }
        bool storage = queue->storage && *queue->storage;
        if (storage && queue->wait_for_result) {
            *err = "sending_queue: `wait_for_result` is not supported with a persistent queue "
                   "configured with `storage`";
            return TH_ECONFIG;
        }
        if (storage) {
            char why[128];
            if (th_config_split_id(queue->storage, NULL, NULL, NULL, why, sizeof(why)) != 0) {
                *err = "sending_queue: `storage` must be a component id such as "
                       "file_storage/NAME";
                return TH_ECONFIG;
            }
        }
    }
    return 0;
}
