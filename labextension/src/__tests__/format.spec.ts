import {
  cellRangeList,
  cellRanges,
  cellRangesWord,
  cellRangeText,
  formatDuration,
  formatJSONValue,
  formatMetric,
  formatValue,
  problemCount
} from '../format';

describe('cellRanges', () => {
  it('counts from 1 and joins runs', () => {
    expect(cellRanges([3])).toBe('cell 4');
    expect(cellRanges([3, 4, 5, 6])).toBe('cells 4–7');
    expect(cellRanges([4, 8])).toBe('cells 5, 9');
    expect(cellRanges([8, 4, 4])).toBe('cells 5, 9');
    expect(cellRanges([])).toBe('no cells');
  });

  it('bridges gaps the caller allows', () => {
    expect(cellRanges([4, 6], () => true)).toBe('cells 5–7');
    expect(cellRanges([4, 6], () => false)).toBe('cells 5, 7');
  });
});

describe('formatting', () => {
  it('formats durations', () => {
    expect(formatDuration(0.494)).toBe('0.5s');
    expect(formatDuration(75)).toBe('1m 15s');
    expect(formatDuration(null)).toBe('');
  });

  it('formats metrics as the CLI does', () => {
    expect(formatMetric(0.986013986013986)).toBe('0.986014');
    expect(formatMetric(3)).toBe('3');
  });

  it('formats values as Python literals', () => {
    expect(formatValue(1, 'float')).toBe('1.0');
    expect(formatValue(42, 'int')).toBe('42');
    expect(formatValue(true)).toBe('True');
    expect(formatValue(null)).toBe('None');
    expect(formatValue('rbf')).toBe('"rbf"');
    expect(formatValue([1, 2])).toBe('[1, 2]');
    expect(formatValue({ a: [1, 'x'] })).toBe('{"a": [1, "x"]}');
  });
});

describe('the run form notation', () => {
  it('is JSON, as the fields take it', () => {
    expect(formatJSONValue(true, 'bool')).toBe('true');
    expect(formatJSONValue(null, 'null')).toBe('null');
    expect(formatJSONValue(1, 'float')).toBe('1.0');
    expect(formatJSONValue(0.25, 'float')).toBe('0.25');
    expect(formatJSONValue('rbf', 'str')).toBe('"rbf"');
    expect(formatJSONValue({ a: [true, null] }, 'dict')).toBe(
      '{"a": [true, null]}'
    );
  });
});

describe('problem counts', () => {
  it('count errors and warnings', () => {
    const e = { severity: 'error' };
    const w = { severity: 'warning' };
    expect(problemCount([e, e, w])).toBe('2 errors, 1 warning');
    expect(problemCount([e])).toBe('1 error');
    expect(problemCount([w, w])).toBe('2 warnings');
    expect(problemCount([])).toBe('');
  });
});

describe('cellRangeList', () => {
  it('gives 0-based ranges in order', () => {
    expect(cellRangeList([3])).toEqual([{ first: 3, last: 3 }]);
    expect(cellRangeList([6, 3, 4, 5])).toEqual([{ first: 3, last: 6 }]);
    expect(cellRangeList([8, 4, 4, 9])).toEqual([
      { first: 4, last: 4 },
      { first: 8, last: 9 }
    ]);
    expect(cellRangeList([])).toEqual([]);
  });

  it('bridges gaps the caller allows', () => {
    const calls: [number, number][] = [];
    const bridge = (from: number, to: number) => {
      calls.push([from, to]);
      return to - from === 2;
    };
    expect(cellRangeList([1, 3, 7], bridge)).toEqual([
      { first: 1, last: 3 },
      { first: 7, last: 7 }
    ]);
    expect(calls).toEqual([
      [1, 3],
      [3, 7]
    ]);
  });

  it('renders as the text cellRanges gives', () => {
    const ranges = cellRangeList([4, 8, 9]);
    expect(ranges.map(cellRangeText)).toEqual(['5', '9–10']);
    expect(cellRangesWord(ranges)).toBe('cells');
    expect(cellRangesWord(cellRangeList([2]))).toBe('cell');
    expect(cellRangesWord(cellRangeList([2, 3]))).toBe('cells');
    expect(cellRanges([4, 8, 9])).toBe('cells 5, 9–10');
  });
});
