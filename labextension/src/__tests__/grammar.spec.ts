/**
 * The tag logic of the Lab side, against nb2prod/grammar.json (the file the Python side loads).
 */
import * as fs from 'fs';
import * as path from 'path';

import {
  applyRole,
  cellMarkers,
  choiceValue,
  GRAMMAR,
  IMarkerCell,
  isValidName,
  makeSafeName,
  nameProblem,
  parseTag,
  readTags,
  roleHue,
  roleLabel,
  roleOptions,
  stepLabel,
  tagFor
} from '../grammar';

const code = (...tags: string[]): IMarkerCell => ({ type: 'code', tags });
const markdown = (...tags: string[]): IMarkerCell => ({
  type: 'markdown',
  tags
});

describe('the grammar', () => {
  it('is nb2prod/grammar.json itself', () => {
    const file = path.join(
      __dirname,
      '..',
      '..',
      '..',
      'nb2prod',
      'grammar.json'
    );
    expect(GRAMMAR).toEqual(JSON.parse(fs.readFileSync(file, 'utf-8')));
  });

  it('gives each role a label and a hue', () => {
    expect(roleLabel('training')).toBe('TRAIN');
    expect(roleLabel('preprocessing')).toBe('PREP');
    expect(roleLabel('parameters')).toBe('PARAMS');
    expect(roleHue('training')).toBe('orange');
    expect(roleHue('evaluation')).toBe('green');
    expect(roleHue('metrics')).toBe('teal');
    expect(roleHue('skip')).toBe('none');
  });

  it('has a colour in style/roles.css for every hue', () => {
    const css = fs.readFileSync(
      path.join(__dirname, '..', '..', 'style', 'roles.css'),
      'utf-8'
    );
    for (const role of GRAMMAR.roles) {
      expect(css).toContain(`[data-nb2prod-hue='${role.hue}']`);
    }
  });
});

describe('step names', () => {
  it.each(['xgboost', '_private', 'model_2', 'a'.repeat(64)])(
    'accepts %s',
    name => {
      expect(isValidName(name)).toBe(true);
      expect(nameProblem(name)).toBeNull();
    }
  );

  it.each([
    ['', 'Enter a name.'],
    ['Load-Data', 'lower-case'],
    ['2fast', 'start with a letter'],
    ['with space', 'lower-case'],
    ['class', 'Python keyword'],
    ['lambda', 'Python keyword'],
    ['a'.repeat(65), 'At most 64']
  ])('refuses %j', (name, why) => {
    expect(isValidName(name)).toBe(false);
    expect(nameProblem(name)).toContain(why);
  });

  it('makes names safe as the Python side does', () => {
    expect(makeSafeName('Churn Model (v2)')).toBe('churn_model_v2');
    expect(makeSafeName('2024 sales')).toBe('pipeline_2024_sales');
    expect(makeSafeName('import')).toBe('import_');
    expect(makeSafeName('---')).toBe('pipeline');
  });
});

describe('parseTag', () => {
  it('knows the grammar, Kale and foreign tags', () => {
    expect(parseTag('training')).toMatchObject({ kind: 'grammar', name: null });
    expect(parseTag('training:xgb')).toMatchObject({
      kind: 'grammar',
      name: 'xgb'
    });
    expect(parseTag('block:load')).toMatchObject({ kind: 'grammar' });
    expect(parseTag('hide-input')).toEqual({
      kind: 'foreign',
      tag: 'hide-input'
    });
    expect(parseTag('limit:nvidia.com/gpu:1').kind).toBe('foreign');
    expect(parseTag('trainig').kind).toBe('unknown');
    expect(parseTag('skip:foo').kind).toBe('unknown');
  });
});

describe('tags -> role', () => {
  it('reads the role, the name and the metrics modifier', () => {
    expect(readTags(['training:xgb', 'hide-input'])).toMatchObject({
      role: 'training',
      name: 'xgb',
      metrics: false,
      conflict: false
    });
    expect(readTags(['evaluation', 'metrics'])).toMatchObject({
      role: 'evaluation',
      metrics: true
    });
    expect(readTags(['imports']).role).toBe('setup');
    expect(readTags(['pipeline-parameters']).role).toBe('parameters');
    expect(readTags(['step:load', 'prev:other']).role).toBe('step');
    expect(readTags(['preprocessing', 'training']).conflict).toBe(true);
    expect(readTags(['trainig']).unknown).toEqual(['trainig']);
    expect(readTags([]).role).toBeNull();
  });

  it('gives the dropdown value', () => {
    expect(choiceValue([])).toBe('');
    expect(choiceValue(['hide-input'])).toBe('');
    expect(choiceValue(['training'])).toBe('training');
    expect(choiceValue(['training:xgb'])).toBe('training:xgb');
    expect(choiceValue(['metrics'])).toBe('metrics');
    expect(choiceValue(['functions'])).toBe('setup');
  });
});

describe('role -> tags', () => {
  it('offers the roles in grammar order, with named variants', () => {
    expect(roleOptions().map(o => o.label)).toEqual([
      '—',
      'Preprocessing',
      'Preprocessing…',
      'Training',
      'Training…',
      'Evaluation',
      'Evaluation…',
      'Parameters',
      'Setup',
      'Metrics',
      'Gates',
      'Serving',
      'Skip'
    ]);
    expect(
      roleOptions()
        .filter(o => o.askName)
        .map(o => o.value)
    ).toEqual(['preprocessing:', 'training:', 'evaluation:']);
  });

  it('writes the grammar tag', () => {
    expect(tagFor({ role: 'training' })).toBe('training');
    expect(tagFor({ role: 'training', name: 'xgb' })).toBe('training:xgb');
    expect(tagFor({ role: 'setup', name: 'ignored' })).toBe('setup');
    expect(tagFor({ role: null })).toBeNull();
  });

  it('replaces the role and keeps foreign tags in order', () => {
    expect(
      applyRole(['hide-input', 'training', 'remove-output'], { role: 'skip' })
    ).toEqual(['skip', 'hide-input', 'remove-output']);
    expect(
      applyRole(['hide-input'], { role: 'training', name: 'xgb' })
    ).toEqual(['training:xgb', 'hide-input']);
  });

  it('clears every role spelling, Kale ones and metrics included', () => {
    expect(
      applyRole(['imports', 'label:x', 'metrics'], { role: null })
    ).toEqual(['label:x']);
    expect(
      applyRole(['step:load', 'pipeline-metrics'], { role: 'evaluation' })
    ).toEqual(['evaluation']);
  });

  it('keeps unknown tags (the user fixes typos) and prev: on steps only', () => {
    expect(applyRole(['trainig'], { role: 'training' })).toEqual([
      'training',
      'trainig'
    ]);
    expect(applyRole(['step:b', 'prev:a'], { role: 'training' })).toEqual([
      'training',
      'prev:a'
    ]);
    expect(applyRole(['step:b', 'prev:a'], { role: 'skip' })).toEqual(['skip']);
  });

  it('round-trips every dropdown choice', () => {
    for (const option of roleOptions()) {
      if (option.askName) {
        const tags = applyRole(['hide-input'], {
          role: option.role,
          name: 'x_1'
        });
        expect(choiceValue(tags)).toBe(`${option.role}:x_1`);
      } else {
        const tags = applyRole(['hide-input'], { role: option.role });
        expect(choiceValue(tags)).toBe(option.value);
        expect(tags).toContain('hide-input');
      }
    }
  });

  it('never duplicates a tag', () => {
    expect(applyRole(['hide-input', 'hide-input'], { role: 'setup' })).toEqual([
      'setup',
      'hide-input'
    ]);
  });
});

describe('cell markers (step spans)', () => {
  it('labels steps', () => {
    expect(stepLabel('training', 'xgboost')).toBe('TRAIN · xgboost');
    expect(stepLabel('training', null)).toBe('TRAIN');
    expect(stepLabel('training', 'training')).toBe('TRAIN');
  });

  it('spans untagged cells to the step above, not across markdown', () => {
    const markers = cellMarkers([
      code(), // 0: before the first step
      code('setup'), // 1
      code('parameters'), // 2
      markdown(), // 3
      code('preprocessing'), // 4
      code('skip'), // 5
      code(), // 6: back in preprocessing
      markdown(), // 7
      code('hide-input'), // 8: still preprocessing
      code('training:xgb'), // 9
      code('metrics'), // 10
      code('evaluation', 'metrics') // 11
    ]);
    expect(markers.map(m => m.kind)).toEqual([
      'none',
      'setup',
      'parameters',
      'none',
      'start',
      'skip',
      'member',
      'none',
      'member',
      'start',
      'member',
      'start'
    ]);
    expect(markers.map(m => m.step)).toEqual([
      null,
      null,
      null,
      null,
      'preprocessing',
      null,
      'preprocessing',
      null,
      'preprocessing',
      'xgb',
      'xgb',
      'evaluation'
    ]);
    expect(markers[9].label).toBe('TRAIN · xgb');
    expect(markers[10]).toMatchObject({
      role: 'training',
      metrics: true,
      label: ''
    });
    expect(markers[11]).toMatchObject({ label: 'EVAL', metrics: true });
    expect(markers[5].label).toBe('SKIP');
    expect(markers[0].label).toBe('');
  });

  it('marks a gates cell as its own role, in no step', () => {
    const markers = cellMarkers([code('training'), code('gates'), code()]);
    expect(markers.map(m => [m.kind, m.step])).toEqual([
      ['start', 'training'],
      ['gates', null],
      ['member', 'training']
    ]);
    expect(markers[1].label).toBe('GATES');
  });

  it('marks a serving cell as its own role, in no step, labelled as the grammar says', () => {
    const markers = cellMarkers([
      code('training'),
      code('serving'),
      code(),
      code('evaluation')
    ]);
    expect(markers.map(m => [m.kind, m.step])).toEqual([
      ['start', 'training'],
      ['serving', null],
      ['member', 'training'],
      ['start', 'evaluation']
    ]);
    expect(markers[1]).toMatchObject({ role: 'serving', label: 'SERVING' });
    expect(roleHue('serving')).toBe('green');
    // The role control writes the grammar's tag, without a name.
    expect(tagFor({ role: 'serving', name: 'predict' })).toBe('serving');
    expect(applyRole(['training', 'hide-input'], { role: 'serving' })).toEqual([
      'serving',
      'hide-input'
    ]);
  });

  it('follows Kale steps, and an empty block: continues', () => {
    const markers = cellMarkers([
      code('imports'),
      code('block:load'),
      code('block:'),
      code()
    ]);
    expect(markers.map(m => [m.kind, m.step])).toEqual([
      ['setup', null],
      ['start', 'load'],
      ['member', 'load'],
      ['member', 'load']
    ]);
    expect(markers[1].label).toBe('STEP · load');
  });

  it('flags unknown tags and metrics before any step', () => {
    const [m] = cellMarkers([code('trainig', 'metrics')]);
    expect(m).toMatchObject({
      kind: 'none',
      metrics: true,
      unknown: ['trainig']
    });
  });
});
