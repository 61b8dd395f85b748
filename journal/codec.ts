// The journal's compression codec: LZ4 blocks, written here rather than by a package.
//
// Why not lz4-napi (the package the design started with): its compressSync returns each result
// in memory that V8 does not count, freed only by a finalizer after a garbage collection, which
// that memory never prompts. Under load the writer thread's memory grew without bound in sight:
// 10,000 callers for 60 s, RSS 341 -> 578 MiB and still climbing with it, flat at ~400 MiB with
// compression off (2-core VM). 60,000 calls on 30 KB in a loop that yields: +100 MiB; with a forced
// GC after each 10,000: +0 (lz4-napi issue #678 reports the same of its sync calls). Compressing
// into a buffer the journal owns allocates nothing per record.
//
// Encoded form (what lz4-napi wrote, so journals it wrote still decode): the uncompressed size as
// u32 LE, then one LZ4 block (the LZ4 block format: sequences of a token, literals, a 2-byte match
// offset and match length extensions; the last 5 bytes are literals; the last match starts at
// least 12 bytes before the end).

const SIZE_PREFIX = 4;
const MIN_MATCH = 4;
/** The last bytes of a block are always literals (LZ4 format rule). */
const LAST_LITERALS = 5;
/** No match may start within this many bytes of the end (LZ4 format rule). */
const MF_LIMIT = 12;
const MAX_OFFSET = 65535;
const HASH_LOG = 14;
/** Position + 1 of the last 4-byte sequence seen with each hash (0: none). Reused: records are encoded one at a time. */
const table = new Int32Array(1 << HASH_LOG);

function read32(b: Buffer, i: number): number {
  return (b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24);
}

function hash(seq: number): number {
  return Math.imul(seq, 2654435761) >>> (32 - HASH_LOG);
}

/** Writes a length's continuation bytes (each 255 adds 255; the last byte is below 255). */
function writeLengthTail(out: Buffer, pos: number, rest: number): number {
  while (rest >= 255) {
    out[pos++] = 255;
    rest -= 255;
  }
  out[pos++] = rest;
  return pos;
}

/** Reads a length's continuation bytes from `pos`; undefined if they run past the block. */
function readLengthTail(b: Buffer, pos: number): { value: number; end: number } | undefined {
  let value = 0;
  let byte: number;
  do {
    if (pos >= b.length) return undefined;
    byte = b[pos++] as number;
    value += byte;
  } while (byte === 255);
  return { value, end: pos };
}

/**
 * Compresses `src` into `out` from `at`, using at most `limit` bytes; returns the end offset, or
 * -1 if the encoded form would not fit (the caller then stores `src` as it is).
 */
export function compressInto(src: Buffer, out: Buffer, at: number, limit: number): number {
  const end = at + Math.min(limit, out.length - at);
  const n = src.length;
  if (at + SIZE_PREFIX > end) return -1;
  out.writeUInt32LE(n, at);
  let pos = at + SIZE_PREFIX;
  table.fill(0);
  let anchor = 0;
  let i = 0;
  const matchEndLimit = n - LAST_LITERALS;
  const startLimit = n - MF_LIMIT;
  while (i < startLimit) {
    const seq = read32(src, i);
    const h = hash(seq);
    const ref = (table[h] as number) - 1;
    table[h] = i + 1;
    if (ref < 0 || i - ref > MAX_OFFSET || read32(src, ref) !== seq) {
      // Skip faster through data that does not match (the longer since the last match).
      i += 1 + ((i - anchor) >> 6);
      continue;
    }
    let len = MIN_MATCH;
    while (i + len + 4 <= matchEndLimit && read32(src, ref + len) === read32(src, i + len)) len += 4;
    while (i + len < matchEndLimit && src[ref + len] === src[i + len]) len++;
    const lit = i - anchor;
    // Worst case for this sequence: token, literal length bytes, literals, offset, match length bytes.
    if (pos + 1 + Math.floor(lit / 255) + 1 + lit + 2 + Math.floor(len / 255) + 1 > end) return -1;
    const litCode = lit >= 15 ? 15 : lit;
    const lenCode = len - MIN_MATCH >= 15 ? 15 : len - MIN_MATCH;
    out[pos++] = (litCode << 4) | lenCode;
    if (litCode === 15) pos = writeLengthTail(out, pos, lit - 15);
    src.copy(out, pos, anchor, i);
    pos += lit;
    out[pos++] = (i - ref) & 0xff;
    out[pos++] = (i - ref) >>> 8;
    if (lenCode === 15) pos = writeLengthTail(out, pos, len - MIN_MATCH - 15);
    i += len;
    anchor = i;
  }
  const lit = n - anchor;
  if (pos + 1 + Math.floor(lit / 255) + 1 + lit > end) return -1;
  const litCode = lit >= 15 ? 15 : lit;
  out[pos++] = litCode << 4;
  if (litCode === 15) pos = writeLengthTail(out, pos, lit - 15);
  src.copy(out, pos, anchor, n);
  return pos + lit;
}

/** Compresses into a new buffer (tools and tests; the journal uses compressInto). */
export function compress(raw: Buffer): Buffer {
  const out = Buffer.allocUnsafe(SIZE_PREFIX + raw.length + Math.ceil(raw.length / 255) + 16);
  return out.subarray(0, compressInto(raw, out, 0, out.length));
}

/** Decompresses; returns undefined if the data is not valid LZ4 or not `rawBytes` long. */
export function decompress(compressed: Buffer, rawBytes: number): Buffer | undefined {
  if (compressed.length < SIZE_PREFIX || compressed.readUInt32LE(0) !== rawBytes) return undefined;
  const out = Buffer.allocUnsafe(rawBytes);
  const n = compressed.length;
  let pos = SIZE_PREFIX;
  let o = 0;
  while (pos < n) {
    const token = compressed[pos++] as number;
    let lit = token >>> 4;
    if (lit === 15) {
      const tail = readLengthTail(compressed, pos);
      if (tail === undefined) return undefined;
      lit += tail.value;
      pos = tail.end;
    }
    if (pos + lit > n || o + lit > rawBytes) return undefined;
    compressed.copy(out, o, pos, pos + lit);
    pos += lit;
    o += lit;
    if (pos === n) break; // the last sequence has literals only
    if (pos + 2 > n) return undefined;
    const offset = (compressed[pos] as number) | ((compressed[pos + 1] as number) << 8);
    pos += 2;
    if (offset === 0 || offset > o) return undefined;
    let len = token & 15;
    if (len === 15) {
      const tail = readLengthTail(compressed, pos);
      if (tail === undefined) return undefined;
      len += tail.value;
      pos = tail.end;
    }
    len += MIN_MATCH;
    if (o + len > rawBytes) return undefined;
    if (offset >= len) {
      out.copy(out, o, o - offset, o - offset + len);
      o += len;
    } else {
      // Overlapping copy: the match repeats bytes it is itself producing.
      for (let k = 0; k < len; k++, o++) out[o] = out[o - offset] as number;
    }
  }
  return o === rawBytes ? out : undefined;
}
