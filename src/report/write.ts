/** Writing a report to disk: report.html, results.json and figures/<id>.{svg,png,vl.json}. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { exists, writeDirAtomic, writeFileAtomic, writeJsonAtomic } from '../util/index.js';
import { type PngOptions, svgToPng } from './render.js';
import { figureFiles, type Report, type ReportResults, renderReportHtml, reportResults } from './report.js';

/** Options for {@link writeReport}. */
export interface WriteReportOptions {
  /** Also write each figure as PNG. Default true. */
  png?: boolean;
  /** PNG size (default scale 2: twice the SVG's CSS size). */
  pngOptions?: PngOptions;
  /** Also write each figure's Vega-Lite spec (data inline) as figures/<id>.vl.json. Default true. */
  spec?: boolean;
}

/** Where {@link writeReport} put things (absolute paths). */
export interface WrittenReport {
  /** The report directory. */
  dir: string;
  /** <dir>/report.html */
  html: string;
  /** <dir>/results.json */
  resultsFile: string;
  /** The object written to results.json. */
  results: ReportResults;
  /** Per figure: absolute paths of its files. */
  figures: { id: string; svg: string; png?: string; spec?: string }[];
}

const REPORT_FILES = ['report.html', 'results.json', 'figures'];

/** Whether `file` is a results.json written by writeReport (title, meta and sections). */
async function isReportResults(file: string): Promise<boolean> {
  try {
    const json = JSON.parse(await fs.readFile(file, 'utf8'));
    const object = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
    return object(json) && typeof json.title === 'string' && object(json.meta) && object(json.sections);
  } catch {
    return false;
  }
}

/** Refuse to replace a report.html, results.json or figures/ that an entk report did not write. */
async function checkReportDir(dir: string, root: string): Promise<void> {
  const stat = await fs.stat(root).catch(() => null);
  if (stat && !stat.isDirectory()) {
    throw new InvalidArgumentError('dir', dir, `a directory for the report (${root} is a file)`);
  }
  const present: string[] = [];
  for (const name of REPORT_FILES) if (await exists(path.join(root, name))) present.push(name);
  if (present.length === 0 || (await isReportResults(path.join(root, 'results.json')))) return;
  throw new InvalidArgumentError(
    'dir',
    dir,
    `a directory without ${REPORT_FILES.join(', ')}, or with a report written by entk (${root} holds ${present.join(', ')}, which entk did not write; nothing was changed)`,
  );
}

/**
 * Write a report into `dir`:
 *
 *     <dir>/report.html            self-contained page (inline CSS and SVG; no scripts, no network)
 *     <dir>/results.json           every number shown on the page, at full precision
 *     <dir>/figures/<id>.svg       each figure as SVG
 *     <dir>/figures/<id>.png       ... as PNG (option png, default on)
 *     <dir>/figures/<id>.vl.json   ... as its Vega-Lite spec (option spec, default on)
 *
 * `dir` may be a run directory holding other files: only these are replaced, and only when they are
 * absent or an earlier report's (else InvalidArgumentError, before anything is written). Every file is written
 * atomically; figures/ is built aside and swapped in whole (stale figures disappear), then
 * results.json, and report.html last, so the page never links to a missing figure.
 */
export async function writeReport(
  dir: string,
  report: Report,
  options: WriteReportOptions = {},
): Promise<WrittenReport> {
  const { png = true, spec = true, pngOptions } = options;
  const files = (id: string) => figureFiles(id, { png, spec });
  const results = reportResults(report, files);
  const html = renderReportHtml(report, { files });
  const root = path.resolve(dir);
  await checkReportDir(dir, root);
  const figures = report.sections.flatMap((s) => s.figures ?? []);
  // Plain writes into the private temporary directory: it is swapped in whole.
  await writeDirAtomic(path.join(root, 'figures'), async (tmp) => {
    for (const figure of figures) {
      const f = files(figure.id);
      const into = (file: string) => path.join(tmp, path.basename(file));
      await fs.writeFile(into(f.svg), `<?xml version="1.0" encoding="UTF-8"?>\n${figure.svg}\n`);
      if (f.png) await fs.writeFile(into(f.png), svgToPng(figure, pngOptions));
      if (f.spec) await fs.writeFile(into(f.spec), `${JSON.stringify(figure.spec, null, 2)}\n`);
    }
  });
  const resultsFile = path.join(root, 'results.json');
  await writeJsonAtomic(resultsFile, results);
  const htmlFile = path.join(root, 'report.html');
  await writeFileAtomic(htmlFile, html);
  return {
    dir: root,
    html: htmlFile,
    resultsFile,
    results,
    figures: figures.map((figure) => {
      const f = files(figure.id);
      return {
        id: figure.id,
        svg: path.join(root, f.svg),
        ...(f.png ? { png: path.join(root, f.png) } : {}),
        ...(f.spec ? { spec: path.join(root, f.spec) } : {}),
      };
    }),
  };
}
