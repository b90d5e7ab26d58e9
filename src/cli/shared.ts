/**
 * Helpers shared by the CLI commands: parsing numeric flags with clear errors, printing JSON or
 * human output. Commands map flags onto library options objects; they hold no logic of their own.
 */

import { Option } from 'commander';
import { initBackend } from '../backend/index.js';
import { InvalidArgumentError } from '../errors.js';
import { setProgressQuiet } from '../util/index.js';

export interface GlobalOptions {
  backend?: string;
  quiet?: boolean;
}

/** Initialise the backend from --backend / ENTK_BACKEND, and silence progress for --json/--quiet. */
export async function prepare(options: { backend?: string; json?: boolean; quiet?: boolean }) {
  setProgressQuiet(Boolean(options.json || options.quiet));
  return initBackend(options.backend);
}

/** Parse an integer flag: `--name` must be an integer in [min, max]. */
export function parseInteger(flag: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^[-+]?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      const range =
        min > Number.MIN_SAFE_INTEGER && max < Number.MAX_SAFE_INTEGER
          ? ` in [${min}, ${max}]`
          : min > Number.MIN_SAFE_INTEGER
            ? ` >= ${min}`
            : '';
      throw new InvalidArgumentError(flag, value, `an integer${range}`);
    }
    return n;
  };
}

/** Parse a flag that takes one of `choices`. */
export function parseChoice<T extends string>(flag: string, choices: readonly T[]) {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(flag, value, `one of ${choices.join(', ')}`);
    }
    return value as T;
  };
}

/** Parse a `--threads` flag: 'auto' or an integer in [1, max]. */
export function parseThreads(max: number) {
  const parse = parseInteger('--threads', 1, max);
  return (value: string): number | 'auto' => (value.trim() === 'auto' ? 'auto' : parse(value));
}

/** Parse a finite number flag, optionally requiring it to be non-zero or positive. */
export function parseNumber(
  flag: string,
  constraint: 'any' | 'positive' | 'nonzero' | 'nonnegative' = 'any',
) {
  return (value: string): number => {
    const n = Number(value);
    const ok =
      value.trim() !== '' &&
      Number.isFinite(n) &&
      (constraint === 'any' ||
        (constraint === 'positive' && n > 0) ||
        (constraint === 'nonzero' && n !== 0) ||
        (constraint === 'nonnegative' && n >= 0));
    if (!ok) {
      const what = constraint === 'any' ? 'a finite number' : `a ${constraint} finite number`;
      throw new InvalidArgumentError(flag, value, what);
    }
    return n;
  };
}

/** Parse a comma-separated list of positive integers (e.g. `--widths 256,256`). */
export function parseIntegerList(flag: string) {
  return (value: string): number[] => {
    const parts = value.split(',').map((s) => s.trim());
    if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p) || Number(p) <= 0)) {
      throw new InvalidArgumentError(
        flag,
        value,
        'a comma-separated list of positive integers, e.g. 256,256',
      );
    }
    return parts.map(Number);
  };
}

/** The hidden `--lr` alias of `--learning-rate` (parsed like it). */
export function learningRateAlias(constraint: 'positive' | 'nonzero'): Option {
  return new Option('--lr <eta>', 'alias of --learning-rate')
    .argParser(parseNumber('--lr', constraint))
    .hideHelp();
}

/** The learning rate of `--learning-rate` or its alias `--lr` (at most one of them). */
export function resolveLearningRate(flags: { learningRate?: number; lr?: number }): number | undefined {
  if (flags.learningRate !== undefined && flags.lr !== undefined) {
    throw new InvalidArgumentError('--lr', flags.lr, 'either --learning-rate or its alias --lr, not both');
  }
  return flags.learningRate ?? flags.lr;
}

/** The help of a `--parameters` flag (entk kernel, entk finetune). */
export const PARAMETERS_HELP =
  "all | head | comma list of layer names (a name ending in '/' selects every layer it prefixes, e.g. block1/,head)";

/** Parse a `--parameters` flag: 'all', 'head' or a comma list of layer names / name prefixes. */
export function parseParameters(flag: string) {
  return (value: string): 'all' | 'head' | string[] => {
    if (value === 'all' || value === 'head') return value;
    const names = value.split(',').map((s) => s.trim());
    if (names.some((p) => p === '')) {
      throw new InvalidArgumentError(flag, value, 'all, head or a comma list of layer names');
    }
    return names;
  };
}

/** Print `value` as JSON (for --json) or call `human` to print a readable summary. */
export function output(json: boolean | undefined, value: unknown, human: () => void): void {
  if (json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else human();
}

/**
 * Run `fn`, showing an InvalidArgumentError about a library option under the flag that set it
 * (e.g. `{ out: '--out' }`: "out: expected ..." becomes "--out: expected ...").
 */
export async function withFlagNames<T>(flags: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof InvalidArgumentError && Object.hasOwn(flags, error.argument)) {
      throw new InvalidArgumentError(flags[error.argument]!, error.received, error.expected);
    }
    throw error;
  }
}
