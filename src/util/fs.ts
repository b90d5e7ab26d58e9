/** Small file-system queries shared across modules. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CorruptFileError, describeValue } from '../errors.js';

/** Whether `p` exists (a file, directory or anything else a path can name; false on any error). */
export async function exists(p: string): Promise<boolean> {
  return fs
    .access(p)
    .then(() => true)
    .catch(() => false);
}

/** Whether `p` is an existing directory (false on any error). */
export async function isDirectory(p: string): Promise<boolean> {
  return fs
    .stat(p)
    .then((s) => s.isDirectory())
    .catch(() => false);
}

/**
 * The path of `name` inside `dir`, for a file name read from a file (a manifest, an index, a
 * model.json): CorruptFileError naming `source` (the file that holds the name) unless `name` is a
 * relative path that stays inside `dir` — no absolute path, no `..` segment, no NUL, not `dir`
 * itself. With `basename` (the default) only a plain file name is accepted (no directory part);
 * `what` says what the name is (e.g. 'arrays.kernel.file').
 */
export function resolveInside(
  dir: string,
  name: unknown,
  what: string,
  source: string,
  options: { basename?: boolean } = {},
): string {
  const plain = options.basename ?? true;
  const bad = (why: string): never => {
    throw new CorruptFileError(
      source,
      `${what} ${describeValue(name)} ${why} (a file name read from a file must stay inside ${dir})`,
    );
  };
  if (typeof name !== 'string' || name === '') return bad('is not a file name');
  if (name.includes('\0')) bad('contains a NUL byte');
  if (path.isAbsolute(name) || path.win32.isAbsolute(name)) bad('is an absolute path');
  const segments = name.split(/[/\\]+/);
  if (segments.some((s) => s === '..')) bad("has a '..' segment");
  if (plain && (segments.length > 1 || name === '.')) bad('is not a plain file name');
  const root = path.resolve(dir);
  const full = path.resolve(root, name);
  const relative = path.relative(root, full);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) bad('leaves the directory');
  return path.join(dir, name);
}

/** Read and parse a JSON file; CorruptFileError if it is missing or not valid JSON. */
export async function readJsonFile<T>(file: string): Promise<T> {
  const text = await fs.readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    // Missing: a CorruptFileError naming the file, keeping the errno code for callers that expect absence.
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR')
      throw Object.assign(new CorruptFileError(file, 'missing'), { code: error.code });
    throw error;
  });
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new CorruptFileError(file, `not valid JSON (${(error as Error).message})`);
  }
}
