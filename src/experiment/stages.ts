/**
 * Resumable stages. An experiment is a chain of stages (train → kernels → finetune → predict →
 * compare → report); each stage's key is a hash of its own configuration and the keys of the stages
 * it reads from. A stage whose key matches the one recorded in `<out>/stages.json` is not redone, so
 * an interrupted experiment resumes where it stopped and a changed configuration redoes exactly the
 * stages it affects (and everything downstream of them).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CorruptFileError } from '../errors.js';
import { exists, writeJsonAtomic } from '../util/index.js';

/** JSON with object keys sorted, so that equal configurations hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, (v as Record<string, unknown>)[k]]),
        )
      : v,
  );
}

export function hashOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, 16);
}

interface StageRecord {
  key: string;
  finishedAt: string;
  seconds: number;
  result: unknown;
}

/**
 * What happened to a stage: 'started' (about to run; not kept in `events`), 'done' (ran, `seconds`
 * of work) or 'cached' (skipped: same inputs as a finished earlier run).
 */
export interface StageEvent {
  stage: string;
  status: 'started' | 'cached' | 'done';
  seconds: number;
}

/** Runs named stages under `outDir`, skipping those whose inputs are unchanged. */
export class StageRunner {
  private records: Record<string, StageRecord> = {};
  /** Events of this session's finished and skipped stages, in order. */
  readonly events: StageEvent[] = [];

  private constructor(
    readonly outDir: string,
    private readonly file: string,
    /** Default event callback of every stage. */
    private readonly onEvent?: (event: StageEvent) => void,
  ) {}

  /** Open (or start) the stage record `<outDir>/stages.json`. */
  static async open(outDir: string, onEvent?: (event: StageEvent) => void): Promise<StageRunner> {
    const runner = new StageRunner(outDir, path.join(outDir, 'stages.json'), onEvent);
    let text: string;
    try {
      text = await fs.readFile(runner.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return runner;
    }
    let records: unknown;
    try {
      records = JSON.parse(text);
    } catch (error) {
      throw new CorruptFileError(
        runner.file,
        `not valid JSON (${(error as Error).message}); delete it (or use --force) to start again`,
      );
    }
    if (records === null || typeof records !== 'object' || Array.isArray(records)) {
      throw new CorruptFileError(
        runner.file,
        'expected an object of stage records; delete it (or use --force) to start again',
      );
    }
    runner.records = records as Record<string, StageRecord>;
    return runner;
  }

  /**
   * Run `stage` unless a previous run with the same key finished (and, when `options.outputs` lists
   * files or directories, they all still exist); returns its (JSON) result and its key, which
   * downstream stages include in their own inputs. The fourth argument is an event callback or an
   * options object.
   */
  async run<T>(
    name: string,
    inputs: unknown,
    stage: () => Promise<T>,
    options?: ((event: StageEvent) => void) | StageOptions<T>,
  ): Promise<{ key: string; result: T; cached: boolean }> {
    const opts: StageOptions<T> = typeof options === 'function' ? { onEvent: options } : (options ?? {});
    const onEvent = opts.onEvent ?? this.onEvent;
    const key = hashOf({ name, inputs });
    const previous = this.records[name];
    if (previous && previous.key === key && (await allExist(opts.outputs?.(previous.result as T) ?? []))) {
      const event: StageEvent = { stage: name, status: 'cached', seconds: 0 };
      this.events.push(event);
      onEvent?.(event);
      return { key, result: previous.result as T, cached: true };
    }
    onEvent?.({ stage: name, status: 'started', seconds: 0 });
    const start = performance.now();
    const result = await stage();
    const seconds = (performance.now() - start) / 1000;
    this.records[name] = { key, finishedAt: new Date().toISOString(), seconds, result };
    await writeJsonAtomic(this.file, this.records);
    const event: StageEvent = { stage: name, status: 'done', seconds };
    this.events.push(event);
    onEvent?.(event);
    return { key, result, cached: false };
  }

  /** Names of the recorded (finished) stages. */
  recorded(): string[] {
    return Object.keys(this.records);
  }

  /** The recorded result of stage `name` (whatever its key), or undefined. */
  resultOf(name: string): unknown {
    return this.records[name]?.result;
  }
}

/** Options of {@link StageRunner.run}. */
export interface StageOptions<T> {
  /** Called when the stage starts (status 'started'), finishes ('done') or is skipped ('cached'). */
  onEvent?: (event: StageEvent) => void;
  /** Files or directories the stage leaves behind; a cached result whose outputs are gone is redone. */
  outputs?: (result: T) => string[];
}

async function allExist(paths: string[]): Promise<boolean> {
  for (const p of paths) if (!(await exists(p))) return false;
  return true;
}
