// Spawn the real `entk` CLI (node bin/entk.js) and capture its output, for CLI tests.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run `entk <args>` in the repository root with CI=true (no progress bars). */
export function runCli(args: string[], env: Record<string, string> = {}): CliResult {
  const result = spawnSync(process.execPath, [path.join(repo, 'bin/entk.js'), ...args], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, CI: 'true', ...env },
    timeout: 300_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
