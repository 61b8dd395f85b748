// The directory lock, both kinds (platform/directory-lock.ts): fs-ext's flock where it loads, and the owner
// record that needs no native code. Each must refuse a second handle in this process and a second
// process, exclude the other kind, and free the directory when its holder is SIGKILLed.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open, type LockMode } from '../../api/index.js';
import { OWNER_FILE, STEAL_MUTEX, STEAL_MUTEX_STALE_MS, TEMP_PREFIX } from '../../platform/directory-lock.js';
import { loadFsExt } from '../../platform/native.js';
import { processStart } from '../../platform/process-identity.js';
import { isCode, rmDir, tmpDir } from '../helpers/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, 'lock-child.js');
// Not compiled: it lives next to this test's source.
const BLOCK_FS_EXT = path.resolve(here, '../../../test/lock/block-fs-ext.cjs');

interface Holder {
  proc: ChildProcess;
  line: string;
}

/** Starts a child that opens `dir`; resolves with its first line once it has said it. */
function child(dir: string, mode: LockMode, opts: { blockFsExt?: boolean } = {}): Promise<Holder> {
  const args = [...(opts.blockFsExt === true ? ['-r', BLOCK_FS_EXT] : []), CHILD, dir, mode];
  const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ proc, line: out.slice(0, nl) });
    });
    proc.on('exit', (code, signal) => reject(new Error(`lock child exited (${code ?? signal}) before reporting: ${err}`)));
  });
}

function kill(h: Holder): Promise<void> {
  return new Promise((resolve) => {
    if (h.proc.exitCode !== null || h.proc.signalCode !== null) return resolve();
    h.proc.removeAllListeners('exit');
    h.proc.on('exit', () => resolve());
    h.proc.kill('SIGKILL');
  });
}

function ownerRecord(dir: string): { pid: number; kind: string } {
  return JSON.parse(fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as { pid: number; kind: string };
}

describe('lock: the directory lock, with fs-ext and without it', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => (dir = tmpDir('birch-lock')));
  afterEach(() => rmDir(dir));

  it("this repository's install has fs-ext built, so the flock path is the one tested as 'flock'", () => {
    const loaded = loadFsExt();
    assert.ok(loaded.fsExt !== null, `fs-ext does not load: ${loaded.why}`);
  });

  for (const mode of ['flock', 'pidfile'] as const) {
    describe(`lock: '${mode}'`, () => {
      it('is the kind the handle reports, and a second handle in this process is refused until the first closes', async () => {
        const db = await open(dir, { lock: mode });
        assert.equal(db.stats({ trees: false }).implementation.lock, mode);
        assert.equal(ownerRecord(dir).pid, process.pid);
        await assert.rejects(open(dir, { lock: mode }), isCode('DB_LOCKED'));
        await db.close();
        assert.ok(!fs.existsSync(path.join(dir, OWNER_FILE)), 'close removes the owner record');
        await (await open(dir, { lock: mode })).close();
      });

      it('refuses a second process, and frees the directory when the holder is SIGKILLed', async () => {
        const holder = await child(dir, mode);
        assert.equal(holder.line, `HELD ${mode}`);
        try {
          await assert.rejects(open(dir, { lock: mode }), isCode('DB_LOCKED'));
          const other = await child(dir, mode);
          assert.equal(other.line, 'REFUSED DB_LOCKED');
        } finally {
          await kill(holder);
        }
        // The killed holder's record is still there: its process is gone, so the next opener replaces it.
        assert.ok(fs.existsSync(path.join(dir, OWNER_FILE)), 'a SIGKILL leaves the owner record behind');
        const db = await open(dir, { lock: mode });
        assert.equal(ownerRecord(dir).pid, process.pid);
        await db.close();
      });
    });
  }

  it('the two kinds exclude each other, both ways', async () => {
    for (const [held, tried] of [['flock', 'pidfile'], ['pidfile', 'flock']] as const) {
      const holder = await child(dir, held);
      assert.equal(holder.line, `HELD ${held}`);
      try {
        await assert.rejects(open(dir, { lock: tried }), isCode('DB_LOCKED'), `${tried} while ${held} holds`);
      } finally {
        await kill(holder);
      }
      await (await open(dir, { lock: tried })).close();
    }
  });

  it('without fs-ext: auto falls back to the owner record, flock is UNSUPPORTED, and a flock holder still excludes it', async () => {
    const auto = await child(dir, 'auto', { blockFsExt: true });
    assert.equal(auto.line, 'HELD pidfile');
    await kill(auto);
    const forced = await child(dir, 'flock', { blockFsExt: true });
    assert.equal(forced.line, 'REFUSED UNSUPPORTED');
    const db = await open(dir, { lock: 'flock' });
    try {
      const refused = await child(dir, 'auto', { blockFsExt: true });
      assert.equal(refused.line, 'REFUSED DB_LOCKED');
    } finally {
      await db.close();
    }
  });

  it('BIRCH_LOCK forces the kind under auto; an explicit option wins; bad values are BAD_OPTION', async () => {
    const saved = process.env.BIRCH_LOCK;
    try {
      process.env.BIRCH_LOCK = 'pidfile';
      let db = await open(dir);
      assert.equal(db.stats({ trees: false }).implementation.lock, 'pidfile');
      await db.close();
      db = await open(dir, { lock: 'flock' });
      assert.equal(db.stats({ trees: false }).implementation.lock, 'flock');
      await db.close();
      process.env.BIRCH_LOCK = 'fcntl';
      await assert.rejects(open(dir), isCode('BAD_OPTION'));
      // An explicit option wins, and the threads, which take no lock, never read it.
      await (await open(dir, { lock: 'pidfile' })).close();
    } finally {
      if (saved === undefined) delete process.env.BIRCH_LOCK;
      else process.env.BIRCH_LOCK = saved;
    }
    await assert.rejects(open(dir, { lock: 'fcntl' as LockMode }), isCode('BAD_OPTION'));
  });

  describe('owner records left behind', () => {
    const write = (d: string, record: object | string, ageMs = 0): void => {
      const file = path.join(d, OWNER_FILE);
      fs.writeFileSync(file, typeof record === 'string' ? record : JSON.stringify(record));
      if (ageMs > 0) {
        const t = new Date(Date.now() - ageMs);
        fs.utimesSync(file, t, t);
      }
    };
    const base = { v: 1, host: os.hostname(), kind: 'pidfile', token: 'feedface', since: '2026-01-01T00:00:00Z' };

    it('a live process with the recorded start time holds it; the same pid with another start time is a reused pid', async function () {
      const live = process.ppid;
      const start = processStart(live);
      if (start === null) this.skip(); // no process start times on this platform
      write(dir, { ...base, pid: live, start });
      await assert.rejects(open(dir, { lock: 'pidfile' }), isCode('DB_LOCKED'));
      write(dir, { ...base, pid: live, start: String(Number(start) + 1) });
      await (await open(dir, { lock: 'pidfile' })).close();
    });

    it('a copy of a directory that is open here opens (the record names the original directory)', async () => {
      const db = await open(dir, { lock: 'pidfile' });
      const copy = tmpDir('birch-lock-copy');
      try {
        await db.put('k', 'v');
        fs.cpSync(dir, copy, { recursive: true });
        assert.ok(fs.existsSync(path.join(copy, OWNER_FILE)), 'the copy carries the record');
        const other = await open(copy, { lock: 'pidfile' });
        assert.equal(other.get('k')?.toString(), 'v');
        await other.close();
      } finally {
        await db.close();
        rmDir(copy);
      }
    });

    it('a record from another host is taken as live, and the error names the file to delete', async () => {
      // Its directory identity differs too, as device numbers do across NFS clients: the host decides first.
      write(dir, { ...base, pid: 1, start: null, host: 'some-other-host', dir: '1:2' });
      await assert.rejects(open(dir, { lock: 'pidfile' }), (e: unknown) => isCode('DB_LOCKED')(e) && /some-other-host/.test((e as Error).message) && (e as Error).message.includes(OWNER_FILE));
    });

    it('a live pid recorded before the last boot is stale; a dead pid in another pid namespace is not judged', async () => {
      const live = process.ppid;
      write(dir, { ...base, pid: live, start: processStart(live), boot: 'an-earlier-boot' });
      await (await open(dir, { lock: 'pidfile' })).close();
      write(dir, { ...base, pid: 2 ** 22 + 7, start: null, pidns: 'pid:[1]' });
      const ns = process.platform === 'linux' ? fs.readlinkSync('/proc/self/ns/pid') : null;
      if (ns === null) return; // pid namespaces are Linux's
      await assert.rejects(open(dir, { lock: 'pidfile' }), (e: unknown) => isCode('DB_LOCKED')(e) && /pid namespace/.test((e as Error).message) && (e as Error).message.includes(OWNER_FILE));
    });

    it('a steal mutex whose owner is alive is never removed, however old; a dead owner\'s goes at once', async () => {
      write(dir, { ...base, pid: 2 ** 22 + 7, start: null });
      const mutex = path.join(dir, STEAL_MUTEX);
      fs.mkdirSync(mutex);
      fs.writeFileSync(path.join(mutex, 'owner'), JSON.stringify({ ...base, pid: process.ppid, start: processStart(process.ppid), token: 'beef' }));
      const old = new Date(Date.now() - 60_000);
      fs.utimesSync(mutex, old, old);
      await assert.rejects(open(dir, { lock: 'pidfile' }), (e: unknown) => isCode('DB_LOCKED')(e) && (e as Error).message.includes(STEAL_MUTEX));
      assert.ok(fs.existsSync(mutex), 'a live owner keeps its mutex');
      fs.writeFileSync(path.join(mutex, 'owner'), JSON.stringify({ ...base, pid: 2 ** 22 + 9, start: null, token: 'dead' }));
      await (await open(dir, { lock: 'pidfile' })).close();
      assert.ok(!fs.existsSync(mutex));
    });

    it('an unreadable record is being written while young, and torn by a crash when old', async () => {
      write(dir, '');
      await assert.rejects(open(dir, { lock: 'pidfile' }), isCode('DB_LOCKED'));
      write(dir, '{"pid":', 60_000);
      await (await open(dir, { lock: 'pidfile' })).close();
    });

    it('a temporary record left by an opener on this host killed before linking it is removed by the next holder', async () => {
      const tag = os.hostname().replace(/[^A-Za-z0-9.]/g, '_');
      const orphan = path.join(dir, `${TEMP_PREFIX}${2 ** 22 + 7}-0123456789abcdef-${tag}`);
      const foreign = `${TEMP_PREFIX}${2 ** 22 + 7}-fedcba9876543210-some-other-host`;
      fs.writeFileSync(orphan, '{"pid":');
      fs.writeFileSync(path.join(dir, foreign), '{"pid":');
      await (await open(dir, { lock: 'pidfile' })).close();
      assert.ok(!fs.existsSync(orphan));
      assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('LOCK.pid')), [foreign], "nothing of this host's lock is left after close; another host's temp file is not judged here");
    });

    it('a steal mutex left by a killed opener holds the next opener back only until it turns stale, then is removed', async () => {
      write(dir, { ...base, pid: 2 ** 22 + 7, start: null }); // no such process: pids stop at 2^22 on Linux
      const mutex = path.join(dir, STEAL_MUTEX);
      fs.mkdirSync(mutex);
      // Without an owner it turns stale STEAL_MUTEX_STALE_MS after its mtime, by the clock the lock
      // reads too: the open may end only after that moment (an ordering, not a duration).
      const staleAt = fs.statSync(mutex).mtimeMs + STEAL_MUTEX_STALE_MS;
      const db = await open(dir, { lock: 'pidfile' });
      const openedAt = Date.now();
      await db.close();
      assert.ok(openedAt > staleAt, `the open ended ${(staleAt - openedAt).toFixed(0)} ms before the mutex turned stale: it did not wait for it`);
      assert.ok(!fs.existsSync(mutex));
    });

    it('many processes racing for a directory with a dead owner: exactly one gets it, every round', async () => {
      const ROUNDS = 4;
      const RACERS = 6;
      for (let round = 0; round < ROUNDS; round++) {
        write(dir, { ...base, pid: 2 ** 22 + 7, start: null });
        const racers = await Promise.all(Array.from({ length: RACERS }, () => child(dir, 'pidfile')));
        try {
          const lines = racers.map((r) => r.line).sort();
          assert.equal(lines.filter((l) => l === 'HELD pidfile').length, 1, `round ${round}: ${lines.join(', ')}`);
          assert.deepEqual(lines.filter((l) => l !== 'HELD pidfile'), Array(RACERS - 1).fill('REFUSED DB_LOCKED'));
          const holder = racers.find((r) => r.line === 'HELD pidfile') as Holder;
          assert.equal(ownerRecord(dir).pid, holder.proc.pid, 'the record names the winner');
        } finally {
          await Promise.all(racers.map(kill));
        }
      }
    });
  });
});
