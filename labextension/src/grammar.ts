/**
 * The nb2prod cell-tag grammar, as the JupyterLab side uses it.
 *
 * The grammar itself is `nb2prod/grammar.json`, the file the Python side loads too: it is
 * imported here, never copied, so both sides read the same roles, tags, names and hues.
 * This module only interprets it: tags <-> roles for the cell toolbar dropdown, name
 * validation, and which step each cell belongs to (for the cell markers).
 */
import grammarJson from '../../nb2prod/grammar.json';

/**
 * A role as grammar.json describes it.
 */
export interface IRoleSpec {
  role: string;
  label: string;
  title: string;
  hue: string;
  step: boolean;
}

/**
 * A tag as grammar.json describes it.
 */
export interface ITagSpec {
  tag: string;
  role: string | null;
  name: 'none' | 'optional' | 'required';
  kale?: boolean;
  modifier?: boolean;
  doc: string;
}

/**
 * The grammar file's shape.
 */
export interface IGrammar {
  version: number;
  name_pattern: string;
  name_max_length: number;
  roles: IRoleSpec[];
  tags: ITagSpec[];
  ignored_prefixes: string[];
  foreign_tags: string[];
}

/**
 * The grammar, straight from nb2prod/grammar.json.
 */
export const GRAMMAR: IGrammar = grammarJson as IGrammar;

const NAME_RE = new RegExp(GRAMMAR.name_pattern);

/**
 * Python's keywords (`keyword.kwlist`): step names may not be one. Only the lower-case ones
 * matter, since names are lower-case.
 */
const PYTHON_KEYWORDS = new Set([
  'and',
  'as',
  'assert',
  'async',
  'await',
  'break',
  'class',
  'continue',
  'def',
  'del',
  'elif',
  'else',
  'except',
  'finally',
  'for',
  'from',
  'global',
  'if',
  'import',
  'in',
  'is',
  'lambda',
  'nonlocal',
  'not',
  'or',
  'pass',
  'raise',
  'return',
  'try',
  'while',
  'with',
  'yield'
]);

const ROLES = new Map(GRAMMAR.roles.map(r => [r.role, r]));
const TAGS = new Map(GRAMMAR.tags.map(t => [t.tag, t]));
const FOREIGN = new Set(GRAMMAR.foreign_tags);

/**
 * The role spec for a role name, if the grammar knows it.
 */
export function roleSpec(role: string): IRoleSpec | undefined {
  return ROLES.get(role);
}

/**
 * The short label of a role (`TRAIN`), or the role itself upper-cased.
 */
export function roleLabel(role: string): string {
  return ROLES.get(role)?.label ?? role.toUpperCase();
}

/**
 * The human title of a role (`Training`).
 */
export function roleTitle(role: string): string {
  return ROLES.get(role)?.title ?? role;
}

/**
 * The hue of a role (`orange`), the key of its colour in style/roles.css.
 */
export function roleHue(role: string): string {
  return ROLES.get(role)?.hue ?? 'none';
}

/**
 * Whether a role starts a step.
 */
export function isStepRole(role: string): boolean {
  return ROLES.get(role)?.step ?? false;
}

/**
 * Why `name` is not a valid step name, or `null` when it is.
 *
 * The rules are the grammar's: its name pattern, its maximum length, and no Python keyword.
 */
export function nameProblem(name: string): string | null {
  if (name.length === 0) {
    return 'Enter a name.';
  }
  if (name.length > GRAMMAR.name_max_length) {
    return `At most ${GRAMMAR.name_max_length} characters.`;
  }
  if (!NAME_RE.test(name)) {
    return 'Use lower-case letters, digits and underscores; start with a letter or underscore.';
  }
  if (PYTHON_KEYWORDS.has(name)) {
    return `\`${name}\` is a Python keyword.`;
  }
  return null;
}

/**
 * Whether `name` is a valid step name.
 */
export function isValidName(name: string): boolean {
  return nameProblem(name) === null;
}

/**
 * Turn arbitrary text into the closest valid name (as the Python side's make_safe_name).
 */
export function makeSafeName(text: string, fallback = 'pipeline'): string {
  let name = text
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!name) {
    name = fallback;
  }
  if (/^[0-9]/.test(name)) {
    name = `${fallback}_${name}`;
  }
  name = name.slice(0, GRAMMAR.name_max_length).replace(/_+$/, '');
  if (PYTHON_KEYWORDS.has(name)) {
    name += '_';
  }
  return name;
}

/**
 * One tag, interpreted.
 *
 * - `foreign`: another tool's tag (`hide-input`, `label:...`); nb2prod ignores it.
 * - `unknown`: not a tag of the grammar (a typo such as `trainig`), or a name where none is
 *   allowed; the server reports it as a problem.
 * - `grammar`: a tag of the grammar, with its spec and the name after `:` (or `null`).
 */
export type ParsedTag =
  | { kind: 'foreign'; tag: string }
  | { kind: 'unknown'; tag: string }
  | { kind: 'grammar'; tag: string; spec: ITagSpec; name: string | null };

/**
 * Interpret one tag.
 */
export function parseTag(tag: string): ParsedTag {
  if (
    FOREIGN.has(tag) ||
    GRAMMAR.ignored_prefixes.some(p => tag.startsWith(p))
  ) {
    return { kind: 'foreign', tag };
  }
  const colon = tag.indexOf(':');
  const base = colon < 0 ? tag : tag.slice(0, colon);
  const name = colon < 0 ? null : tag.slice(colon + 1);
  const spec = TAGS.get(base);
  if (!spec || (name !== null && spec.name === 'none')) {
    return { kind: 'unknown', tag };
  }
  return { kind: 'grammar', tag, spec, name };
}

/**
 * What a cell's tags say about it.
 */
export interface ICellTags {
  /**
   * The cell's role: a step role (`training`, `step`), `parameters`, `setup`, `skip`,
   * or `null` for none. With several roles (an error), the first one.
   */
  role: string | null;
  /**
   * The step name given after `:` (`training:xgboost` -> `xgboost`), or `null`.
   */
  name: string | null;
  /**
   * Tagged `metrics` (or Kale's `pipeline-metrics`).
   */
  metrics: boolean;
  /**
   * Tags that are not the grammar's and not another tool's (typos).
   */
  unknown: string[];
  /**
   * More than one role on the cell.
   */
  conflict: boolean;
}

/**
 * Read a cell's role from its tags.
 */
export function readTags(tags: readonly string[]): ICellTags {
  const out: ICellTags = {
    role: null,
    name: null,
    metrics: false,
    unknown: [],
    conflict: false
  };
  for (const tag of tags) {
    const parsed = parseTag(tag);
    if (parsed.kind === 'unknown') {
      out.unknown.push(tag);
      continue;
    }
    if (parsed.kind === 'foreign') {
      continue;
    }
    const { spec, name } = parsed;
    if (spec.role === 'metrics') {
      out.metrics = true;
      continue;
    }
    if (spec.role === null || spec.modifier) {
      continue; // prev:NAME
    }
    if (out.role === null) {
      out.role = spec.role;
      out.name = name ? name : null;
    } else if (
      out.role !== spec.role ||
      (out.name ?? null) !== (name || null)
    ) {
      out.conflict = true;
    }
  }
  return out;
}

/**
 * A choice of the cell toolbar's role dropdown.
 *
 * `role` is `null` for "—" (none), otherwise a role of the grammar (`metrics` included).
 * `name` is the step name for named steps.
 */
export interface IRoleChoice {
  role: string | null;
  name?: string | null;
}

/**
 * One option of the role dropdown.
 */
export interface IRoleOption {
  /**
   * The option's value in the dropdown: `''` for none, the tag (`training`), or
   * `training:` for "Training…" (ask for a name).
   */
  value: string;
  label: string;
  role: string | null;
  /**
   * Picking it asks for a step name.
   */
  askName: boolean;
}

/**
 * The dropdown's options, from the grammar: none, then each role the grammar's own (non-Kale)
 * tags give, in grammar order, with a "Title…" option after each role that takes a name.
 */
export function roleOptions(): IRoleOption[] {
  const options: IRoleOption[] = [
    { value: '', label: '—', role: null, askName: false }
  ];
  for (const spec of GRAMMAR.tags) {
    if (spec.kale || spec.role === null) {
      continue;
    }
    const title = roleTitle(spec.role);
    if (spec.name !== 'required') {
      options.push({
        value: spec.tag,
        label: title,
        role: spec.role,
        askName: false
      });
    }
    if (spec.name !== 'none') {
      options.push({
        value: `${spec.tag}:`,
        label: `${title}…`,
        role: spec.role,
        askName: true
      });
    }
  }
  return options;
}

/**
 * The dropdown's current value for a cell's tags: `''`, `training`, or `training:NAME`.
 * Kale's spellings map to their role (`imports` -> `setup`).
 */
export function choiceValue(tags: readonly string[]): string {
  const read = readTags(tags);
  const role = read.role ?? (read.metrics ? 'metrics' : null);
  if (role === null) {
    return '';
  }
  return read.name ? `${role}:${read.name}` : role;
}

/**
 * The tag that gives a role (and name): the grammar's own, non-Kale spelling.
 */
export function tagFor(choice: IRoleChoice): string | null {
  if (choice.role === null) {
    return null;
  }
  const spec = GRAMMAR.tags.find(t => !t.kale && t.role === choice.role);
  const base = spec?.tag ?? choice.role;
  if (choice.name && spec?.name !== 'none') {
    return `${base}:${choice.name}`;
  }
  return base;
}

/**
 * The tags a cell gets when its role is set to `choice`.
 *
 * Every role tag of the grammar (its own and Kale's spellings, with or without a name, and
 * `metrics`) is replaced by the tag for `choice`, put first. Everything else stays as it was,
 * in its order: other tools' tags (`hide-input`), `prev:NAME` (kept only when the new role is
 * a step, since it orders steps), and unknown tags, which are the user's to fix.
 */
export function applyRole(
  tags: readonly string[],
  choice: IRoleChoice
): string[] {
  const kept: string[] = [];
  const newIsStep = choice.role !== null && isStepRole(choice.role);
  for (const tag of tags) {
    const parsed = parseTag(tag);
    if (parsed.kind !== 'grammar') {
      kept.push(tag);
    } else if (parsed.spec.role === null && newIsStep) {
      kept.push(tag); // prev:NAME
    }
  }
  const tag = tagFor(choice);
  const out = tag ? [tag, ...kept] : kept;
  // No duplicates, first occurrence wins.
  return out.filter((t, i) => out.indexOf(t) === i);
}

/**
 * The minimal description of a notebook cell the markers need.
 */
export interface IMarkerCell {
  type: string;
  tags: readonly string[];
}

/**
 * How a cell is marked in the notebook.
 *
 * - `start`: the cell's tags start (or continue) a step: a full bar and a chip.
 * - `member`: an untagged cell of the step above: a lighter bar of that step's colour.
 * - `parameters`, `setup`, `gates`, `serving`, `skip`: the cell's own role, in no step (skip
 *   cells are dimmed).
 * - `none`: no marker (Markdown, raw, or a code cell before the first step).
 */
export interface ICellMarker {
  kind:
    | 'start'
    | 'member'
    | 'parameters'
    | 'setup'
    | 'gates'
    | 'serving'
    | 'skip'
    | 'none';
  /**
   * The role whose colour the bar takes (the step's role for `start` and `member`).
   */
  role: string | null;
  /**
   * The step the cell belongs to, for `start` and `member`.
   */
  step: string | null;
  /**
   * The chip's text (`TRAIN · xgboost`), or `''` for no chip.
   */
  label: string;
  /**
   * Tagged `metrics`: a second, teal chip.
   */
  metrics: boolean;
  /**
   * Unknown tags on the cell, shown in a warning chip.
   */
  unknown: string[];
}

/**
 * The chip text of a step: `TRAIN` for `training`, `TRAIN · xgboost` for `training:xgboost`.
 */
export function stepLabel(role: string, name: string | null): string {
  const label = roleLabel(role);
  return name && name !== role ? `${label} · ${name}` : label;
}

/**
 * Which step each cell belongs to, and how to mark it.
 *
 * It follows the grammar's rules: a step tag starts a step; an untagged code cell belongs to
 * the step above it; `parameters`, `setup`, `gates`, `serving` and `skip` cells belong to no
 * step, and the cell after them goes back to the running step; cells before the first step
 * belong to none.
 * Markdown and raw cells are never in a step. An empty Kale `block:` continues the step above.
 */
export function cellMarkers(cells: readonly IMarkerCell[]): ICellMarker[] {
  let current: { role: string; name: string } | null = null;
  return cells.map(cell => {
    const marker: ICellMarker = {
      kind: 'none',
      role: null,
      step: null,
      label: '',
      metrics: false,
      unknown: []
    };
    if (cell.type !== 'code') {
      return marker;
    }
    const read = readTags(cell.tags);
    marker.metrics = read.metrics;
    marker.unknown = read.unknown;
    const role = read.role;
    if (role !== null && isStepRole(role)) {
      if (read.name === null && role === 'step') {
        // Kale's empty `block:` / `step:`: continue the step above.
        if (current) {
          marker.kind = 'member';
          marker.role = current.role;
          marker.step = current.name;
        }
        return marker;
      }
      current = { role, name: read.name ?? role };
      marker.kind = 'start';
      marker.role = role;
      marker.step = current.name;
      marker.label = stepLabel(role, read.name);
      return marker;
    }
    if (
      role === 'parameters' ||
      role === 'setup' ||
      role === 'gates' ||
      role === 'serving' ||
      role === 'skip'
    ) {
      marker.kind = role;
      marker.role = role;
      marker.label = roleLabel(role);
      return marker;
    }
    if (current) {
      marker.kind = 'member';
      marker.role = current.role;
      marker.step = current.name;
    }
    return marker;
  });
}
