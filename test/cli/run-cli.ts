// Spawn the real `entk` CLI (node bin/entk.js) and capture its output, for CLI tests.
import { spawn } from 'node:child_process';
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

/**
 * Run `entk <args>` in the repository root with CI=true (no progress bars), to completion. Async (a
 * child process, not spawnSync): a test worker blocked for long misses vitest's 60 s RPC deadline.
 * Killed after 300 s.
 */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise<CliResult>((resolve, reject) => {
    const child = spawn(process.execPath, [entk, ...args], {
      cwd: repo,
      env: { ...process.env, CI: 'true', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** {@link runCli}: several invocations run concurrently when not awaited one by one. */
export const runCliAsync = runCli;

/** Exit code 2, nothing on stdout, and exactly one line on stderr: 'entk: error: ' and `message`. */
export function expectOneLineError(r: CliResult, message: RegExp): void {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^entk: error: /);
  expect(lines[0]).toMatch(message);
}
