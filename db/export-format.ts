// The export format (db.export, db.import): a directory of chunk files and one manifest.
//
// A chunk holds a run of one tree's entries in key order, LZ4-compressed, behind a fixed header:
//
//   offset  size  field
//   0       8     CHUNK_MAGIC       "BIRCHCNK"
//   8       4     CHUNK_VERSION     EXPORT_VERSION
//   12      2     CHUNK_TREE_LEN    bytes of the tree's UTF-8 name (0: the default tree)
//   14      2     (zero)
//   16      4     CHUNK_ENTRIES     entries in the chunk
//   20      4     CHUNK_RAW_BYTES   bytes of the entries before compression
//   24      4     CHUNK_BODY_BYTES  bytes of the compressed body
//   28      4     CHUNK_RAW_HASH    xxHash32 (seed 0) of the entries before compression
//   32      n     the tree's name, then the body: the journal's LZ4 encoding (journal/codec.ts: the
//                 raw size as u32, then one LZ4 block) of the entries, each
//                 [key length u16][value length u32][key][value]
//
// All integers little-endian. The manifest, manifest.json, is JSON text written by JSON.stringify
// with its fields in a fixed order: { "manifest": Manifest, "xxh32": hex of xxHash32 (seed 0) of
// the UTF-8 text of JSON.stringify(manifest) }. Keys in it are hex. A chunk's `xxh32` is over its
// whole file.
//
// Where chunks end (content-defined, so that they depend on the entries alone, never on the
// database's page layout or history or on how many threads cut them): an entry ends its chunk
// when xxHash32 of its key (seed CUT_SEED), read as an unsigned number, is below
// 2^32 * size / chunkBytes in double precision (exact product, correctly rounded quotient), where size = ENTRY_HEADER + key length + value length; the last entry
// of a tree ends its chunk too. An entry of chunkBytes or more always ends its chunk. So a chunk
// holds chunkBytes on average (sizes spread like an exponential distribution: about one chunk in
// seven is more than twice the mean), and a change to some keys changes only the chunks that hold
// them and, where a cut moves, their neighbours.
import { checksum } from '../pager/checksum.js';
import { compressInto, decompress } from '../journal/codec.js';

/** The journal codec's own prefix before the LZ4 block: the raw size, u32. */
const COMPRESS_PREFIX = 4;

export const EXPORT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const CHUNK_MAGIC = Buffer.from('BIRCHCNK', 'latin1');
export const CHUNK_VERSION = 8;
export const CHUNK_TREE_LEN = CHUNK_VERSION + 4;
export const CHUNK_ENTRIES = CHUNK_TREE_LEN + 4;
export const CHUNK_RAW_BYTES = CHUNK_ENTRIES + 4;
export const CHUNK_BODY_BYTES = CHUNK_RAW_BYTES + 4;
export const CHUNK_RAW_HASH = CHUNK_BODY_BYTES + 4;
export const CHUNK_HEADER_SIZE = CHUNK_RAW_HASH + 4;
/** Bytes before each entry's key in a chunk's entries: key length u16, value length u32. */
export const ENTRY_HEADER = 6;
/** The seed of the key hash that decides where chunks end (not the checksums' 0, so the two stay independent). */
export const CUT_SEED = 0x62697263;

export interface ChunkInfo {
  /** The chunk's file name in the export directory. */
  file: string;
  tree: string;
  /** First and last key, hex. */
  first: string;
  last: string;
  entries: number;
  /** Bytes of its entries, and of its file. */
  rawBytes: number;
  bytes: number;
  /** xxHash32 of the whole file, hex. */
  xxh32: string;
}

export interface Manifest {
  format: 'birchdb-export';
  version: number;
  // No batch number: it counts the history, and two databases with the same entries export the same.
  chunkBytes: number;
  /** Trees in export order (the default tree '' first, then named trees in byte order of their names), with entry counts. */
  trees: { name: string; entries: number }[];
  /** In export order: by tree, then key. */
  chunks: ChunkInfo[];
}

export function hex32(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

/** Whether an entry of key `key` and `valueLen` bytes of value ends its chunk. */
export function endsChunk(key: Uint8Array, valueLen: number, chunkBytes: number): boolean {
  const size = ENTRY_HEADER + key.length + valueLen;
  if (size >= chunkBytes) return true;
  return checksum(key, 0, key.length, CUT_SEED) < (2 ** 32 * size) / chunkBytes;
}

/**
 * A chunk's entries, as they are appended (the raw, uncompressed form). One builder serves a
 * thread's chunks one after another, reusing its buffers: a fresh buffer of megabytes costs a page
 * fault per 4 KiB on first write, which took more time than the compression when measured.
 */
export class ChunkBuilder {
  #raw = Buffer.allocUnsafeSlow(1 << 16);
  #out = Buffer.allocUnsafeSlow(1 << 16);
  #len = 0;
  entries = 0;
  first: Buffer | undefined;
  last: Buffer | undefined;

  /** Drops what was added since the last finish() (a job that failed half-way). */
  reset(): void {
    this.#len = 0;
    this.entries = 0;
    this.first = undefined;
    this.last = undefined;
  }

  get rawBytes(): number {
    return this.#len;
  }

  add(key: Buffer, value: Buffer): void {
    const need = this.#len + ENTRY_HEADER + key.length + value.length;
    if (need > this.#raw.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(need, 2 * this.#raw.length));
      this.#raw.copy(grown, 0, 0, this.#len);
      this.#raw = grown;
    }
    const raw = this.#raw;
    let at = this.#len;
    raw.writeUInt16LE(key.length, at);
    raw.writeUInt32LE(value.length, at + 2);
    at += ENTRY_HEADER;
    key.copy(raw, at);
    at += key.length;
    value.copy(raw, at);
    this.#len = at + value.length;
    if (this.entries++ === 0) this.first = Buffer.from(key);
    this.last = key;
  }

  /** The chunk's file bytes, valid until the next finish(); the builder starts over empty. */
  finish(tree: string): Buffer {
    const raw = this.#raw.subarray(0, this.#len);
    const name = Buffer.from(tree, 'utf8');
    const bodyAt = CHUNK_HEADER_SIZE + name.length;
    // LZ4's worst case: the input, a byte per 255 of it, and a few bytes.
    const bound = bodyAt + COMPRESS_PREFIX + raw.length + Math.ceil(raw.length / 255) + 16;
    if (this.#out.length < bound) this.#out = Buffer.allocUnsafeSlow(Math.max(bound, 2 * this.#out.length));
    const end = compressInto(raw, this.#out, bodyAt, bound - bodyAt);
    if (end < 0) throw new Error('LZ4 output past its bound');
    const out = this.#out.subarray(0, end);
    const body = out.subarray(bodyAt);
    out.fill(0, 0, CHUNK_HEADER_SIZE);
    CHUNK_MAGIC.copy(out, 0);
    out.writeUInt32LE(EXPORT_VERSION, CHUNK_VERSION);
    out.writeUInt16LE(name.length, CHUNK_TREE_LEN);
    out.writeUInt32LE(this.entries, CHUNK_ENTRIES);
    out.writeUInt32LE(raw.length, CHUNK_RAW_BYTES);
    out.writeUInt32LE(body.length, CHUNK_BODY_BYTES);
    out.writeUInt32LE(checksum(raw, 0, raw.length, 0), CHUNK_RAW_HASH);
    name.copy(out, CHUNK_HEADER_SIZE);
    this.#len = 0;
    this.entries = 0;
    this.first = undefined;
    this.last = undefined;
    return out;
  }
}

/**
 * The entries of a chunk file, checked: its header, its body's size and hash, and every entry's
 * framing. Returns a description of the problem instead when anything does not hold.
 */
export function decodeChunk(file: Buffer): { tree: string; entries: [Buffer, Buffer][] } | string {
  if (file.length < CHUNK_HEADER_SIZE || !file.subarray(0, 8).equals(CHUNK_MAGIC)) return 'not a birchdb export chunk (bad magic)';
  const version = file.readUInt32LE(CHUNK_VERSION);
  if (version !== EXPORT_VERSION) return `chunk format version ${version}, this birchdb reads ${EXPORT_VERSION}`;
  const nameLen = file.readUInt16LE(CHUNK_TREE_LEN);
  const count = file.readUInt32LE(CHUNK_ENTRIES);
  const rawBytes = file.readUInt32LE(CHUNK_RAW_BYTES);
  const bodyBytes = file.readUInt32LE(CHUNK_BODY_BYTES);
  if (CHUNK_HEADER_SIZE + nameLen + bodyBytes !== file.length) return `the header says ${CHUNK_HEADER_SIZE + nameLen + bodyBytes} bytes, the file holds ${file.length}`;
  const tree = file.toString('utf8', CHUNK_HEADER_SIZE, CHUNK_HEADER_SIZE + nameLen);
  const raw = decompress(file.subarray(CHUNK_HEADER_SIZE + nameLen), rawBytes);
  if (raw === undefined) return 'the compressed body does not decode';
  if (checksum(raw, 0, raw.length, 0) !== file.readUInt32LE(CHUNK_RAW_HASH)) return 'the entries do not match their checksum';
  const entries: [Buffer, Buffer][] = [];
  let at = 0;
  while (at < raw.length) {
    if (at + ENTRY_HEADER > raw.length) return 'an entry is cut short';
    const kl = raw.readUInt16LE(at);
    const vl = raw.readUInt32LE(at + 2);
    at += ENTRY_HEADER;
    if (at + kl + vl > raw.length) return 'an entry is cut short';
    entries.push([raw.subarray(at, at + kl), raw.subarray(at + kl, at + kl + vl)]);
    at += kl + vl;
  }
  if (entries.length !== count) return `the header says ${count} entries, the chunk holds ${entries.length}`;
  return { tree, entries };
}

/** manifest.json's text for `m`. */
export function encodeManifest(m: Manifest): string {
  const text = JSON.stringify(m);
  return JSON.stringify({ manifest: m, xxh32: hex32(checksum(Buffer.from(text, 'utf8'))) }) + '\n';
}

/** The manifest in manifest.json's text, or a description of what is wrong with it. */
export function decodeManifest(text: string): Manifest | string {
  let outer: unknown;
  try {
    outer = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  if (typeof outer !== 'object' || outer === null) return 'not a manifest';
  const { manifest, xxh32 } = outer as { manifest?: unknown; xxh32?: unknown };
  if (typeof manifest !== 'object' || manifest === null || typeof xxh32 !== 'string') return 'not a manifest';
  if (hex32(checksum(Buffer.from(JSON.stringify(manifest), 'utf8'))) !== xxh32) return 'it does not match its checksum';
  const m = manifest as Manifest;
  if (m.format !== 'birchdb-export') return 'not a birchdb export manifest';
  if (m.version !== EXPORT_VERSION) return `export format version ${String(m.version)}, this birchdb reads ${EXPORT_VERSION}`;
  if (!Array.isArray(m.chunks) || !Array.isArray(m.trees)) return 'not a manifest';
  return m;
}
