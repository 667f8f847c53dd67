/**
 * Text formatting shared by the panel, the notifications and the run form.
 */

/**
 * Problems, counted by severity: `2 errors, 1 warning`.
 */
export function problemCount(
  problems: readonly { severity: string }[]
): string {
  const count = (n: number, word: string) =>
    n === 0 ? null : `${n} ${word}${n > 1 ? 's' : ''}`;
  const errors = problems.filter(p => p.severity === 'error').length;
  return [count(errors, 'error'), count(problems.length - errors, 'warning')]
    .filter(Boolean)
    .join(', ');
}

/**
 * A run of cells: 0-based indexes of its first and last cell (the same for a single cell).
 */
export interface ICellRange {
  first: number;
  last: number;
}

/**
 * 0-based cell indexes as ranges, in order: runs of consecutive indexes become one range.
 *
 * `bridge` may say that the cells between two indexes do not interrupt a range (Markdown cells
 * between two cells of a step).
 */
export function cellRangeList(
  indexes: readonly number[],
  bridge?: (from: number, to: number) => boolean
): ICellRange[] {
  const sorted = [...indexes].sort((a, b) => a - b);
  const ranges: ICellRange[] = [];
  for (const i of sorted) {
    const last = ranges[ranges.length - 1];
    if (last && (i === last.last + 1 || (bridge && bridge(last.last, i)))) {
      last.last = i;
    } else if (!last || i !== last.last) {
      ranges.push({ first: i, last: i });
    }
  }
  return ranges;
}

/**
 * A range as 1-based text: `3`, `4–7`.
 */
export function cellRangeText(range: ICellRange): string {
  return range.first === range.last
    ? `${range.first + 1}`
    : `${range.first + 1}–${range.last + 1}`;
}

/**
 * The word before ranges: `cell` for a single cell, else `cells`.
 */
export function cellRangesWord(ranges: readonly ICellRange[]): string {
  const single = ranges.length === 1 && ranges[0].first === ranges[0].last;
  return single ? 'cell' : 'cells';
}

/**
 * 0-based cell indexes as 1-based text: `cell 3`, `cells 4–7`, `cells 5, 9–10`.
 *
 * Ranges as {@link cellRangeList} makes them.
 */
export function cellRanges(
  indexes: readonly number[],
  bridge?: (from: number, to: number) => boolean
): string {
  const ranges = cellRangeList(indexes, bridge);
  if (ranges.length === 0) {
    return 'no cells';
  }
  return `${cellRangesWord(ranges)} ${ranges.map(cellRangeText).join(', ')}`;
}

/**
 * A duration in seconds as `0.5s`, `12.3s`, `2m 05s`.
 */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)}s`;
  }
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  return `${m}m ${String(s).padStart(2, '0')}s`;
}

/**
 * A metric value as the CLI prints it: six significant digits, integers as they are.
 */
export function formatMetric(value: unknown): string {
  if (typeof value !== 'number') {
    return String(value);
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  return String(Number(value.toPrecision(6)));
}

/**
 * A parameter value as Python would write it: `0.25`, `'rbf'`, `True`, `None`, `[1, 2]`.
 */
export function formatValue(value: unknown, type?: string): string {
  if (value === null || value === undefined) {
    return 'None';
  }
  if (typeof value === 'boolean') {
    return value ? 'True' : 'False';
  }
  if (typeof value === 'number') {
    if (type === 'float' && Number.isInteger(value)) {
      return value.toFixed(1);
    }
    return String(value);
  }
  return jsonText(value);
}

/**
 * A parameter value in JSON, as the run form's fields take it: `0.25`, `1.0` for a float,
 * `"rbf"`, `true`, `null`, `[1, 2]`. One notation in the form: no Python `True` or `None`
 * beside a JSON field.
 */
export function formatJSONValue(value: unknown, type?: string): string {
  if (
    typeof value === 'number' &&
    type === 'float' &&
    Number.isInteger(value)
  ) {
    return value.toFixed(1);
  }
  return jsonText(value ?? null);
}

/**
 * JSON on one line with `, ` and `: ` separators (as Python's `json.dumps`).
 */
export function jsonText(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(jsonText).join(', ')}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as { [key: string]: unknown });
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}: ${jsonText(v)}`).join(', ')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * A metric's change against its baseline, signed: `+0.012`, `−0.003`, `±0`; empty when
 * there is nothing to compare with.
 */
export function formatDelta(delta: number | null | undefined): string {
  if (delta === null || delta === undefined || Number.isNaN(delta)) {
    return '';
  }
  if (delta === 0) {
    return '±0';
  }
  return `${delta > 0 ? '+' : '−'}${formatMetric(Math.abs(delta))}`;
}
