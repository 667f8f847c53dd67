import { IParameter } from '../api';
import { inspectContent } from '../model';
import {
  fieldKind,
  initialText,
  parseField,
  readForm,
  sameValue
} from '../paramform';

const param = (name: string, type: string, value: unknown): IParameter => ({
  name,
  type,
  value,
  help: ''
});

const PARAMS = [
  param('n', 'int', 3),
  param('C', 'float', 1.0),
  param('flag', 'bool', false),
  param('kernel', 'str', 'rbf'),
  param('cols', 'list', ['a']),
  param('opts', 'dict', { depth: 2 }),
  param('seed', 'null', null)
];

describe('the run form', () => {
  it('picks an editor per type', () => {
    expect(PARAMS.map(p => fieldKind(p.type))).toEqual([
      'int',
      'float',
      'bool',
      'str',
      'json',
      'json',
      'json'
    ]);
  });

  it('starts from the defaults and passes nothing unchanged', () => {
    const texts = Object.fromEntries(PARAMS.map(p => [p.name, initialText(p)]));
    expect(texts.C).toBe('1.0');
    expect(texts.cols).toBe('["a"]');
    expect(readForm(PARAMS, texts)).toEqual({ overrides: {}, errors: {} });
    expect(readForm(PARAMS, {})).toEqual({ overrides: {}, errors: {} });
  });

  it('passes only the changed values, typed', () => {
    const result = readForm(PARAMS, {
      n: '5',
      C: '1',
      flag: 'true',
      kernel: 'linear',
      opts: '{"depth": 2}',
      seed: '7'
    });
    expect(result.errors).toEqual({});
    expect(result.overrides).toEqual({
      n: 5,
      flag: true,
      kernel: 'linear',
      seed: 7
    });
  });

  it('validates before submit', () => {
    expect(parseField(PARAMS[0], '2.5')).toEqual({
      ok: false,
      error: 'Enter a whole number.'
    });
    expect(parseField(PARAMS[1], 'abc').ok).toBe(false);
    expect(parseField(PARAMS[1], '').ok).toBe(false);
    expect(parseField(PARAMS[4], '{"a": 1}').ok).toBe(false);
    expect(parseField(PARAMS[5], '[1]').ok).toBe(false);
    expect(parseField(PARAMS[5], '{oops').ok).toBe(false);
    const result = readForm(PARAMS, { n: 'x', cols: '["b"]' });
    expect(Object.keys(result.errors)).toEqual(['n']);
    expect(result.overrides).toEqual({ cols: ['b'] });
  });

  it('compares values deeply', () => {
    expect(sameValue({ a: 1, b: [1] }, { b: [1], a: 1 })).toBe(true);
    expect(sameValue([1, 2], [2, 1])).toBe(false);
  });
});

describe('inspectContent', () => {
  it('drops outputs before sending the notebook to the server', () => {
    const nb = {
      cells: [
        {
          cell_type: 'code',
          source: 'x',
          outputs: [{ a: 1 }],
          execution_count: 3
        },
        { cell_type: 'markdown', source: '# t' }
      ],
      metadata: {}
    };
    expect(inspectContent(nb).cells).toEqual([
      { cell_type: 'code', source: 'x', outputs: [], execution_count: null },
      { cell_type: 'markdown', source: '# t' }
    ]);
  });
});
