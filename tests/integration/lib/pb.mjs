// A hand-rolled protobuf writer and reader for the bad-input tests: they need bytes the SDK
// would never produce (wrong id lengths, invalid UTF-8, 5000-deep values), so the OTLP
// messages are assembled field by field here. Field numbers are those of the OTLP protos
// (proto/opentelemetry/...).

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;

/** Encode an unsigned varint (number or BigInt). */
export function varint(v) {
  let n = BigInt(v);
  if (n < 0n) {
    n = BigInt.asUintN(64, n);
  }
  const out = [];
  do {
    let b = Number(n & 0x7fn);
    n >>= 7n;
    if (n > 0n) {
      b |= 0x80;
    }
    out.push(b);
  } while (n > 0n);
  return Buffer.from(out);
}

export const tag = (field, wt) => varint((field << 3) | wt);

/** A length-delimited field: bytes, string (UTF-8 unless a Buffer) or a nested message. */
export function len(field, data) {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
  return Buffer.concat([tag(field, WT_LEN), varint(b.length), b]);
}

export const uint = (field, v) => Buffer.concat([tag(field, WT_VARINT), varint(v)]);

export function fixed64(field, v) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return Buffer.concat([tag(field, WT_I64), b]);
}

export const msg = (...parts) => Buffer.concat(parts);

// --- OTLP builders (field numbers from common.proto, trace.proto, trace_service.proto) ----

export const anyString = (s) => len(1, s);
export const anyInt = (i) => uint(3, i);
export const keyValue = (key, anyValueBytes) => msg(len(1, key), len(2, anyValueBytes));

/**
 * A span. ids are Buffers (any length, to test the checks); name may be a Buffer to carry
 * invalid UTF-8 or NUL bytes.
 */
export function span({ traceId, spanId, parentSpanId, name = 'op', kind = 2,
  start = 1544712660000000000n, end = 1544712661000000000n, attributes = [] }) {
  const parts = [len(1, traceId), len(2, spanId)];
  if (parentSpanId) {
    parts.push(len(4, parentSpanId));
  }
  parts.push(len(5, name), uint(6, kind), fixed64(7, start), fixed64(8, end));
  for (const kv of attributes) {
    parts.push(len(9, kv));
  }
  return msg(...parts);
}

/** ExportTraceServiceRequest with one resource (service.name) and one scope of spans. */
export function request(spans, serviceName = 'bad-input') {
  const resource = len(1, keyValue('service.name', anyString(serviceName)));
  const scope = msg(len(1, 'th-it'), len(2, '1.0'));
  const scopeSpans = msg(len(1, scope), ...spans.map((s) => len(2, s)));
  const resourceSpans = msg(len(1, resource), len(2, scopeSpans));
  return len(1, resourceSpans);
}

export const hex = (h) => Buffer.from(h, 'hex');

/**
 * An AnyValue nested @p depth levels through array_value (AnyValue.array_value = 5,
 * ArrayValue.values = 1), built inside out with the lengths computed first so the cost
 * stays linear.
 */
export function deepAnyValue(depth) {
  const leaf = anyString('x');
  // Sizes from the inside out: level i wraps level i-1 twice (ArrayValue, then AnyValue).
  const sizes = [leaf.length];
  for (let i = 0; i < depth; i++) {
    const inner = sizes[sizes.length - 1];
    const arr = 1 + varint(inner).length + inner; // ArrayValue{values: inner}
    const any = 1 + varint(arr).length + arr; // AnyValue{array_value: arr}
    sizes.push(any);
  }
  const out = Buffer.alloc(sizes[depth]);
  let pos = 0;
  for (let i = depth; i > 0; i--) {
    const inner = sizes[i - 1];
    const arr = 1 + varint(inner).length + inner;
    for (const b of [tag(5, WT_LEN), varint(arr), tag(1, WT_LEN), varint(inner)]) {
      b.copy(out, pos);
      pos += b.length;
    }
  }
  leaf.copy(out, pos);
  return out;
}

// --- Reading google.rpc.Status -----------------------------------------------------------

function readVarint(buf, pos) {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) {
      throw new Error('truncated varint');
    }
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      return [v, pos];
    }
    shift += 7n;
  }
}

/**
 * Decode a protobuf google.rpc.Status {code = 1, message = 2, details = 3 (Any: type_url 1,
 * value 2)}; throws on malformed input, so a test fails when the body is not a Status.
 */
export function decodeStatus(buf) {
  const st = { code: 0, message: '', details: [] };
  let pos = 0;
  while (pos < buf.length) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const field = Number(key >> 3n);
    const wt = Number(key & 7n);
    if (wt === WT_VARINT) {
      let v;
      [v, pos] = readVarint(buf, pos);
      if (field === 1) {
        st.code = Number(BigInt.asIntN(32, v));
      }
    } else if (wt === WT_LEN) {
      let n;
      [n, pos] = readVarint(buf, pos);
      const end = pos + Number(n);
      if (end > buf.length) {
        throw new Error('truncated field');
      }
      const body = buf.subarray(pos, end);
      if (field === 2) {
        st.message = body.toString('utf8');
      } else if (field === 3) {
        st.details.push(body);
      }
      pos = end;
    } else if (wt === WT_I64) {
      pos += 8;
    } else if (wt === 5) {
      pos += 4;
    } else {
      throw new Error(`unexpected wire type ${wt}`);
    }
  }
  if (pos !== buf.length) {
    throw new Error('trailing bytes');
  }
  return st;
}
