// Which JavaScript runtime is running birchdb. Bun and Deno both present Node's `process`, and
// each adds its own entry to process.versions, which is how they are told apart.

export interface RuntimeInfo {
  name: 'node' | 'bun' | 'deno';
  version: string;
}

export function currentRuntime(): RuntimeInfo {
  const v = process.versions as NodeJS.ProcessVersions & { bun?: string; deno?: string };
  if (typeof v.bun === 'string') return { name: 'bun', version: v.bun };
  if (typeof v.deno === 'string') return { name: 'deno', version: v.deno };
  return { name: 'node', version: v.node };
}
