/**
 * Atomic file-system writes: a reader sees the old content or the new one, never a half-written
 * file. Files go to a temporary sibling and are renamed over the target (rename(2) is atomic on
 * one file system); directories are built aside and swapped in.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EntkError } from '../errors.js';

function temporarySibling(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
}

/** Write `data` to `file` atomically (creating parent directories). */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = temporarySibling(file);
  try {
    const handle = await fs.open(tmp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
}

/**
 * Stream chunks to `file` atomically: `produce` receives a `write` function; the file appears
 * under its final name only after `produce` resolves. For outputs too large to hold in memory.
 */
export async function streamFileAtomic(
  file: string,
  produce: (write: (chunk: Uint8Array | string) => Promise<void>) => Promise<void>,
): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = temporarySibling(file);
  const handle = await fs.open(tmp, 'w');
  try {
    await produce(async (chunk) => {
      if (typeof chunk === 'string') await handle.write(chunk);
      else await handle.write(chunk);
    });
    await handle.sync();
    await handle.close();
    await fs.rename(tmp, file);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw error;
  }
}

/**
 * Build a directory atomically: `build` fills a temporary sibling directory, which then replaces
 * `dir` (the previous content stays intact until the new one is complete). With `replace: false`
 * the temporary is only renamed in where `dir` is missing or an empty directory; anything else
 * there is left alone and an error thrown. Whether `dir` may be replaced is the caller's decision
 * (src/util/output.ts decides it for entk's output directories).
 */
export async function writeDirAtomic(
  dir: string,
  build: (tmpDir: string) => Promise<void>,
  options: { replace?: boolean } = {},
): Promise<void> {
  dir = path.resolve(dir);
  await fs.mkdir(path.dirname(dir), { recursive: true });
  const tmp = temporarySibling(dir);
  await fs.mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
  } catch (error) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw error;
  }
  if (options.replace === false) {
    try {
      await fs.rename(tmp, dir); // replaces nothing but an empty directory
    } catch (error) {
      await fs.rm(tmp, { recursive: true, force: true });
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') {
        throw new EntkError(`${dir}: another process created it meanwhile; nothing was replaced`);
      }
      throw error;
    }
    return;
  }
  const old = `${tmp}.old`;
  const existed = await fs
    .rename(dir, old)
    .then(() => true)
    .catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false;
      throw e;
    });
  await fs.rename(tmp, dir);
  if (existed) await fs.rm(old, { recursive: true, force: true });
}

/** Write JSON (2-space indented, trailing newline) atomically. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}
