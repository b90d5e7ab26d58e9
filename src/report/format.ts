/**
 * Number formatting and JSON Pointer paths shared by the HTML page, the terminal tables and the
 * tests. The page shows every number rounded for reading; `results.json` keeps full precision, and
 * each shown number carries `data-key` = its JSON Pointer (RFC 6901) into `results.json`.
 */
import { InvalidArgumentError } from '../errors.js';

/** Text shown for a missing or non-finite value (stored as `null` in results.json). */
export const MISSING_TEXT = 'n/a';

/**
 * Format a number for reading: integers below 1e6 in full (`4096`), other values with 4
 * significant digits (`0.9731`, `12.35`), exponent form outside [1e-3, 1e6) (`2.5e-5`). Trailing
 * zeros are dropped. ASCII minus. `null`, NaN and ±Infinity give {@link MISSING_TEXT}.
 */
export function formatNumber(value: number | null | undefined, significantDigits = 4): string {
  if (value == null || !Number.isFinite(value)) return MISSING_TEXT;
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (Number.isInteger(value) && abs < 1e6) return String(value);
  if (abs >= 1e-3 && abs < 1e6) {
    const text = value.toPrecision(significantDigits);
    if (text.includes('e')) return stripExponentZeros(value.toExponential(significantDigits - 1));
    return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
  }
  return stripExponentZeros(value.toExponential(significantDigits - 1));
}

function stripExponentZeros(text: string): string {
  const [mantissa, exponent] = text.split('e');
  const m = mantissa!.includes('.') ? mantissa!.replace(/\.?0+$/, '') : mantissa!;
  const e = Number(exponent);
  return `${m}e${e}`;
}

/** A finite number, or `null` for NaN / ±Infinity / undefined (JSON has no NaN). */
export function jsonNumber(value: number | null | undefined): number | null {
  return value != null && Number.isFinite(value) ? value : null;
}

/** Escape one JSON Pointer reference token (`~` → `~0`, `/` → `~1`). */
export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Build a JSON Pointer from path tokens: `['sections', 'a/b']` → `/sections/a~1b`. */
export function jsonPointer(tokens: readonly string[]): string {
  return tokens.map((t) => `/${escapePointerToken(t)}`).join('');
}

/** Resolve a JSON Pointer against a parsed JSON value (undefined when a token is missing). */
export function resolveJsonPointer(document: unknown, pointer: string): unknown {
  if (pointer === '') return document;
  if (!pointer.startsWith('/')) return undefined;
  let current: unknown = document;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (current === null || typeof current !== 'object') return undefined;
    if (!Object.hasOwn(current, token)) return undefined;
    current = (current as Record<string, unknown>)[token];
  }
  return current;
}

/** Escape text for HTML element content and double-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** One piece of a parsed template: literal text or a `{key}` placeholder. */
export type TemplatePart = { text: string } | { key: string };

/**
 * Split a template such as `'r = {r} over {n} pairs'` into text and `{key}` parts. Keys are any
 * characters except braces; `{{` and `}}` are literal braces.
 */
export function parseTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let text = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    if (c === '{' && template[i + 1] === '{') {
      text += '{';
      i++;
    } else if (c === '}' && template[i + 1] === '}') {
      text += '}';
      i++;
    } else if (c === '{') {
      const end = template.indexOf('}', i + 1);
      if (end < 0)
        throw new InvalidArgumentError(
          'template',
          template,
          'every "{" closed by "}" (write "{{" for a literal brace)',
        );
      if (text) parts.push({ text });
      text = '';
      parts.push({ key: template.slice(i + 1, end) });
      i = end;
    } else {
      text += c;
    }
  }
  if (text) parts.push({ text });
  return parts;
}

/** Fill a template's placeholders with formatted numbers (plain text, for SVG/terminal use). */
export function fillTemplate(template: string, numbers: Readonly<Record<string, number | null>>): string {
  return parseTemplate(template)
    .map((part) => {
      if ('text' in part) return part.text;
      if (!Object.hasOwn(numbers, part.key)) {
        throw new InvalidArgumentError(
          'template',
          template,
          `placeholders among {${Object.keys(numbers).join('}, {')}}`,
        );
      }
      return formatNumber(numbers[part.key]);
    })
    .join('');
}
