/** Small file-system queries shared across modules. */
import { promises as fs } from 'node:fs';
import { CorruptFileError } from '../errors.js';

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

/** Read and parse a JSON file; CorruptFileError if it is not valid JSON. */
export async function readJsonFile<T>(file: string): Promise<T> {
  const text = await fs.readFile(file, 'utf8');
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new CorruptFileError(file, `not valid JSON (${(error as Error).message})`);
  }
}
