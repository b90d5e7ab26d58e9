/** Small file-system queries shared across modules. */
import { promises as fs } from 'node:fs';

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
