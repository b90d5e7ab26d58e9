/**
 * Output directories: entk never replaces what it did not write. Every command that writes a
 * directory (a run, a kernel store, a finetune recording, an experiment) goes through here:
 *
 * - {@link checkOutputDir}: the target must be new, an empty directory, or an entk output of the
 *   same kind (recognised by a marker file: a JSON file, with a `format` field where the kind has
 *   one), which is replaced only with `overwrite`; anything else is refused by name, saying what the
 *   directory holds;
 * - {@link withOutputLock}: a lock file `.<name>.lock` beside the target, created with O_EXCL and
 *   holding the owner's pid and host, for as long as the target is written; a second writer gets
 *   an error naming the target and the pid. A lock whose process is gone (same host, pid not alive)
 *   is taken over with a warning;
 * - {@link cleanStaleTemporaries}: the hidden `.<name>.tmp-<pid>-<hex>` siblings that a killed
 *   writer left behind (src/util/atomic.ts) are removed when entk next writes that target (under
 *   its lock, so no live writer can own them);
 * - {@link writeOutputDir}: all three around an atomic directory build (writeDirAtomic).
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, unlinkSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { writeDirAtomic } from './atomic.js';

/** A kind of entk output directory, recognised by a marker file. */
export interface OutputKind {
  /** What it is, for messages: 'kernel store', 'run', 'finetune recording', 'experiment'. */
  name: string;
  /** The JSON file every directory of this kind holds (e.g. 'manifest.json'). */
  marker: string;
  /** The value of the marker's `format` field; without it, the marker must hold `entkVersion`. */
  format?: string;
}

/** Options of {@link checkOutputDir} and {@link writeOutputDir}. */
export interface OutputOptions {
  /** The argument named in errors ('out', 'outDir', ...; the CLI shows its flag). */
  argument: string;
  kind: OutputKind;
  /** Replace (or, for resumable outputs, reuse) an existing output of the same kind. Default false. */
  overwrite?: boolean;
  /**
   * Whether the directory is replaced as a whole (default true). An output written into (an
   * experiment) is not, and may then be the current directory.
   */
  whole?: boolean;
}

/** What {@link checkOutputDir} found: nothing, an empty directory, or an output of the kind. */
export type OutputState = 'new' | 'empty' | 'existing';

/** Whether `dir` holds an output of `kind` (its marker file parses and carries the mark). */
export async function isOutputOfKind(dir: string, kind: OutputKind): Promise<boolean> {
  try {
    const json = JSON.parse(await fs.readFile(path.join(dir, kind.marker), 'utf8'));
    if (json === null || typeof json !== 'object') return false;
    return kind.format !== undefined ? json.format === kind.format : typeof json.entkVersion === 'string';
  } catch {
    return false;
  }
}

/** 'a', 'a and b', 'a, b, c and 4 more' (sorted names, hidden ones included). */
function listing(names: string[]): string {
  const sorted = [...names].sort();
  if (sorted.length <= 3) return sorted.join(sorted.length === 2 ? ' and ' : ', ');
  return `${sorted.slice(0, 3).join(', ')} and ${sorted.length - 3} more`;
}

function article(name: string): string {
  return /^[aeiou]/i.test(name) ? `an ${name}` : `a ${name}`;
}

/**
 * Check that `dir` may receive an output of `options.kind` and say what is there now. Throws an
 * InvalidArgumentError naming `options.argument`, the path and what it holds when `dir` (or its
 * nearest existing ancestor) is not a directory, holds files that are not such an output, holds
 * one and `overwrite` is not set, or (for whole-directory outputs) is or contains the current
 * directory.
 */
export async function checkOutputDir(dir: string, options: OutputOptions): Promise<OutputState> {
  const { argument, kind } = options;
  const target = path.resolve(dir);
  const stat = await fs.stat(target).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null;
    throw error;
  });
  if (stat === null) {
    // The nearest existing ancestor must be a directory (else mkdir fails with ENOTDIR).
    let up = path.dirname(target);
    for (;;) {
      const s = await fs.stat(up).catch(() => null);
      if (s) {
        if (!s.isDirectory()) {
          throw new InvalidArgumentError(
            argument,
            dir,
            `a path inside a directory (${up} is not a directory)`,
          );
        }
        return 'new';
      }
      const parent = path.dirname(up);
      if (parent === up) return 'new';
      up = parent;
    }
  }
  if (!stat.isDirectory()) {
    throw new InvalidArgumentError(
      argument,
      dir,
      `a directory for ${article(kind.name)} (${target} is a file)`,
    );
  }
  const cwd = path.resolve('.');
  if (options.whole !== false && (cwd === target || cwd.startsWith(`${target}${path.sep}`))) {
    throw new InvalidArgumentError(
      argument,
      dir,
      `a directory other than the current one or one containing it (${article(kind.name)} replaces its directory whole)`,
    );
  }
  const entries = await fs.readdir(target);
  if (entries.length === 0) return 'empty';
  if (await isOutputOfKind(target, kind)) {
    if (options.overwrite) return 'existing';
    throw new InvalidArgumentError(
      argument,
      dir,
      `a new or empty directory (${target} holds ${article(kind.name)}: replace it with --overwrite)`,
    );
  }
  throw new InvalidArgumentError(
    argument,
    dir,
    `a new or empty directory, or ${article(kind.name)} written by entk (${target} holds ${listing(entries)}, which is not ${article(kind.name)}; nothing was changed)`,
  );
}

// ---- locks ------------------------------------------------------------------------------------

interface LockInfo {
  pid: number;
  host: string;
  nonce: string;
  since: string;
  command: string;
}

/** The lock file of a target: `.<name>.lock` beside it. */
export function lockFile(target: string): string {
  const t = path.resolve(target);
  return path.join(path.dirname(t), `.${path.basename(t)}.lock`);
}

/** Whether process `pid` is alive on this host (EPERM: alive, owned by someone else). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const heldLocks = new Set<string>();
let exitHook = false;

async function readLock(file: string): Promise<LockInfo | null> {
  try {
    const json = JSON.parse(await fs.readFile(file, 'utf8')) as LockInfo;
    if (typeof json?.pid === 'number' && typeof json.host === 'string') return json;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
  }
  // Unreadable or torn (a writer killed between open and write): nobody can be shown to hold it.
  return { pid: 0, host: os.hostname(), nonce: '', since: '', command: '' };
}

/**
 * Take the lock of `target` (see the module comment). Returns the release function. Throws an
 * InvalidArgumentError naming `argument`, the target and the owner's pid and host when a live
 * process holds it.
 */
export async function acquireOutputLock(
  target: string,
  argument: string,
  what: string,
): Promise<() => Promise<void>> {
  const file = lockFile(target);
  await fs.mkdir(path.dirname(file), { recursive: true });
  const mine: LockInfo = {
    pid: process.pid,
    host: os.hostname(),
    nonce: randomBytes(8).toString('hex'),
    since: new Date().toISOString(),
    command: process.argv.slice(1).join(' ').slice(0, 300),
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const handle = await fs.open(file, 'wx');
      try {
        await handle.writeFile(`${JSON.stringify(mine)}\n`);
      } finally {
        await handle.close();
      }
      heldLocks.add(file);
      if (!exitHook) {
        exitHook = true;
        process.on('exit', () => {
          for (const f of heldLocks) {
            try {
              unlinkSync(f);
            } catch {
              // already gone
            }
          }
        });
      }
      return async () => {
        heldLocks.delete(file);
        const now = await readLock(file);
        if (now?.nonce === mine.nonce) await fs.rm(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = await readLock(file);
    if (owner === null) continue; // released meanwhile
    const sameHost = owner.host === os.hostname();
    if (!sameHost || processAlive(owner.pid)) {
      throw new InvalidArgumentError(
        argument,
        target,
        `${article(what)} no other process is writing (${target} is being written by pid ${owner.pid}${sameHost ? '' : ` on host ${owner.host}`} since ${owner.since || 'an unknown time'}; wait for it to finish${sameHost ? '' : `, or delete ${file} if that process is gone`})`,
      );
    }
    // Stale: move it aside (only one taker can), check that it is the lock we judged, drop it.
    const aside = `${file}.stale-${mine.nonce}`;
    try {
      await fs.rename(file, aside);
    } catch {
      continue;
    }
    const moved = await readLock(aside);
    if (moved && moved.nonce !== owner.nonce) {
      // A live lock taken meanwhile: put it back (link never replaces) and report it held.
      await fs.link(aside, file).catch(() => undefined);
      await fs.rm(aside, { force: true });
      continue;
    }
    await fs.rm(aside, { force: true });
    process.stderr.write(
      `entk: warning: taking over the lock of ${target} from pid ${owner.pid}, which is no longer running\n`,
    );
  }
  throw new InvalidArgumentError(
    argument,
    target,
    `${article(what)} no other process is writing (could not take ${file})`,
  );
}

/** Run `fn` holding the lock of `target` (released afterwards, also on error). */
export async function withOutputLock<T>(
  target: string,
  argument: string,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  const release = await acquireOutputLock(target, argument, what);
  try {
    return await fn();
  } finally {
    await release();
  }
}

// ---- stale temporaries ------------------------------------------------------------------------

/** `.<name>.tmp-<pid>-<hex>` or `.<name>.tmp-<pid>-<hex>.old` (src/util/atomic.ts). */
const TEMPORARY = /^\.(.+)\.tmp-(\d+)-[0-9a-f]+(\.old)?$/;

/**
 * Remove the temporaries in `dir` whose writer (the pid in the name) is no longer alive; with
 * `name`, only those of that target. A `.old` copy whose target is missing (a writer killed between
 * the two renames of a directory swap) is renamed back instead. Call it holding the target's lock
 * (or the lock of the directory holding them). Returns the names removed or restored.
 */
export async function cleanStaleTemporaries(dir: string, name?: string): Promise<string[]> {
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  const done: string[] = [];
  const olds = entries.filter((e) => e.endsWith('.old'));
  for (const entry of [...olds, ...entries.filter((e) => !e.endsWith('.old'))]) {
    const m = TEMPORARY.exec(entry);
    if (!m || (name !== undefined && m[1] !== name)) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || processAlive(pid)) continue;
    const full = path.join(dir, entry);
    if (m[3]) {
      const original = path.join(dir, m[1]!);
      const restored = await fs
        .rename(full, original)
        .then(() => true)
        .catch(() => false);
      if (restored) {
        done.push(entry);
        continue;
      }
    }
    await fs.rm(full, { recursive: true, force: true });
    done.push(entry);
  }
  return done;
}

/**
 * Write the output directory `dir` atomically: under its lock, after removing stale temporaries
 * of it, check it ({@link checkOutputDir}) and build it aside with `build`, then rename it in
 * (replacing an existing output of the kind only with `overwrite`).
 */
export async function writeOutputDir(
  dir: string,
  options: OutputOptions,
  build: (tmpDir: string) => Promise<void>,
): Promise<void> {
  const target = path.resolve(dir);
  await checkOutputDir(dir, options);
  await withOutputLock(target, options.argument, options.kind.name, async () => {
    await cleanStaleTemporaries(path.dirname(target), path.basename(target));
    const state = await checkOutputDir(dir, options);
    await writeDirAtomic(target, build, { replace: state === 'existing' });
  });
}
