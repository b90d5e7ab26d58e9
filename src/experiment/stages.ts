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
import { writeJsonAtomic } from '../util/atomic.js';

/** JSON with object keys sorted, so that equal configurations hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
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

export interface StageEvent {
  stage: string;
  status: 'cached' | 'done';
  seconds: number;
}

/** Runs named stages under `outDir`, skipping those whose inputs are unchanged. */
export class StageRunner {
  private records: Record<string, StageRecord> = {};
  readonly events: StageEvent[] = [];

  private constructor(
    readonly outDir: string,
    private readonly file: string,
  ) {}

  static async open(outDir: string): Promise<StageRunner> {
    const runner = new StageRunner(outDir, path.join(outDir, 'stages.json'));
    try {
      runner.records = JSON.parse(await fs.readFile(runner.file, 'utf8'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    return runner;
  }

  /**
   * Run `stage` unless a previous run with the same key finished; returns its (JSON) result and
   * its key, which downstream stages include in their own inputs.
   */
  async run<T>(
    name: string,
    inputs: unknown,
    stage: () => Promise<T>,
    onEvent?: (event: StageEvent) => void,
  ): Promise<{ key: string; result: T; cached: boolean }> {
    const key = hashOf({ name, inputs });
    const previous = this.records[name];
    if (previous && previous.key === key) {
      const event: StageEvent = { stage: name, status: 'cached', seconds: 0 };
      this.events.push(event);
      onEvent?.(event);
      return { key, result: previous.result as T, cached: true };
    }
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
}
