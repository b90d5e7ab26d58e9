/**
 * The one configuration-file reader: JSON or YAML (by extension) into a plain object, used by
 * `entk train --config` and by experiment configs (which add `extends` on top, see
 * src/experiment/config.ts). Errors name the file: unreadable (CorruptFileError), a syntax error
 * with its line and column, or a top level that is not a mapping (DataFormatError).
 */
import { promises as fs } from 'node:fs';
import YAML from 'yaml';
import { CorruptFileError, DataFormatError } from '../errors.js';

/**
 * Parse a config file's text (JSON or YAML by extension); DataFormatError with line/column on
 * syntax errors, and `expected <topLevel>` when the value is not a mapping.
 */
export function parseConfigText(
  text: string,
  file: string,
  topLevel = 'a mapping at the top level',
): Record<string, unknown> {
  let value: unknown;
  if (/\.json$/i.test(file)) {
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new DataFormatError(file, `not valid JSON (${(error as Error).message})`);
    }
  } else {
    const doc = YAML.parseDocument(text, { prettyErrors: true });
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      const pos = e.linePos?.[0];
      const problem = e.message.split('\n')[0]!.replace(/\s*at line \d+, column \d+:?\s*$/, '');
      throw new DataFormatError(file, `not valid YAML (${problem})`, pos?.line, pos?.col);
    }
    value = doc.toJS();
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DataFormatError(file, `expected ${topLevel}`);
  }
  return value as Record<string, unknown>;
}

/** Read and parse a JSON/YAML config file (see {@link parseConfigText}). */
export async function readConfigFile(file: string, topLevel?: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new CorruptFileError(
      file,
      `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  return parseConfigText(text, file, topLevel);
}
