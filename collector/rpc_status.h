/*
 * google.rpc.Status with an optional RetryInfo detail, as protobuf-c structs: built once
 * here for both places that send one (OTLP/HTTP error bodies in collector/otlp_response.c,
 * gRPC's grpc-status-details-bin in collector/grpc_wire.c). Internal to the collector.
 */
#ifndef TH_RPC_STATUS_H
#define TH_RPC_STATUS_H

#include "th/common.h"
#include "google/rpc/status.pb-c.h"

/** The type URL of a RetryInfo detail. */
#define TH__RETRY_INFO_TYPE "type.googleapis.com/google.rpc.RetryInfo"

/** A Status and the detail it may point to, so nothing needs allocating. */
struct th__rpc_status {
    Google__Rpc__Status st; /**< what to pack */
    Google__Rpc__Any any;
    Google__Rpc__Any *details[1];
    /** RetryInfo{Duration{int64, int32}} packs to at most 2 + 2 + 11 + 11 bytes. */
    uint8_t inner[32];
};

/**
 * Fill @p m with Status{code, message, details} where details holds one RetryInfo with
 * @p retry_delay_ns when that is >= 0, and nothing otherwise.
 * @param[out] m the structs; m->st is ready to pack.
 * @param[in] code,msg the status (msg NULL is "").
 * @param[in] retry_delay_ns the delay, or a negative value for no RetryInfo.
 * @note m->st points into @p m and at @p msg: both must stay in place while it is packed.
 */
void th__rpc_status_init(struct th__rpc_status *m, int code, const char *msg,
                         int64_t retry_delay_ns);

#endif
