/**
 * The run form's logic: one field per parameter of the pipeline's config, its text, and its
 * validation. Kept free of React so that it can be tested on its own.
 */
import { IParameter } from './api';
import { jsonText } from './format';

/**
 * How a parameter is edited.
 *
 * - `int`, `float`: a number input;
 * - `bool`: a checkbox;
 * - `str`: a text input;
 * - `json`: a JSON text area (lists, dicts, and `None` defaults, whose type is open).
 */
export type FieldKind = 'int' | 'float' | 'bool' | 'str' | 'json';

/**
 * The editor kind for a parameter type.
 */
export function fieldKind(type: string): FieldKind {
  switch (type) {
    case 'int':
    case 'float':
    case 'bool':
    case 'str':
      return type;
    default:
      return 'json';
  }
}

/**
 * A field's initial text: what the user edits.
 */
export function initialText(param: IParameter): string {
  const kind = fieldKind(param.type);
  switch (kind) {
    case 'bool':
      return param.value ? 'true' : 'false';
    case 'str':
      return typeof param.value === 'string' ? param.value : '';
    case 'float':
      return typeof param.value === 'number' && Number.isInteger(param.value)
        ? param.value.toFixed(1)
        : String(param.value);
    case 'int':
      return String(param.value);
    default:
      return jsonText(param.value);
  }
}

/**
 * The result of reading a field: its value, or why it is not valid.
 */
export type FieldResult =
  { ok: true; value: unknown } | { ok: false; error: string };

/**
 * Read a field's text as a value of the parameter's type.
 */
export function parseField(param: IParameter, text: string): FieldResult {
  const kind = fieldKind(param.type);
  const trimmed = text.trim();
  switch (kind) {
    case 'int': {
      if (!/^[-+]?\d+$/.test(trimmed)) {
        return { ok: false, error: 'Enter a whole number.' };
      }
      return { ok: true, value: Number(trimmed) };
    }
    case 'float': {
      const value = Number(trimmed);
      if (trimmed === '' || !isFinite(value)) {
        return { ok: false, error: 'Enter a number.' };
      }
      return { ok: true, value };
    }
    case 'bool':
      return { ok: true, value: trimmed === 'true' };
    case 'str':
      return { ok: true, value: text };
    default: {
      let value: unknown;
      try {
        value = JSON.parse(trimmed);
      } catch {
        return { ok: false, error: 'Enter valid JSON.' };
      }
      if (param.type === 'list' && !Array.isArray(value)) {
        return { ok: false, error: 'Enter a JSON list, e.g. [1, 2].' };
      }
      if (
        param.type === 'dict' &&
        (value === null || typeof value !== 'object' || Array.isArray(value))
      ) {
        return { ok: false, error: 'Enter a JSON object, e.g. {"a": 1}.' };
      }
      return { ok: true, value };
    }
  }
}

/**
 * Whether two parameter values are the same (deep equality of JSON values).
 */
export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(canonical);
  }
  if (value !== null && typeof value === 'object') {
    const out: { [key: string]: unknown } = {};
    for (const key of Object.keys(value as object).sort()) {
      out[key] = canonical((value as { [key: string]: unknown })[key]);
    }
    return out;
  }
  return value;
}

/**
 * The outcome of the whole form: the overrides (only the changed parameters) or the errors,
 * by parameter name.
 */
export interface IFormResult {
  overrides: { [name: string]: unknown };
  errors: { [name: string]: string };
}

/**
 * Read every field of the form.
 */
export function readForm(
  params: readonly IParameter[],
  texts: { [name: string]: string }
): IFormResult {
  const result: IFormResult = { overrides: {}, errors: {} };
  for (const param of params) {
    const text = texts[param.name] ?? initialText(param);
    const field = parseField(param, text);
    if (!field.ok) {
      result.errors[param.name] = field.error;
    } else if (!sameValue(field.value, param.value)) {
      result.overrides[param.name] = field.value;
    }
  }
  return result;
}
