// Every error birchdb throws, for all layers, in one place. Callers branch on `code`, never on
// message text. Four classes of failure are kept apart:
//  - caller errors (bad keys, closed handles), thrown at the API boundary before anything is written;
//  - corruption: a page or record that fails its checksum or structure checks (CorruptionError);
//  - fatal I/O: a failed write or sync poisons the handle until it is reopened (an fsync is never
//    retried: after a failed fsync the kernel may have dropped the dirty pages it could not write);
//  - internal: a bug in birchdb (a broken invariant), never reported as I/O.

export type ErrorCode =
  /** A key is not a Uint8Array or string, is empty, or is longer than MAX_KEY_BYTES. */
  | 'KEY_INVALID'
  /** A value is not a Uint8Array or string, or is larger than MAX_VALUE_BYTES. */
  | 'VALUE_INVALID'
  /** An option has the wrong type or is out of range. */
  | 'BAD_OPTION'
  /** The snapshot was already released. */
  | 'TXN_CLOSED'
  /** The database handle is closed. */
  | 'DB_CLOSED'
  /** Another process (or another handle in this process) holds the database directory open. */
  | 'DB_LOCKED'
  /** A conditional batch (ifMatch) found a key that did not hold the expected value; nothing of it was written. */
  | 'CONDITION_FAILED'
  /** A named tree does not exist. */
  | 'TREE_NOT_FOUND'
  /** A tree name is empty, too long, or not a string. */
  | 'TREE_NAME_INVALID'
  /** A page, meta page or journal record failed its checksum or structure checks. */
  | 'CORRUPTION'
  /** A write or sync failed; the handle refuses further writes until reopened. */
  | 'FATAL_IO'
  /** The file was written by an unsupported format version or page size. */
  | 'FORMAT_UNSUPPORTED'
  /** An I/O operation failed in a way that does not poison the handle (a failed read, open). */
  | 'IO'
  /** The runtime or install lacks something an option or feature needs (the message names the runtime and the piece). */
  | 'UNSUPPORTED'
  /** A write asked of a reader that only reads (a reader thread, openReader). */
  | 'READ_ONLY'
  /** An export (db.export) that import refuses: a chunk or the manifest missing, damaged or not matching. */
  | 'BAD_EXPORT'
  /** A bug in birchdb: an invariant did not hold. The handle refuses further writes. */
  | 'INTERNAL';

/** Where an error happened: a file, a page, a byte offset, the thread that met it. */
export interface ErrorSite {
  readonly file?: string;
  readonly pageNo?: number;
  readonly offset?: number;
  readonly thread?: 'main' | 'writer' | 'checkpointer';
}

export function describeSite(site: ErrorSite): string {
  return [
    site.file !== undefined ? `file ${site.file}` : '',
    site.pageNo !== undefined ? `page ${site.pageNo}` : '',
    site.offset !== undefined ? `offset ${site.offset}` : '',
  ].filter((s) => s !== '').join(', ');
}

export class BirchError extends Error {
  readonly code: ErrorCode;
  readonly site: ErrorSite;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; site?: ErrorSite }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.site = options?.site ?? {};
    this.name = 'BirchError';
  }
}

/** What was found corrupt, and where: a page number, or a file and byte offset. */
export type CorruptionSite = ErrorSite;

export class CorruptionError extends BirchError {
  constructor(what: string, site: CorruptionSite, options?: { cause?: unknown }) {
    const where = describeSite(site);
    super('CORRUPTION', `corruption: ${what}${where === '' ? '' : ` (${where})`}`, { ...options, site });
    this.name = 'CorruptionError';
  }
}

export class FatalIoError extends BirchError {
  constructor(what: string, cause?: unknown, site?: ErrorSite) {
    super('FATAL_IO', `${what}: the database refuses writes until it is reopened`, { cause, ...(site === undefined ? {} : { site }) });
    this.name = 'FatalIoError';
  }
}

/** Always-on, O(1) invariant check for hot paths. A failure is a bug in birchdb, not bad input. */
export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new BirchError('INTERNAL', `birchdb assertion failed: ${msg}`);
}

/**
 * Deno refuses what its permission flags do not allow with a NotCapable error (PermissionDenied in
 * older versions): turned into UNSUPPORTED, naming the runtime and the flags birchdb needs.
 */
export function deniedByRuntime(err: unknown, what?: string): BirchError | undefined {
  if (!(err instanceof Error) || (err.name !== 'NotCapable' && err.name !== 'PermissionDenied')) return undefined;
  const runtime = typeof (process.versions as { deno?: string }).deno === 'string' ? 'deno' : 'the runtime';
  return new BirchError(
    'UNSUPPORTED',
    `${runtime} denied ${what ?? 'a permission birchdb needs'}: ${err.message} (birchdb needs --allow-read --allow-write --allow-sys --allow-run, and --allow-env for BIRCH_* variables; or -A)`,
    { cause: err },
  );
}

/** An environment variable, or undefined where it is unset or the runtime does not let us read it. */
export function readEnv(name: string): string | undefined {
  try {
    return process.env[name];
  } catch (err) {
    if (deniedByRuntime(err) !== undefined) return undefined;
    throw err;
  }
}
