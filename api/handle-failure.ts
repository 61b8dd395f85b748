// The failure that ends a handle's writes: a failed write or sync, a dead thread, a bug. The first
// one is kept; every later write is refused with it until the database is reopened.
import type { BirchError } from '../platform/errors.js';

export class HandleFailure {
  #error: BirchError | undefined;
  /** Whether some caller was told of it (a rejected call); if none was, close() tells. */
  reported = false;

  get error(): BirchError | undefined {
    return this.#error;
  }

  get failed(): boolean {
    return this.#error !== undefined;
  }

  /** Records `err` unless a failure came first; returns the one that counts. */
  set(err: BirchError): BirchError {
    this.#error ??= err;
    return this.#error;
  }

  /** Throws the failure, if any, to a caller (who is then told). */
  throwIfFailed(): void {
    if (this.#error === undefined) return;
    this.reported = true;
    throw this.#error;
  }
}
