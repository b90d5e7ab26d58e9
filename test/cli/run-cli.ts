// Spawn the real `entk` CLI (node bin/entk.js) and capture its output, for CLI tests.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { runProcess } from '../util/process.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const entk = path.join(repo, 'bin/entk.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `entk <args>` in the repository root with CI=true (no progress bars), to completion, without
 * blocking the worker (test/util/process.ts). Killed after `timeoutMs` (default 300 s).
 */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 300_000,
): Promise<CliResult> {
  const r = await runProcess(process.execPath, [entk, ...args], {
    cwd: repo,
    env: { ...process.env, CI: 'true', ...env },
    timeoutMs,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
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
