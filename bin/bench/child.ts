// One engine, one workload, one fresh directory, in a process of its own (so that no engine
// inherits another's memory, threads or page cache warmth in the process). Reports progress and
// the result to the parent over IPC.
import fs from 'node:fs';
import { openEngine, type Engine, type EngineName } from './engines.js';
import { measure } from './measure.js';
import { WORKLOADS, type BenchOptions } from './workloads.js';

export interface ChildPlan {
  engine: EngineName;
  workload: string;
  options: BenchOptions;
  dir: string;
}

export type ChildMessage =
  | { kind: 'progress'; done: number; total: number }
  | { kind: 'result'; result: import('./measure.js').BenchResult }
  | { kind: 'missing'; why: string }
  | { kind: 'error'; message: string };

const send = (m: ChildMessage): void => {
  process.send?.(m);
};

const plan = JSON.parse(process.argv[2] as string) as ChildPlan;
try {
  const w = WORKLOADS[plan.workload];
  if (w === undefined) throw new Error(`unknown workload ${plan.workload}`);
  fs.mkdirSync(plan.dir, { recursive: true });
  const opts = { dir: plan.dir, sync: plan.options.sync, cacheSize: plan.options.cacheSize, ...(plan.options.memoryLimit === undefined ? {} : { memoryLimit: plan.options.memoryLimit }) };
  const first = await openEngine(plan.engine, opts);
  if ('missing' in first) send({ kind: 'missing', why: first.missing });
  else {
    let opened: Engine | undefined = first;
    const open = async (): Promise<Engine> => {
      if (opened !== undefined) {
        const e = opened;
        opened = undefined;
        return e;
      }
      const e = await openEngine(plan.engine, opts);
      if ('missing' in e) throw new Error(e.missing);
      return e;
    };
    send({ kind: 'result', result: await measure(open, w, plan.options, plan.dir, (done, total) => send({ kind: 'progress', done, total })) });
  }
} catch (err) {
  send({ kind: 'error', message: err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err) });
}
process.disconnect?.();
