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
 * 0-based cell indexes as 1-based text: `cell 3`, `cells 4–7`, `cells 5, 9–10`.
 *
 * Runs of consecutive indexes become ranges. `bridge` may say that the cells between two
 * indexes do not interrupt a range (Markdown cells between two cells of a step).
 */
export function cellRanges(
  indexes: readonly number[],
  bridge?: (from: number, to: number) => boolean
): string {
  const sorted = [...indexes].sort((a, b) => a - b);
  if (sorted.length === 0) {
    return 'no cells';
  }
  const ranges: [number, number][] = [];
  for (const i of sorted) {
    const last = ranges[ranges.length - 1];
    if (last && (i === last[1] + 1 || (bridge && bridge(last[1], i)))) {
      last[1] = i;
    } else if (!last || i !== last[1]) {
      ranges.push([i, i]);
    }
  }
  const text = ranges
    .map(([a, b]) => (a === b ? `${a + 1}` : `${a + 1}–${b + 1}`))
    .join(', ');
  const single = ranges.length === 1 && ranges[0][0] === ranges[0][1];
  return `${single ? 'cell' : 'cells'} ${text}`;
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
