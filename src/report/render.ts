/**
 * Rendering: a Vega-Lite spec is compiled to Vega and rendered server-side to SVG (no browser, no
 * canvas); SVG is rasterised to PNG with resvg using the system fonts (DejaVu Sans on Debian).
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { assertArgument, InvalidArgumentError } from '../errors.js';
import { escapeHtml, fillTemplate, parseTemplate } from './format.js';
import { installTextMetrics } from './text-metrics.js';

/** Font stack used by every figure (DejaVu Sans ships with Debian and covers Δ, π, η, ‖, ²). */
export const FIGURE_FONT = 'DejaVu Sans, Verdana, Arial, sans-serif';

/** Figure ids double as file names: a letter, then letters, digits, '.', '_' or '-'. */
export const FIGURE_ID_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]*$/;

/** A rendered figure: what the report embeds, and what can be written as SVG/PNG/spec files. */
export interface Figure {
  /** File-name-safe identifier, unique within a report (`figures/<id>.svg`). */
  id: string;
  /** Heading, numbers filled in (plain text). */
  title: string;
  /** Caption saying what the reader sees, numbers filled in (plain text). */
  caption: string;
  /** The title with `{key}` placeholders for `numbers` (the HTML marks each with its data-key). */
  titleTemplate: string;
  /** The caption with `{key}` placeholders for `numbers`. */
  captionTemplate: string;
  /** Every number quoted in the title or caption, by key (null for NaN/Infinity). */
  numbers: Record<string, number | null>;
  /** The Vega-Lite spec (data inline), for re-styling the figure in the Vega editor. */
  spec: TopLevelSpec;
  /** The SVG document rendered from `spec`. */
  svg: string;
  /** SVG width in CSS pixels. */
  width: number;
  /** SVG height in CSS pixels. */
  height: number;
}

/** Options shared by every figure function. */
export interface FigureOptions {
  /** File-name-safe id, unique within a report. Default: the figure kind (e.g. 'scatter'). */
  id?: string;
  /** Heading above the figure. Default: per figure kind. May use `{key}` placeholders of the figure's numbers. */
  title?: string;
  /** Sentence(s) appended to the generated caption; may use `{key}` placeholders of the figure's numbers. */
  note?: string;
  /** Width of the plotting area in px. Default: per figure kind. */
  width?: number;
  /** Height of the plotting area in px. Default: per figure kind. */
  height?: number;
}

/** The Vega-Lite config every figure shares: fonts, sizes, white background, no per-mark ARIA labels. */
export function baseConfig(): NonNullable<TopLevelSpec['config']> {
  return {
    font: FIGURE_FONT,
    background: 'white',
    // Per-mark ARIA labels would multiply the SVG size; the HTML page labels each figure instead.
    aria: false,
    axis: {
      labelFontSize: 11,
      titleFontSize: 12,
      titleFontWeight: 'normal',
      titleColor: '#222222',
      labelColor: '#333333',
      gridColor: '#e8e8e8',
      domainColor: '#888888',
      tickColor: '#888888',
    },
    legend: {
      labelFontSize: 11,
      titleFontSize: 12,
      titleFontWeight: 'normal',
      labelLimit: 320,
      titleLimit: 320,
    },
    header: { labelFontSize: 12, titleFontSize: 12 },
    view: { stroke: '#cccccc' },
    text: { fontSize: 11 },
  };
}

/**
 * A Vega/Vega-Lite logger that forwards warnings and errors to console.warn / console.error with
 * a prefix naming the figure (both libraries otherwise print bare "WARN ..." lines).
 */
function figureLogger(label: string): vega.LoggerInterface {
  let level = vega.Warn;
  const logger: vega.LoggerInterface = {
    level(value?: number) {
      if (value === undefined) return level as never;
      level = value;
      return logger;
    },
    error(...args: readonly unknown[]) {
      if (level >= vega.Error) console.error(`entk report: figure ${label}: Vega error:`, ...args);
      return logger;
    },
    warn(...args: readonly unknown[]) {
      if (level >= vega.Warn) console.warn(`entk report: figure ${label}: Vega warning:`, ...args);
      return logger;
    },
    info() {
      return logger;
    },
    debug() {
      return logger;
    },
  } as vega.LoggerInterface;
  return logger;
}

/**
 * Render a Vega-Lite spec to an SVG string (server-side, renderer 'none'). Vega and Vega-Lite
 * warnings go to console.warn, prefixed with `label`.
 */
export async function renderSvg(spec: TopLevelSpec, label = 'unnamed'): Promise<string> {
  installTextMetrics();
  const logger = figureLogger(label);
  const view = new vega.View(vega.parse(compile(spec, { logger }).spec), {
    renderer: 'none',
    logger,
    logLevel: vega.Warn,
  });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Width and height of an SVG document from its root element's width/height attributes. */
export function svgSize(svg: string): { width: number; height: number } {
  const root = /<svg\b[^>]*>/.exec(svg)?.[0] ?? '';
  const width = Number(/\swidth="([\d.]+)"/.exec(root)?.[1]);
  const height = Number(/\sheight="([\d.]+)"/.exec(root)?.[1]);
  assertArgument(
    width > 0 && height > 0,
    'svg',
    svg,
    'an <svg> root with positive width and height attributes',
  );
  return { width, height };
}

/**
 * Assemble a Figure: validate the id and the templates, render the spec to SVG. Used by every
 * figure function; callers with their own Vega-Lite spec can use it too.
 */
export async function makeFigure(parts: {
  id: string;
  titleTemplate: string;
  captionTemplate: string;
  numbers: Record<string, number | null>;
  spec: TopLevelSpec;
}): Promise<Figure> {
  const { id, titleTemplate, captionTemplate, numbers, spec } = parts;
  assertArgument(FIGURE_ID_PATTERN.test(id), 'id', id, `a file-name-safe id matching ${FIGURE_ID_PATTERN}`);
  for (const template of [titleTemplate, captionTemplate]) {
    for (const part of parseTemplate(template)) {
      if ('key' in part && !Object.hasOwn(numbers, part.key)) {
        throw new InvalidArgumentError(
          'template',
          template,
          `placeholders among {${Object.keys(numbers).join('}, {')}} (figure "${id}")`,
        );
      }
    }
  }
  const svg = await renderSvg(spec, `"${id}"`);
  const { width, height } = svgSize(svg);
  return {
    id,
    title: fillTemplate(titleTemplate, numbers),
    caption: fillTemplate(captionTemplate, numbers),
    titleTemplate,
    captionTemplate,
    numbers,
    spec,
    svg,
    width,
    height,
  };
}

/** Options for {@link svgToPng}. */
export interface PngOptions {
  /** Output width in pixels (height follows the aspect ratio). Overrides `scale`. */
  width?: number;
  /** Output size as a multiple of the SVG's CSS size. Default 2 (sharp in print and on HiDPI screens). */
  scale?: number;
}

/**
 * Rasterise an SVG (or a Figure's SVG) to PNG with resvg, using the system fonts. The PNG is
 * exactly `width` pixels wide when `width` is given, else `round(scale · svgWidth)`.
 */
export function svgToPng(source: string | Pick<Figure, 'svg'>, options: PngOptions = {}): Buffer {
  const svg = typeof source === 'string' ? source : source.svg;
  const { width: svgWidth } = svgSize(svg);
  const { scale = 2 } = options;
  assertArgument(scale > 0 && Number.isFinite(scale), 'scale', scale, 'a positive number');
  const width = options.width ?? Math.round(svgWidth * scale);
  assertArgument(
    Number.isInteger(width) && width > 0 && width <= 16384,
    'width',
    width,
    'an integer in [1, 16384]',
  );
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'width', value: width },
    background: 'white',
    font: {
      loadSystemFonts: true,
      defaultFontFamily: 'DejaVu Sans',
      sansSerifFamily: 'DejaVu Sans',
    },
  });
  return resvg.render().asPng();
}

/**
 * Make every `id` inside an SVG unique by prefixing it (and its `url(#…)` / `href="#…"`
 * references). Needed when several Vega SVGs are inlined in one HTML page: Vega numbers clip paths
 * and gradients per render, so two figures may both contain `id="clip1"`.
 */
export function scopeSvgIds(svg: string, prefix: string): string {
  const ids = new Set<string>();
  for (const m of svg.matchAll(/\sid="([^"]+)"/g)) ids.add(m[1]!);
  if (ids.size === 0) return svg;
  const rename = (id: string) => (ids.has(id) ? `${prefix}-${id}` : id);
  return svg
    .replace(/(\sid=")([^"]+)(")/g, (_, a: string, id: string, b: string) => `${a}${rename(id)}${b}`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${rename(id)})`)
    .replace(
      /((?:xlink:)?href=")#([^"]+)(")/g,
      (_, a: string, id: string, b: string) => `${a}#${rename(id)}${b}`,
    );
}

/** Options of {@link figureHtml}. */
export interface FigureHtmlOptions {
  /** The caption under the figure (plain text). Default: the figure's own caption. */
  caption?: string;
  /** The heading above it (plain text). Default: the figure's title. */
  title?: string;
}

let fragments = 0;

/**
 * One figure as a self-contained HTML fragment — heading, the inline SVG, caption — for a notebook
 * cell (`tslab.display.html(figureHtml(fig))`) or any page. Text is HTML-escaped and the SVG's ids
 * are made unique per fragment, so any number of fragments can share a page.
 */
export function figureHtml(figure: Figure, options: FigureHtmlOptions = {}): string {
  const title = options.title ?? figure.title;
  const caption = options.caption ?? figure.caption;
  return (
    `<figure style="display:inline-block;vertical-align:top;margin:0 16px 16px 0;max-width:${Math.ceil(figure.width) + 8}px">` +
    `<figcaption style="font-weight:bold;margin-bottom:4px">${escapeHtml(title)}</figcaption>` +
    scopeSvgIds(figure.svg, `fig-${figure.id}-${++fragments}`) +
    `<figcaption style="font-size:0.85em;color:#444">${escapeHtml(caption)}</figcaption></figure>`
  );
}
