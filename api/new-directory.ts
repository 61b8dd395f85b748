// A directory that appears whole or not at all (backup, export): built under a temporary name
// beside the target (`.<name>.<what>-<pid>-<random>`), synced, renamed to the target, and the
// parent directory synced. The target must not exist; a failure removes the temporary directory.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { NodeDirectory } from '../pager/backend.js';
import { BirchError } from '../platform/errors.js';

export class NewDirectory {
  /** The target, absolute. */
  readonly dest: string;
  /** Where the contents are built. */
  readonly tmp: string;
  readonly #what: string;
  #done = false;

  constructor(target: unknown, what: 'backup' | 'export') {
    if (typeof target !== 'string' || target === '') throw new BirchError('BAD_OPTION', `${what}() needs the path of a directory to create`);
    this.#what = what;
    this.dest = path.resolve(target);
    this.#refuseExisting('already exists');
    const parent = path.dirname(this.dest);
    fs.mkdirSync(parent, { recursive: true });
    this.tmp = path.join(parent, `.${path.basename(this.dest)}.${what}-${process.pid}-${randomBytes(6).toString('hex')}`);
    fs.mkdirSync(this.tmp);
  }

  #refuseExisting(how: string): void {
    if (fs.existsSync(this.dest)) throw new BirchError('BAD_OPTION', `the ${this.#what} target ${this.dest} ${how}; ${this.#what}() creates a new directory and never writes over one`);
  }

  /** Syncs the contents' directory entries, renames it to the target and syncs the parent. */
  commit(): void {
    new NodeDirectory(this.tmp).syncDirectory();
    // Again: rename() would silently replace an empty directory made at the target meanwhile.
    this.#refuseExisting(`was created while the ${this.#what} ran`);
    fs.renameSync(this.tmp, this.dest);
    this.#done = true;
    new NodeDirectory(path.dirname(this.dest)).syncDirectory();
  }

  /** Removes the temporary directory unless commit() put it in place. */
  dispose(): void {
    if (!this.#done) fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
