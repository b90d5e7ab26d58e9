// Spawn the real `entk` CLI (node bin/entk.js) and capture its output, for CLI tests.
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const entk = path.join(repo, 'bin/entk.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run `entk <args>` in the repository root with CI=true (no progress bars). */
export function runCli(args: string[], env: Record<string, string> = {}): CliResult {
  const result = spawnSync(process.execPath, [entk, ...args], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, CI: 'true', ...env },
    timeout: 300_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** {@link runCli} without blocking, so that several invocations run concurrently (no timeout). */
export function runCliAsync(args: string[]): Promise<CliResult> {
  return new Promise<CliResult>((resolve) => {
    const child = spawn(process.execPath, [entk, ...args], {
      cwd: repo,
      env: { ...process.env, CI: 'true' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Exit code 2, nothing on stdout, and exactly one line on stderr: 'entk: error: ' and `message`. */
export function expectOneLineError(r: CliResult, message: RegExp): void {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^entk: error: /);
  expect(lines[0]).toMatch(message);
}
