// Who and where this process is, as a lock record names it: its pid and start time, this boot of
// the host, its pid namespace, the host's name. Each answer is null where the platform cannot
// tell, and every caller then takes the safe side (a holder it cannot judge is alive).
import fs from 'node:fs';
import os from 'node:os';
import { deniedByRuntime } from './errors.js';

/** How far two boot times computed from the uptime may differ and still be one boot. */
const BOOT_TIME_SLACK_MS = 120_000;

/** This process's start time as the kernel reports it, or null where it cannot be read. */
export function processStart(pid: number): string | null {
  if (process.platform !== 'linux') return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // field 22 overall: starttime, in clock ticks since boot
  } catch {
    return null;
  }
}

export function isAlive(pid: number, start: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    // Never judge a holder dead on doubt: that would hand its directory to a second handle.
    const denied = deniedByRuntime(err, `checking whether process ${pid}, the lock's holder, is running`);
    if (denied !== undefined) throw denied;
    // EPERM (it exists and belongs to someone else) and anything else: alive.
  }
  if (start === null) return true;
  const now = processStart(pid);
  // Unreadable now (another platform, hidepid): trust the pid alone.
  return now === null || now === start;
}

/** Identifies this boot of the host: Linux's boot_id, elsewhere the boot time to the minute. */
export function bootIdentity(): string | null {
  if (process.platform === 'linux') {
    try {
      return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
    } catch {
      return null;
    }
  }
  const bootMs = Date.now() - os.uptime() * 1000;
  return Number.isFinite(bootMs) ? `time:${Math.round(bootMs)}` : null;
}

/**
 * Whether two boot identities are different boots. A boot time computed from the uptime drifts
 * by the clock's adjustments, so those count as one boot within BOOT_TIME_SLACK_MS; when unsure,
 * the same boot (the pid is then checked, which is the safe side).
 */
export function otherBoot(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return false;
  if (a.startsWith('time:') && b.startsWith('time:')) return Math.abs(Number(a.slice(5)) - Number(b.slice(5))) > BOOT_TIME_SLACK_MS;
  return a !== b;
}

export function pidNamespace(): string | null {
  if (process.platform !== 'linux') return null;
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}

/** A name for this host that is safe inside a file name. */
export function hostTag(): string {
  return os.hostname().replace(/[^A-Za-z0-9.]/g, '_');
}
