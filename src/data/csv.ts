/**
 * A strict RFC-4180 CSV reader: comma-separated fields, records ended by LF or CRLF, fields optionally
 * enclosed in double quotes (a quote inside a quoted field is written twice; quoted fields may span
 * lines). Blank lines are skipped. Every field remembers the 1-based line on which it starts, so
 * errors can point into the file exactly.
 */
import { DataFormatError } from '../errors.js';

/** One CSV record: its fields and, for each field, the 1-based line where it starts. */
export interface CsvRecord {
  /** 1-based line on which the record starts. */
  line: number;
  /** Raw field texts (quotes removed, doubled quotes collapsed, no trimming). */
  fields: string[];
  /** 1-based line on which each field starts (differs from `line` after a multi-line quoted field). */
  fieldLines: number[];
}

/**
 * Split CSV text into records. Throws DataFormatError (file, line, column number) for an
 * unterminated quoted field, a quote inside an unquoted field, or text after a closing quote.
 * A leading UTF-8 byte-order mark is ignored.
 */
export function parseCsvRecords(text: string, file: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;
  let line = 1;
  let fields: string[] = [];
  let fieldLines: number[] = [];
  let recordLine = 1;

  const endRecord = () => {
    const blank = fields.length === 1 && fields[0]!.trim() === '';
    if (!blank) records.push({ line: recordLine, fields, fieldLines });
    fields = [];
    fieldLines = [];
  };

  if (i >= n) return records;
  for (;;) {
    // At the start of a field.
    if (fields.length === 0) recordLine = line;
    const fieldLine = line;
    let value: string;
    if (text[i] === '"') {
      // Quoted field.
      const startLine = line;
      i++;
      let parts = '';
      let closed = false;
      while (i < n) {
        const q = text.indexOf('"', i);
        if (q < 0) break;
        const chunk = text.slice(i, q);
        parts += chunk;
        line += countNewlines(chunk);
        if (text[q + 1] === '"') {
          parts += '"';
          i = q + 2;
        } else {
          i = q + 1;
          closed = true;
          break;
        }
      }
      if (!closed) {
        throw new DataFormatError(
          file,
          'unterminated quoted field (a field that starts with " must end with ")',
          startLine,
          fields.length + 1,
        );
      }
      value = parts;
      const c = text[i];
      if (i < n && c !== ',' && c !== '\n' && c !== '\r') {
        throw new DataFormatError(
          file,
          `unexpected ${JSON.stringify(c)} after a closing quote (expected a comma or the end of the line)`,
          line,
          fields.length + 1,
        );
      }
    } else {
      let j = i;
      while (j < n) {
        const c = text.charCodeAt(j);
        if (c === 44 /* , */ || c === 10 /* \n */ || c === 13 /* \r */) break;
        if (c === 34 /* " */) {
          throw new DataFormatError(
            file,
            'a double quote inside an unquoted field (quote the whole field and double the inner quotes)',
            line,
            fields.length + 1,
          );
        }
        j++;
      }
      value = text.slice(i, j);
      i = j;
    }
    fields.push(value);
    fieldLines.push(fieldLine);
    // Delimiter or end of record.
    if (i >= n) {
      endRecord();
      break;
    }
    const c = text[i];
    if (c === ',') {
      i++;
      if (i >= n) {
        // Trailing comma at end of file: one more empty field.
        fields.push('');
        fieldLines.push(line);
        endRecord();
        break;
      }
      continue;
    }
    // Newline: \n, \r\n or a lone \r.
    if (c === '\r' && text[i + 1] === '\n') i += 2;
    else i += 1;
    line++;
    endRecord();
    if (i >= n) break;
  }
  return records;
}

function countNewlines(s: string): number {
  let count = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === 10) count++;
    else if (c === 13 && s.charCodeAt(k + 1) !== 10) count++;
  }
  return count;
}
