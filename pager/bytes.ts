// Little-endian field access for every on-disk structure. Format modules call these with their
// named offset constants; nothing else reads raw offsets. 64-bit fields are two u32 halves and
// are exposed as safe-integer numbers, because sequence numbers, checkpoint ids and entry counts
// never need 2^53: a field read from disk that holds 2^53 or more is damage (CorruptionError).
import { CorruptionError, type CorruptionSite } from '../platform/errors.js';

export function readU8(buf: Buffer, off: number): number {
  return buf[off] as number;
}
export function writeU8(buf: Buffer, off: number, v: number): void {
  buf[off] = v;
}
export function readU16(buf: Buffer, off: number): number {
  return buf.readUInt16LE(off);
}
export function writeU16(buf: Buffer, off: number, v: number): void {
  buf.writeUInt16LE(v, off);
}
export function readU32(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off);
}
export function writeU32(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v >>> 0, off);
}
/** Whether the u64 at `off` is below 2^53 (readU64 returns it exactly). */
export function u64Fits(buf: Buffer, off: number): boolean {
  return buf.readUInt32LE(off + 4) <= 0x1fffff;
}
/**
 * The u64 at `off`; one of 2^53 or more is refused with a CorruptionError at `site` (the file and
 * page the caller read `buf` from), its offset in `buf` added.
 */
const NO_SITE: CorruptionSite = Object.freeze({});

export function readU64(buf: Buffer, off: number, site: CorruptionSite = NO_SITE): number {
  const lo = buf.readUInt32LE(off);
  const hi = buf.readUInt32LE(off + 4);
  if (hi > 0x1fffff) throw new CorruptionError(`the 64-bit field at offset ${off} holds 2^53 or more`, { ...site, offset: off });
  return hi * 0x1_0000_0000 + lo;
}
export function writeU64(buf: Buffer, off: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 value ${v} is not a safe non-negative integer`);
  buf.writeUInt32LE(v % 0x1_0000_0000, off);
  buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), off + 4);
}

/**
 * The bytes of `buf` as a latin1 string: one character per byte, so string order is byte order.
 * In-memory maps key by these (strings compare several times faster than Buffers).
 */
export function latin1(buf: Buffer): string {
  return buf.toString('latin1');
}

/**
 * u16 at `off` of `b`, for the read hot paths (tree search over cached frames): byte loads with no
 * argument or bounds checks, which readUInt16LE makes on every call. Offsets come from verified
 * pages, inside their 4 KiB; an offset out of range reads as 0, it does not throw.
 */
export function u16(b: Uint8Array, off: number): number {
  return (b[off] as number) | ((b[off + 1] as number) << 8);
}

/** u32 at `off` of `b`, unsigned; the hot-path twin of readU32 (see u16). */
export function u32(b: Uint8Array, off: number): number {
  return ((b[off] as number) | ((b[off + 1] as number) << 8) | ((b[off + 2] as number) << 16)) + (b[off + 3] as number) * 0x100_0000;
}

/**
 * Bytes of a key, value or bound as callers pass them: a string as UTF-8, a Uint8Array as a Buffer
 * over the same memory (no copy); undefined for anything else (the caller names the error).
 */
export function asBytes(v: unknown): Buffer | undefined {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return undefined;
}

/**
 * Stores `v` as the u16 at `off` of `b`: the hot-path twin of writeU16 (byte stores with no
 * argument or range checks). The caller guarantees 0 <= v < 2^16 and room at `off`.
 */
export function setU16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = v >>> 8;
}

/** Stores `v` as the u32 at `off` of `b`: the hot-path twin of writeU32 (see setU16; 0 <= v < 2^32). */
export function setU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = v >>> 24;
}
