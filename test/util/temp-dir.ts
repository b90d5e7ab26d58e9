// A temporary directory for a test file (or suite), removed when it finishes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';

/**
 * A fresh directory `<tmp>/entk-<label>-XXXXXX`, created now and removed (recursively) after the
 * enclosing describe block, or after the test file when called at the top level.
 */
export function tempDir(label: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `entk-${label}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
