/** Small file-system queries shared across modules. */
import { promises as fs } from 'node:fs';

/** Whether `p` exists (a file, directory or anything else a path can name; false on any error). */
export async function exists(p: string): Promise<boolean> {
  return fs
    .access(p)
    .then(() => true)
    .catch(() => false);
}
