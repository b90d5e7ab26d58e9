/**
 * The report document: sections of text, tables of named numbers and figures, rendered to one
 * self-contained HTML page (inline CSS and SVG, no scripts, no network) and to `results.json`.
 *
 * Every number on the page is an element with `data-key` = the JSON Pointer (RFC 6901) of the
 * same number in results.json, e.g. `/sections/summary/tables/errors/values/pop-mu/mae` or
 * `/sections/checkpoints/figures/predicted-vs-actual/numbers/r_pop-mu`. The page rounds (see
 * formatNumber); results.json keeps full float64 precision (null for NaN/Infinity).
 */
import { assertArgument } from '../errors.js';
import { escapeHtml, formatNumber, jsonNumber, jsonPointer, parseTemplate } from './format.js';
import { FIGURE_ID_PATTERN, type Figure, scopeSvgIds } from './render.js';

/** A column of a {@link ReportTable}. */
export interface ReportColumn {
  /** Key of the column in results.json (unique in the table). */
  key: string;
  /** Header text. */
  label: string;
  /** Unit, shown in the header in parentheses (omit for dimensionless numbers). */
  unit?: string;
}

/** A row of a {@link ReportTable}: a label and one number per column. */
export interface ReportRow {
  /** Key of the row in results.json (unique in the table). */
  key: string;
  /** Row header text. */
  label: string;
  /** Number per column key; missing, null, NaN and ±Infinity show as 'n/a' and store as null. */
  values: Record<string, number | null | undefined>;
}

/** A table of named numbers. */
export interface ReportTable {
  /** Key of the table in results.json (unique in its section). */
  id: string;
  /** Heading shown above the table. */
  title?: string;
  /** Sentence(s) below the heading saying what the numbers are. */
  caption?: string;
  /** Header of the row-label column. Default ''. */
  rowHeader?: string;
  /** Columns, in display order. */
  columns: ReportColumn[];
  /** Rows, in display order. */
  rows: ReportRow[];
}

/** One section of the report (a study, or the summary). */
export interface ReportSection {
  /** Key in results.json and HTML anchor: a letter, then letters, digits, '.', '_' or '-'. */
  id: string;
  /** Section heading. */
  title: string;
  /** Paragraphs (separated by blank lines); `{key}` placeholders show `numbers[key]` (marked with data-key). */
  text?: string;
  /** Numbers quoted in `text`. */
  numbers?: Record<string, number | null>;
  /** Tables, shown before the figures. */
  tables?: ReportTable[];
  /** Figures (ids unique across the whole report: they name the files in figures/). */
  figures?: Figure[];
}

/** A whole report. */
export interface Report {
  /** Page title. */
  title: string;
  /** One line under the title. */
  subtitle?: string;
  /** Run facts shown under the title (dataset, model, seed, created...); numbers get data-keys. */
  meta?: Record<string, string | number | boolean | null>;
  /** Sections in display order. */
  sections: ReportSection[];
}

/** Relative file names of one figure's files, as linked from the page and listed in results.json. */
export interface FigureFiles {
  svg: string;
  png?: string;
  spec?: string;
}

/** Paths of a figure's files relative to the report directory. */
export function figureFiles(id: string, options: { png?: boolean; spec?: boolean } = {}): FigureFiles {
  const { png = true, spec = true } = options;
  return {
    svg: `figures/${id}.svg`,
    ...(png ? { png: `figures/${id}.png` } : {}),
    ...(spec ? { spec: `figures/${id}.vl.json` } : {}),
  };
}

/** The JSON written as results.json (see the module comment for the paths). */
export interface ReportResults {
  title: string;
  subtitle?: string;
  meta: Record<string, string | number | boolean | null>;
  sections: Record<
    string,
    {
      title: string;
      text?: string;
      numbers: Record<string, number | null>;
      tables: Record<
        string,
        {
          title?: string;
          caption?: string;
          columns: ReportColumn[];
          rows: { key: string; label: string }[];
          values: Record<string, Record<string, number | null>>;
        }
      >;
      figures: Record<
        string,
        { title: string; caption: string; numbers: Record<string, number | null>; files: FigureFiles }
      >;
    }
  >;
}

function checkUnique(what: string, keys: readonly string[]): void {
  const seen = new Set<string>();
  for (const key of keys) {
    assertArgument(typeof key === 'string' && key.length > 0, what, key, 'non-empty strings');
    assertArgument(!seen.has(key), what, key, 'unique keys (this one appears twice)');
    seen.add(key);
  }
}

/** Check ids and keys: unique where they name JSON keys or files, placeholders resolvable. */
export function validateReport(report: Report): void {
  assertArgument(
    report != null && typeof report.title === 'string',
    'report.title',
    report?.title,
    'a string',
  );
  assertArgument(Array.isArray(report.sections), 'report.sections', report.sections, 'an array of sections');
  checkUnique(
    'report.sections[].id',
    report.sections.map((s) => s.id),
  );
  const figureIds: string[] = [];
  for (const [si, section] of report.sections.entries()) {
    const where = `report.sections[${si}]`;
    assertArgument(
      FIGURE_ID_PATTERN.test(section.id),
      `${where}.id`,
      section.id,
      `an id matching ${FIGURE_ID_PATTERN}`,
    );
    if (section.text) {
      for (const part of parseTemplate(section.text)) {
        if ('key' in part) {
          assertArgument(
            section.numbers != null && Object.hasOwn(section.numbers, part.key),
            `${where}.text`,
            section.text,
            `placeholders among the keys of ${where}.numbers`,
          );
        }
      }
    }
    const tables = section.tables ?? [];
    checkUnique(
      `${where}.tables[].id`,
      tables.map((t) => t.id),
    );
    for (const [ti, table] of tables.entries()) {
      checkUnique(
        `${where}.tables[${ti}].columns[].key`,
        table.columns.map((c) => c.key),
      );
      checkUnique(
        `${where}.tables[${ti}].rows[].key`,
        table.rows.map((r) => r.key),
      );
    }
    for (const figure of section.figures ?? []) figureIds.push(figure.id);
  }
  checkUnique('figure ids (across the report)', figureIds);
}

/** Build the results.json object for a report (numbers at full precision, null for non-finite). */
export function reportResults(
  report: Report,
  files: (id: string) => FigureFiles = (id) => figureFiles(id),
): ReportResults {
  validateReport(report);
  const meta: ReportResults['meta'] = {};
  for (const [k, v] of Object.entries(report.meta ?? {})) meta[k] = typeof v === 'number' ? jsonNumber(v) : v;
  const sections: ReportResults['sections'] = {};
  for (const section of report.sections) {
    const numbers: Record<string, number | null> = {};
    for (const [k, v] of Object.entries(section.numbers ?? {})) numbers[k] = jsonNumber(v);
    const tables: ReportResults['sections'][string]['tables'] = {};
    for (const table of section.tables ?? []) {
      const values: Record<string, Record<string, number | null>> = {};
      for (const row of table.rows) {
        values[row.key] = {};
        for (const column of table.columns) values[row.key]![column.key] = jsonNumber(row.values[column.key]);
      }
      tables[table.id] = {
        ...(table.title != null ? { title: table.title } : {}),
        ...(table.caption != null ? { caption: table.caption } : {}),
        columns: table.columns.map((c) => ({ ...c })),
        rows: table.rows.map((r) => ({ key: r.key, label: r.label })),
        values,
      };
    }
    const figures: ReportResults['sections'][string]['figures'] = {};
    for (const figure of section.figures ?? []) {
      const figureNumbers: Record<string, number | null> = {};
      for (const [k, v] of Object.entries(figure.numbers)) figureNumbers[k] = jsonNumber(v);
      figures[figure.id] = {
        title: figure.title,
        caption: figure.caption,
        numbers: figureNumbers,
        files: files(figure.id),
      };
    }
    sections[section.id] = {
      title: section.title,
      ...(section.text != null ? { text: section.text } : {}),
      numbers,
      tables,
      figures,
    };
  }
  return {
    title: report.title,
    ...(report.subtitle != null ? { subtitle: report.subtitle } : {}),
    meta,
    sections,
  };
}

function numberSpan(value: number | null | undefined, pointer: string): string {
  return `<span class="num" data-key="${escapeHtml(pointer)}">${escapeHtml(formatNumber(value))}</span>`;
}

/** Render a `{key}` template as HTML: text escaped, each number a data-key span. */
function templateHtml(template: string, numbers: Record<string, number | null>, base: string[]): string {
  return parseTemplate(template)
    .map((part) =>
      'text' in part
        ? escapeHtml(part.text)
        : numberSpan(numbers[part.key], jsonPointer([...base, part.key])),
    )
    .join('');
}

const STYLE = `
:root { color-scheme: light; --ink: #1d1d1f; --muted: #5a5a5f; --rule: #d9d9de; --band: #f5f6f8; --accent: #0072B2; }
* { box-sizing: border-box; }
body { margin: 0; background: #fbfbfc; color: var(--ink); font: 16px/1.55 "DejaVu Sans", "Segoe UI", system-ui, -apple-system, Helvetica, Arial, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 32px 28px 64px; background: #fff; min-height: 100vh; }
h1 { font-size: 1.9rem; line-height: 1.2; margin: 0 0 6px; }
.subtitle { color: var(--muted); margin: 0 0 16px; font-size: 1.05rem; }
dl.meta { display: flex; flex-wrap: wrap; gap: 6px 22px; margin: 0 0 18px; padding: 10px 14px; background: var(--band); border-radius: 6px; font-size: 0.9rem; }
dl.meta div { display: flex; gap: 6px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; font-weight: 600; }
nav.toc { border-top: 1px solid var(--rule); border-bottom: 1px solid var(--rule); padding: 8px 0; margin-bottom: 12px; font-size: 0.95rem; }
nav.toc ol { margin: 0; padding-left: 22px; columns: 2; }
a { color: var(--accent); }
section { margin-top: 36px; }
h2 { font-size: 1.45rem; border-bottom: 2px solid var(--ink); padding-bottom: 4px; margin: 0 0 12px; }
h3 { font-size: 1.1rem; margin: 0 0 8px; }
p { margin: 0 0 12px; max-width: 75ch; }
.table-block { margin: 18px 0 26px; overflow-x: auto; }
table.numbers { border-collapse: collapse; font-size: 0.95rem; min-width: 50%; }
table.numbers caption { caption-side: top; text-align: left; color: var(--muted); padding: 0 0 6px; max-width: 75ch; }
table.numbers th, table.numbers td { padding: 6px 14px; border-bottom: 1px solid var(--rule); vertical-align: baseline; }
table.numbers thead th { text-align: right; border-bottom: 2px solid var(--ink); font-weight: 600; vertical-align: bottom; }
table.numbers thead th:first-child, table.numbers tbody th { text-align: left; }
table.numbers tbody th { font-weight: 600; }
table.numbers td { text-align: right; font-variant-numeric: tabular-nums; font-family: "DejaVu Sans Mono", ui-monospace, Menlo, Consolas, monospace; font-size: 0.9rem; }
table.numbers tbody tr:nth-child(even) { background: var(--band); }
.unit { color: var(--muted); font-weight: normal; }
figure { margin: 26px 0 34px; padding: 16px 18px 12px; border: 1px solid var(--rule); border-radius: 8px; background: #fff; }
figure .chart { overflow-x: auto; }
figure .chart svg { display: block; width: min(100%, calc(var(--w, 480px) * 1.25)); height: auto; margin: 0 auto; }
figcaption { margin-top: 10px; color: #333; font-size: 0.93rem; max-width: 85ch; }
figcaption .files { display: block; margin-top: 6px; color: var(--muted); font-size: 0.85rem; }
.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
footer { margin-top: 48px; padding-top: 12px; border-top: 1px solid var(--rule); color: var(--muted); font-size: 0.85rem; }
@media print { body { background: #fff; } main { padding: 0; } figure { break-inside: avoid; } nav.toc { display: none; } }
`;

function tableHtml(table: ReportTable, base: string[]): string {
  const head = table.columns
    .map(
      (c) =>
        `<th scope="col">${escapeHtml(c.label)}${c.unit ? ` <span class="unit">(${escapeHtml(c.unit)})</span>` : ''}</th>`,
    )
    .join('');
  const body = table.rows
    .map((row) => {
      const cells = table.columns
        .map(
          (c) =>
            `<td>${numberSpan(row.values[c.key], jsonPointer([...base, 'values', row.key, c.key]))}</td>`,
        )
        .join('');
      return `<tr><th scope="row">${escapeHtml(row.label)}</th>${cells}</tr>`;
    })
    .join('\n');
  return [
    `<div class="table-block" id="${escapeHtml(`t-${base[1]}-${table.id}`)}">`,
    table.title ? `<h3>${escapeHtml(table.title)}</h3>` : '',
    '<table class="numbers">',
    table.caption ? `<caption>${escapeHtml(table.caption)}</caption>` : '',
    `<thead><tr><th scope="col">${escapeHtml(table.rowHeader ?? '')}</th>${head}</tr></thead>`,
    `<tbody>\n${body}\n</tbody></table></div>`,
  ]
    .filter(Boolean)
    .join('\n');
}

function figureHtml(figure: Figure, base: string[], files: FigureFiles): string {
  const numbers: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(figure.numbers)) numbers[k] = jsonNumber(v);
  const numberBase = [...base, 'numbers'];
  const links = [
    `<a href="${escapeHtml(files.svg)}">SVG</a>`,
    files.png ? `<a href="${escapeHtml(files.png)}">PNG</a>` : '',
    files.spec ? `<a href="${escapeHtml(files.spec)}">Vega-Lite spec</a>` : '',
  ]
    .filter(Boolean)
    .join(' · ');
  return [
    `<figure id="${escapeHtml(`f-${figure.id}`)}" data-figure-id="${escapeHtml(figure.id)}">`,
    `<h3>${templateHtml(figure.titleTemplate, numbers, numberBase)}</h3>`,
    // Shown at 1.25× the SVG's own size (sharp: vector), never wider than the column.
    `<div class="chart" role="img" aria-label="${escapeHtml(figure.title)}" style="--w: ${Math.round(figure.width)}px">${scopeSvgIds(figure.svg, `fig-${figure.id}`)}</div>`,
    `<figcaption>${templateHtml(figure.captionTemplate, numbers, numberBase)}<span class="files">Files: ${links}</span></figcaption>`,
    '</figure>',
  ].join('\n');
}

/** Options for {@link renderReportHtml}. */
export interface RenderHtmlOptions {
  /** Figure file names to link (default {@link figureFiles} with PNG and spec). */
  files?: (id: string) => FigureFiles;
  /** Footer line. Default names entk and results.json. */
  footer?: string;
}

/**
 * Render the report as one self-contained HTML page: inline CSS, figures as inline SVG (ids scoped
 * per figure), no scripts, no external resources. Links point at the relative figure files.
 */
export function renderReportHtml(report: Report, options: RenderHtmlOptions = {}): string {
  validateReport(report);
  const files = options.files ?? ((id: string) => figureFiles(id));
  const meta = Object.entries(report.meta ?? {})
    .map(([k, v]) => {
      const shown =
        typeof v === 'number'
          ? numberSpan(v, jsonPointer(['meta', k]))
          : escapeHtml(v == null ? 'n/a' : typeof v === 'boolean' ? (v ? 'yes' : 'no') : v);
      return `<div><dt>${escapeHtml(k)}</dt><dd>${shown}</dd></div>`;
    })
    .join('');
  const toc = report.sections
    .map((s) => `<li><a href="#s-${escapeHtml(s.id)}">${escapeHtml(s.title)}</a></li>`)
    .join('');
  const sections = report.sections.map((section) => {
    const base = ['sections', section.id];
    const numbers: Record<string, number | null> = {};
    for (const [k, v] of Object.entries(section.numbers ?? {})) numbers[k] = jsonNumber(v);
    const paragraphs = (section.text ?? '')
      .split(/\n\s*\n/)
      .map((p) => p.trim())
      .filter(Boolean)
      .map((p) => `<p>${templateHtml(p, numbers, [...base, 'numbers'])}</p>`);
    return [
      `<section id="s-${escapeHtml(section.id)}">`,
      `<h2>${escapeHtml(section.title)}</h2>`,
      ...paragraphs,
      ...(section.tables ?? []).map((t) => tableHtml(t, [...base, 'tables', t.id])),
      ...(section.figures ?? []).map((f) => figureHtml(f, [...base, 'figures', f.id], files(f.id))),
      '</section>',
    ].join('\n');
  });
  const footer =
    options.footer ??
    'Generated by entk. Every number on this page is in results.json (full precision); every figure is in figures/ as SVG, PNG and Vega-Lite spec. This page loads nothing from the network.';
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // No network: forbid every fetch except inline styles and data: images (the heatmap raster).
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    `<title>${escapeHtml(report.title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    '<main>',
    '<header>',
    `<h1>${escapeHtml(report.title)}</h1>`,
    report.subtitle ? `<p class="subtitle">${escapeHtml(report.subtitle)}</p>` : '',
    meta ? `<dl class="meta">${meta}</dl>` : '',
    '</header>',
    report.sections.length > 1 ? `<nav class="toc"><ol>${toc}</ol></nav>` : '',
    ...sections,
    `<footer>${escapeHtml(footer)}</footer>`,
    '</main>',
    '</body>',
    '</html>',
  ]
    .filter((line) => line !== '')
    .join('\n')
    .concat('\n');
}

/** A table as fixed-width text for the terminal (numbers formatted as on the page). */
export function formatTableText(table: ReportTable): string {
  const header = [
    table.rowHeader ?? '',
    ...table.columns.map((c) => (c.unit ? `${c.label} (${c.unit})` : c.label)),
  ];
  const body = table.rows.map((r) => [r.label, ...table.columns.map((c) => formatNumber(r.values[c.key]))]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)];
  if (table.title) out.unshift(table.title);
  return `${out.join('\n')}\n`;
}
