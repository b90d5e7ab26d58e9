/**
 * Typed errors. Every error that reaches a user names what was wrong, the value received and what
 * was expected, in one line (the CLI prints `message` alone and exits non-zero).
 */

/** Base class: anything entk throws on purpose. */
export class EntkError extends Error {
  override name = 'EntkError';
}

/** Render a received value compactly for an error message. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) {
    const shared = typeof SharedArrayBuffer !== 'undefined' && value.buffer instanceof SharedArrayBuffer;
    return `${value.constructor.name} of length ${(value as Float32Array).length}${shared ? ' in a SharedArrayBuffer' : ''}`;
  }
  try {
    const json = JSON.stringify(value);
    return json.length > 80 ? `${json.slice(0, 77)}...` : json;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** A caller passed a bad value: `<argument>: expected <expected>, received <value>`. */
export class InvalidArgumentError extends EntkError {
  override name = 'InvalidArgumentError';
  constructor(
    readonly argument: string,
    readonly received: unknown,
    readonly expected: string,
  ) {
    super(`${argument}: expected ${expected}, received ${describeValue(received)}`);
  }
}

/** A data file is malformed: names the file, and the line and column where known (1-based). */
export class DataFormatError extends EntkError {
  override name = 'DataFormatError';
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly line?: number,
    readonly column?: string | number,
  ) {
    const where = [file, line != null ? `line ${line}` : '', column != null ? `column ${column}` : '']
      .filter(Boolean)
      .join(', ');
    super(`${where}: ${problem}`);
  }
}

/** A file on disk is truncated, tampered with or of the wrong kind. */
export class CorruptFileError extends EntkError {
  override name = 'CorruptFileError';
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

/** A requested tfjs backend cannot be loaded (never silently replaced by another one). */
export class BackendUnavailableError extends EntkError {
  override name = 'BackendUnavailableError';
}

/** Something the user asked for is not supported (e.g. a layer outside the structured eNTK path). */
export class UnsupportedError extends EntkError {
  override name = 'UnsupportedError';
}

/** Training diverged: the loss or the weights became NaN or infinite (names the step). */
export class DivergenceError extends EntkError {
  override name = 'DivergenceError';
}

/** Throw an InvalidArgumentError unless `condition` holds. */
export function assertArgument(
  condition: unknown,
  argument: string,
  received: unknown,
  expected: string,
): asserts condition {
  if (!condition) throw new InvalidArgumentError(argument, received, expected);
}
