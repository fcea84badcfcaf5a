import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compileFormula, evaluateFormula, FormulaError, parseFormula, Value } from '../../src/pipelines/formula.js';

const ev = (text: string, columns: Record<string, Value> = {}) => evaluateFormula(text, columns);
const rejects = (text: string, pattern: RegExp) =>
  assert.throws(
    () => parseFormula(text),
    (e: unknown) => e instanceof FormulaError && pattern.test(e.message),
    text,
  );

describe('formula: precedence and associativity', () => {
  it('multiplies before adding, and parentheses win', () => {
    assert.equal(ev('1 + 2 * 3'), 7);
    assert.equal(ev('(1 + 2) * 3'), 9);
    assert.equal(ev('2 * 3 % 4'), 2); // (2 * 3) % 4
    assert.equal(ev('10 - 4 - 3'), 3); // left to right
    assert.equal(ev('64 / 4 / 2'), 8);
    assert.equal(ev('-2 * 3 + -(1 - 4)'), -3);
  });
  it('compares after arithmetic and combines with && before ||', () => {
    assert.equal(ev('1 + 2 > 2'), 1);
    assert.equal(ev('2 * 2 <= 3'), 0);
    assert.equal(ev('1 < 2 == 1'), 1); // (1 < 2) == 1
    assert.equal(ev('1 || 0 && 0'), 1); // 1 || (0 && 0)
    assert.equal(ev('!0 + 1'), 2);
    assert.equal(ev('avg_cpu > 90 ? 1 : avg_cpu > 50 ? 0.5 : 0', { avg_cpu: 70 }), 0.5);
  });
  it('reads the reference example', () => {
    assert.equal(ev('avg_cpu + max_memory', { avg_cpu: 45.2, max_memory: 512.5 }), 557.7);
  });
});

describe('formula: nulls and arithmetic faults', () => {
  it('gives null for division or modulo by zero, never an exception', () => {
    assert.equal(ev('1 / 0'), null);
    assert.equal(ev('0 / 0'), null);
    assert.equal(ev('5 % 0'), null);
    assert.equal(ev('sum_x / count_x', { sum_x: 10, count_x: 0 }), null);
    assert.equal(ev('(1 / 0) + 1'), null);
  });
  it('gives null for results that are not finite', () => {
    assert.equal(ev('log(0)'), null);
    assert.equal(ev('sqrt(-1)'), null);
    assert.equal(ev('pow(10, 400)'), null);
    assert.equal(ev('1e308 * 10'), null);
    assert.equal(ev('clamp(5, 10, 1)'), null); // an empty interval
  });
  it('propagates null as SQL does, with coalesce and ?? to replace it', () => {
    const cols = { a: null, b: 2 };
    assert.equal(ev('a + b', cols), null);
    assert.equal(ev('a > 1', cols), null);
    assert.equal(ev('coalesce(a, 0) + b', cols), 2);
    assert.equal(ev('a ?? b', cols), 2);
    assert.equal(ev('a && 0', cols), 0); // false wins over unknown
    assert.equal(ev('a || 1', cols), 1); // true wins over unknown
    assert.equal(ev('a && 1', cols), null);
    assert.equal(ev('!a', cols), null);
    assert.equal(ev('a ? 1 : 2', cols), 2); // an unknown condition takes the else branch
    assert.equal(ev('max(a, b)', cols), null);
  });
  it('knows its functions', () => {
    assert.equal(ev('abs(-3)'), 3);
    assert.equal(ev('round(2.5)'), 3);
    assert.equal(ev('round(-2.5)'), -3); // half away from zero, as PostgreSQL's round(numeric)
    assert.equal(ev('round(1.23456, 2)'), 1.23);
    assert.equal(ev('round(1, 2.5)'), null);
    assert.equal(ev('min(3, 1, 2) + max(3, 1, 2)'), 4);
    assert.equal(ev('clamp(150, 0, 100)'), 100);
    assert.equal(ev('log10(1000) + log2(8) + floor(1.7) + ceil(1.2)'), 9);
    assert.ok(Math.abs(ev('exp(log(5))')! - 5) < 1e-12);
    assert.equal(ev('true + false'), 1);
    assert.equal(ev('null'), null);
  });
});

describe('formula: what is refused at save', () => {
  it('refuses property access, calls of anything but allow-listed names, and code', () => {
    rejects("constructor.constructor('return process')()", /only the allow-listed functions|property access/);
    rejects('process.exit()', /only the allow-listed functions|property access/);
    rejects('process.env', /property access/);
    rejects('a[0]', /property access/);
    rejects("a['constructor']", /property access/);
    rejects('this', /this is not allowed/);
    rejects('eval("1")', /unknown function eval/);
    rejects("Function('return 1')()", /only the allow-listed functions|unknown function Function/);
    rejects('toString()', /unknown function toString/);
    rejects('require("fs")', /unknown function require/);
    rejects('"text"', /only numbers/);
    rejects('[1, 2]', /arrays are not allowed/);
    rejects('a; b', /one expression/);
    rejects('a = 1', /does not parse/);
    rejects('() => 1', /does not parse/);
  });
  it('refuses operators that would surprise, with a hint', () => {
    rejects('2 ** 3', /pow\(x, y\)/);
    rejects('2 ^ 3', /pow\(x, y\)/);
    rejects('a === b', /use ==/);
    rejects('a | b', /use \|\|/);
    rejects('~a', /operator ~ is not allowed/);
  });
  it('refuses bad arity, empty, oversized and deeply nested formulas', () => {
    rejects('abs(1, 2)', /abs\(\) takes 1 argument/);
    rejects('clamp(1)', /clamp\(\) takes 3 argument/);
    rejects('', /non-empty/);
    rejects('1 +', /does not parse/);
    rejects('(1 + 2', /does not parse/);
    rejects('1'.padEnd(1001, '+'), /longer than 1000/);
    rejects(`${'('.repeat(100)}1${')'.repeat(100)}`.replace(/\(/g, '-('), /nested more than/);
    assert.throws(() => parseFormula(42), FormulaError);
  });
  it('names the columns a formula reads, and compiling refuses a column that is not there', () => {
    const f = parseFormula('avg_cpu + max_memory * avg_cpu');
    assert.deepEqual(f.columns, ['avg_cpu', 'max_memory']);
    assert.throws(() => compileFormula(f, new Map([['avg_cpu', 0]])), /max_memory/);
    assert.throws(() => compileFormula(parseFormula('__proto__ + 1'), new Map()), /__proto__/);
  });
});

// ---- properties

type Tree = { op: string; l: Tree; r: Tree } | { n: number } | { c: 'x' | 'y' };
const PREC: Record<string, number> = {
  '||': 1,
  '&&': 2,
  '==': 6,
  '!=': 6,
  '<': 7,
  '>': 7,
  '<=': 7,
  '>=': 7,
  '+': 9,
  '-': 9,
  '*': 10,
  '/': 10,
  '%': 10,
};

/** The reference semantics, straight from the tree (no parser involved). */
function evalTree(t: Tree, env: Record<string, Value>): Value {
  if ('n' in t) return t.n;
  if ('c' in t) return env[t.c];
  const a = evalTree(t.l, env),
    b = evalTree(t.r, env);
  if (t.op === '&&') return a === 0 || b === 0 ? 0 : a === null || b === null ? null : 1;
  if (t.op === '||')
    return (a !== null && a !== 0) || (b !== null && b !== 0) ? 1 : a === null || b === null ? null : 0;
  if (a === null || b === null) return null;
  const v =
    t.op === '+'
      ? a + b
      : t.op === '-'
        ? a - b
        : t.op === '*'
          ? a * b
          : t.op === '/'
            ? b === 0
              ? NaN
              : a / b
            : t.op === '%'
              ? b === 0
                ? NaN
                : a % b
              : t.op === '=='
                ? +(a === b)
                : t.op === '!='
                  ? +(a !== b)
                  : t.op === '<'
                    ? +(a < b)
                    : t.op === '>'
                      ? +(a > b)
                      : t.op === '<='
                        ? +(a <= b)
                        : +(a >= b);
  return Number.isFinite(v) ? v : null;
}

/** Prints with the fewest parentheses that standard precedence (left-associative) allows. */
function print(t: Tree): string {
  if ('n' in t) return String(t.n);
  if ('c' in t) return t.c;
  const p = PREC[t.op];
  const side = (s: Tree, right: boolean) => {
    const inner = print(s);
    if (!('op' in s)) return inner;
    const q = PREC[s.op];
    return q < p || (right && q === p) ? `(${inner})` : inner;
  };
  return `${side(t.l, false)} ${t.op} ${side(t.r, true)}`;
}

const tree: fc.Arbitrary<Tree> = fc.letrec<{ t: Tree }>((tie) => ({
  t: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer({ min: 0, max: 9 }).map((n) => ({ n })),
    fc.constantFrom<'x' | 'y'>('x', 'y').map((c) => ({ c })),
    fc.record({ op: fc.constantFrom(...Object.keys(PREC)), l: tie('t'), r: tie('t') }),
  ),
})).t;
const value = fc.oneof(fc.constant(null), fc.integer({ min: -5, max: 5 }));

describe('formula: properties', () => {
  it('parses minimally parenthesised text to what the tree means (precedence and associativity)', () => {
    fc.assert(
      fc.property(tree, value, value, (t, x, y) => {
        const env = { x, y };
        assert.deepEqual(ev(print(t), env), evalTree(t, env));
      }),
      { numRuns: 2000 },
    );
  });
  it('never throws anything but a FormulaError on arbitrary text, and what it accepts evaluates to a finite number or null', () => {
    const alphabet = fc.constantFrom(
      ...'ab_x01 .,()[]+-*/%!?:<>=&|^~"\'`;${}'.split(''),
      'abs',
      'constructor',
      'this',
      'pow',
      'null',
      '1e308',
    );
    fc.assert(
      fc.property(
        fc.array(alphabet, { maxLength: 40 }).map((xs) => xs.join('')),
        fc.array(value, { minLength: 3, maxLength: 3 }),
        (text, vals) => {
          let f;
          try {
            f = parseFormula(text);
          } catch (e) {
            assert.ok(e instanceof FormulaError, `${text}: ${(e as Error).message}`);
            return;
          }
          const slots = new Map(f.columns.map((c, i) => [c, i]));
          const row = f.columns.map((_, i) => vals[i % 3]);
          const v = compileFormula(f, slots)(row);
          assert.ok(v === null || Number.isFinite(v), `${text} gave ${v}`);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
