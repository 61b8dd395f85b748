// The directory lock: one handle per database directory, across processes and within one.
// (Which process and boot a record names: process-identity.ts; fs-ext's flock: native.ts.)
//
// Two mechanisms, one protocol, so that processes using either exclude each other (a Node app
// with fs-ext built and a Deno tool without it may open the same directory):
//
//   LOCK      flock(2)ed by holders that have fs-ext. The kernel drops the lock when its holder
//             dies, whatever the pid namespace, so it needs no liveness guess. Never removed.
//   LOCK.pid  the owner record, written by every holder (both kinds), created whole (written to
//             LOCK.pid.tmp-<pid>-<token>, then hard-linked, which fails if the name exists):
//             {"v":1,"dir":"<dev>:<ino>","pid":..,"start":..,"host":..,"kind":"flock"|"pidfile","token":..,"since":..}
//             `start` is the process start time where the platform tells it (Linux:
//             /proc/<pid>/stat field 22), so that a pid reused after a crash is not taken for
//             the holder.
//
// Invariant: a live handle's LOCK.pid exists and names it; a handle removes its own LOCK.pid
// on release. A record is stale when (a) its process is gone (kill(pid, 0) says ESRCH, or the
// pid now belongs to a process with another start time), or (b) it says kind "flock" and this
// opener holds the flock (the recorded holder would hold it otherwise), or (c) it names another
// directory (device and inode): the directory is a copy of one that was open, or (d) it cannot be
// parsed and is older than TORN_RECORD_MS (a record torn by a machine crash; a younger one may
// be mid-write), or (e) it was written before the host's last boot. A record from another host,
// or from another pid namespace (a container), cannot be judged (its pid means nothing here) and
// is treated as live: the error names the file to delete.
//
// Stale records are replaced under a mutex (mkdir LOCK.steal), re-reading the record inside
// it: without that, two openers that both judged a dead holder could each remove the other's
// fresh record. The mutex names its owner and is held for microseconds; one left by an opener
// killed inside it is removed once its owner is seen dead (or, ownerless, after
// STEAL_MUTEX_STALE_MS); an opener that finds a live one waits briefly (blocking, at open only).
// After linking its record, an opener reads it back and refuses if it is not its own.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BirchError, readEnv } from './errors.js';
import { loadFsExt, type FsExt } from './native.js';
import { bootIdentity, hostTag, isAlive, otherBoot, pidNamespace, processStart } from './process-identity.js';

/** A directory lock held: released once, by the handle that took it. */
export interface HeldLock {
  readonly kind: string;
  release(): void;
}

const LOCK_FILE = 'LOCK';
export const OWNER_FILE = 'LOCK.pid';
export const STEAL_MUTEX = 'LOCK.steal';
/** Prefix of the temporary files records are written to before they are linked into place. */
export const TEMP_PREFIX = 'LOCK.pid.tmp-';
const OWNER_RECORD_VERSION = 1;
const TORN_RECORD_MS = 5_000;
/** Age past which a steal mutex without a readable owner is stale (exported for the lock tests). */
export const STEAL_MUTEX_STALE_MS = 2_000;
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

/** Which lock to take: fs-ext's flock where it loads ('auto'), only it ('flock'), or the owner record alone ('pidfile'). */
export type LockMode = 'auto' | 'flock' | 'pidfile';
/** The lock a handle holds: 'flock' (fs-ext flock plus the owner record) or 'pidfile' (the owner record alone). */
type LockKind = 'flock' | 'pidfile';
/** The environment variable that forces a lock mode when the option says 'auto'. */
const LOCK_MODE_ENV = 'BIRCH_LOCK';



interface OwnerRecord {
  v: number;
  /** The directory's identity (device and inode) when the record was written. */
  dir: string;
  /** This boot of the host (Linux boot_id; elsewhere the boot time): a record from an earlier boot is stale. */
  boot: string | null;
  /** The pid namespace (Linux), so that a pid from another container is not judged here. */
  pidns: string | null;
  pid: number;
  start: string | null;
  host: string;
  kind: LockKind;
  token: string;
  since: string;
}


/** The mode to use: an explicit option wins; 'auto' yields to BIRCH_LOCK when that is set. */
export function resolveLockMode(option: LockMode | undefined): LockMode {
  const mode = option ?? 'auto';
  if (mode !== 'auto') return mode;
  const env = readEnv(LOCK_MODE_ENV);
  if (env === undefined || env === '' || env === 'auto') return 'auto';
  if (env === 'flock' || env === 'pidfile') return env;
  throw new BirchError('BAD_OPTION', `${LOCK_MODE_ENV}=${env}: expected auto, flock or pidfile`);
}

/**
 * Directories this process holds locked, by the path given: only to say, when the flock refuses,
 * that the holder is this same process (the owner record says so by itself).
 */
const heldHere = new Set<string>();

export function lockDirectory(dir: string, mode: LockMode): HeldLock {
  let flockFd: number | null = null;
  let fsExt: FsExt | null = null;
  if (mode !== 'pidfile') {
    const loaded = loadFsExt();
    fsExt = loaded.fsExt;
    if (fsExt === null && mode === 'flock') {
      throw new BirchError('UNSUPPORTED', `the flock lock needs fs-ext, which does not load here (${loaded.why}); use lock: 'auto' or 'pidfile'`);
    }
  }
  if (fsExt !== null) flockFd = takeFlock(dir, fsExt);
  const kind: LockKind = flockFd === null ? 'pidfile' : 'flock';
  let record: OwnerRecord;
  try {
    record = takeOwnerRecord(dir, kind);
  } catch (err) {
    if (flockFd !== null) releaseFlock(flockFd, fsExt as FsExt);
    throw err;
  }
  let released = false;
  heldHere.add(dir);
  return {
    kind,
    release: () => {
      if (released) return;
      released = true;
      heldHere.delete(dir);
      try {
        removeOwnRecord(dir, record);
      } finally {
        if (flockFd !== null) releaseFlock(flockFd, fsExt as FsExt);
      }
    },
  };
}

function takeFlock(dir: string, fsExt: FsExt): number {
  const fd = fs.openSync(path.join(dir, LOCK_FILE), 'w');
  try {
    // flock locks belong to the open file description, so a second handle in this same process
    // conflicts too, which is what we want: two handles on one directory would corrupt it.
    fsExt.flockSync(fd, 'exnb');
  } catch (err) {
    fs.closeSync(fd);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
      const mine = heldHere.has(dir);
      throw new BirchError(
        'DB_LOCKED',
        mine
          ? `database ${dir} is locked: this process already has it open (flock on ${LOCK_FILE}); a close() not awaited before open() is the usual cause`
          : `database ${dir} is locked: another process has it open (flock on ${LOCK_FILE})`,
        { cause: err },
      );
    }
    throw new BirchError('IO', `cannot lock ${dir}`, { cause: err });
  }
  return fd;
}

function releaseFlock(fd: number, fsExt: FsExt): void {
  try {
    fsExt.flockSync(fd, 'un');
  } finally {
    fs.closeSync(fd);
  }
}


function parseRecord(text: string): OwnerRecord | null {
  try {
    const r = JSON.parse(text) as Partial<OwnerRecord>;
    if (typeof r.pid !== 'number' || typeof r.host !== 'string' || typeof r.token !== 'string' || (r.kind !== 'flock' && r.kind !== 'pidfile')) return null;
    const str = (x: unknown): string | null => (typeof x === 'string' ? x : null);
    return { v: r.v ?? 0, dir: typeof r.dir === 'string' ? r.dir : '', boot: str(r.boot), pidns: str(r.pidns), pid: r.pid, start: typeof r.start === 'string' ? r.start : null, host: r.host, kind: r.kind, token: r.token, since: String(r.since) };
  } catch {
    return null;
  }
}

type Existing = { text: string; record: OwnerRecord | null; mtimeMs: number } | null;

function readExisting(file: string): Existing {
  try {
    const text = fs.readFileSync(file, 'utf8');
    const mtimeMs = fs.statSync(file).mtimeMs;
    return { text, record: parseRecord(text), mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new BirchError('IO', `cannot read the lock record ${file}`, { cause: err });
  }
}

/** Why an existing record still holds the directory, or null if it is stale. */
function holdsLock(existing: NonNullable<Existing>, heldFlock: boolean, me: OwnerRecord): string | null {
  const r = existing.record;
  if (r === null) {
    return Date.now() - existing.mtimeMs < TORN_RECORD_MS ? 'its lock record is being written' : null;
  }
  if (r.host === me.host && !otherBoot(r.boot, me.boot)) {
    // A copy of a directory (a backup, a test fixture) carries the record of the original's holder.
    if (r.dir !== '' && r.dir !== me.dir) return null;
    if (r.kind === 'flock' && heldFlock) return null;
  }
  return ownerAlive(r, me);
}

/**
 * Why the process a record names (an owner record or the steal mutex's) must be taken as running,
 * or null if it is known gone. Only a process of this host, this boot and this pid namespace can
 * be checked; any other is taken as running, and the reason says which file to delete.
 */
function ownerAlive(r: OwnerRecord, me: OwnerRecord): string | null {
  // Another host's pids (and, on network file systems, its device numbers) mean nothing here.
  if (r.host !== me.host) {
    return `process ${r.pid} on host ${r.host} holds it (birchdb cannot check a process on another host; if it is gone, delete ${OWNER_FILE})`;
  }
  if (otherBoot(r.boot, me.boot)) return null; // written before a reboot
  if (r.pidns !== null && me.pidns !== null && r.pidns !== me.pidns) {
    return `process ${r.pid} in another pid namespace (a container) holds it (birchdb cannot check it from here; if it is gone, delete ${OWNER_FILE})`;
  }
  if (!isAlive(r.pid, r.start)) return null;
  return r.pid === process.pid ? 'this process already has it open (a close() not awaited before open() is the usual cause)' : `process ${r.pid} has it open (since ${r.since}; if it is not running, delete ${OWNER_FILE})`;
}




function newRecord(dir: string, kind: LockKind): OwnerRecord {
  return {
    v: OWNER_RECORD_VERSION,
    dir: directoryIdentity(dir),
    boot: bootIdentity(),
    pidns: pidNamespace(),
    pid: process.pid,
    start: processStart(process.pid),
    host: os.hostname(),
    kind,
    token: randomBytes(8).toString('hex'),
    since: new Date().toISOString(),
  };
}

function takeOwnerRecord(dir: string, kind: LockKind): OwnerRecord {
  const file = path.join(dir, OWNER_FILE);
  const record = newRecord(dir, kind);
  const locked = (why: string, site: string = OWNER_FILE): BirchError => new BirchError('DB_LOCKED', `database ${dir} is locked: ${why}`, { site: { file: site } });
  if (!createRecord(dir, file, record)) {
    const existing = readExisting(file);
    if (existing !== null) {
      const why = holdsLock(existing, kind === 'flock', record);
      if (why !== null) throw locked(why);
    }
    // Stale (or just removed): replace it under the mutex, judging it again inside.
    withStealMutex(dir, record, () => {
      const again = readExisting(file);
      if (again !== null) {
        if (existing === null || again.text !== existing.text) throw locked('another opener took it just now');
        fs.rmSync(file, { force: true });
      }
      if (!createRecord(dir, file, record)) throw locked('another opener took it just now');
    });
  }
  // The record in place must be ours: if a stealer misjudged and replaced it, refuse, and leave
  // the other's record alone. If reading it back fails, ours must not stay behind naming a
  // process that does not hold the directory.
  let ours: boolean;
  try {
    ours = readExisting(file)?.record?.token === record.token;
  } catch (err) {
    try {
      removeOwnRecord(dir, record);
    } catch {
      // Reported below; the record names this process, which a later opener here can judge.
    }
    throw err;
  }
  if (!ours) throw locked('another opener took it just now');
  try {
    removeOrphanTemps(dir);
  } catch {
    // Tidying only: a temp file that cannot be removed now is removed by a later opener.
  }
  return record;
}

/** Device and inode of the directory: a copy has others, a rename keeps them. */
function directoryIdentity(dir: string): string {
  const st = fs.statSync(dir, { bigint: true });
  return `${st.dev}:${st.ino}`;
}

/**
 * Creates the record whole or not at all; false if one exists. The content goes to a temporary
 * file first, which is then hard-linked to the record's name (link fails if the name exists):
 * a holder killed while creating it leaves either no record or a complete one, never an empty
 * file that would read as "being written". Where the file system has no hard links, O_EXCL
 * create-then-write is used, and a holder killed in between leaves a record that reads as torn.
 */
function createRecord(dir: string, file: string, record: OwnerRecord): boolean {
  const text = JSON.stringify(record) + '\n';
  const tmp = path.join(dir, `${TEMP_PREFIX}${record.pid}-${record.token}-${hostTag()}`);
  try {
    fs.writeFileSync(tmp, text, { mode: 0o644 });
  } catch (err) {
    throw new BirchError('IO', `cannot write the lock record ${tmp}`, { cause: err });
  }
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') {
      throw new BirchError('IO', `cannot create the lock record ${file}`, { cause: err });
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return createExclusive(file, text);
}

function createExclusive(file: string, text: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new BirchError('IO', `cannot create the lock record ${file}`, { cause: err });
  }
  try {
    fs.writeSync(fd, text);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw new BirchError('IO', `cannot write the lock record ${file}`, { cause: err });
  }
  fs.closeSync(fd);
  return true;
}

/** Temporary records left by openers on this host killed between writing and linking them (their pid is gone). */
function removeOrphanTemps(dir: string): void {
  const suffix = `-${hostTag()}`;
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(TEMP_PREFIX) || !name.endsWith(suffix)) continue;
    const pid = Number(name.slice(TEMP_PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !isAlive(pid, null)) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/**
 * Runs `body` holding LOCK.steal: a directory holding `owner`, the opener's record. A mutex is
 * removed as stale only when its owner is known gone (this host, and its process dead or from an
 * earlier boot) or, when it has no readable owner (killed between mkdir and writing it), once
 * older than STEAL_MUTEX_STALE_MS. A live owner's mutex is never removed: an opener paused inside
 * it keeps it. Each opener removes only a mutex that holds its own token.
 */
function withStealMutex(dir: string, me: OwnerRecord, body: () => void): void {
  const mutex = path.join(dir, STEAL_MUTEX);
  const ownerFile = path.join(mutex, 'owner');
  const deadline = Date.now() + STEAL_MUTEX_STALE_MS + 1_000;
  for (;;) {
    try {
      fs.mkdirSync(mutex);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new BirchError('IO', `cannot create ${mutex}`, { cause: err });
      if (stealMutexIsStale(mutex, ownerFile, me)) {
        fs.rmSync(mutex, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new BirchError('DB_LOCKED', `database ${dir} is locked: another opener is replacing a stale lock record (if no process has it open, delete ${STEAL_MUTEX})`, { site: { file: STEAL_MUTEX } });
      }
      // Held for microseconds by a live opener.
      Atomics.wait(SLEEPER, 0, 0, 10);
      continue;
    }
    try {
      fs.writeFileSync(ownerFile, JSON.stringify(me));
      break;
    } catch (err) {
      // An ownerless mutex would hold every opener back until it turned stale.
      fs.rmSync(mutex, { recursive: true, force: true });
      throw new BirchError('IO', `cannot write ${ownerFile}`, { cause: err });
    }
  }
  try {
    body();
  } finally {
    if (readExisting(ownerFile)?.record?.token === me.token) fs.rmSync(mutex, { recursive: true, force: true });
  }
}

function stealMutexIsStale(mutex: string, ownerFile: string, me: OwnerRecord): boolean {
  let owner: Existing;
  let ageMs: number;
  try {
    owner = readExisting(ownerFile);
    ageMs = Date.now() - fs.statSync(mutex).mtimeMs;
  } catch {
    return false; // changing under us: look again
  }
  const r = owner?.record ?? null;
  return r === null ? ageMs > STEAL_MUTEX_STALE_MS : ownerAlive(r, me) === null;
}

function removeOwnRecord(dir: string, record: OwnerRecord): void {
  const file = path.join(dir, OWNER_FILE);
  const existing = readExisting(file);
  // Only our own: a record that is not ours means ours was judged stale and replaced, which the
  // protocol does only when this process looked dead; never remove the new holder's.
  if (existing?.record?.token === record.token) fs.rmSync(file, { force: true });
}
