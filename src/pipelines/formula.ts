import jsep from 'jsep';

/**
 * The formula language of pipeline `transform` and `threshold` stages: arithmetic over the columns
 * of a row. Text is parsed by jsep (a real expression parser) and the result is rebuilt into our
 * own small AST, allowing only numbers, column names, + - * / %, comparisons, && || ! ??, the
 * ternary `c ? a : b`, and calls of the functions in FUNCTIONS by name. Anything else — property
 * access, strings, arrays, `this`, calls of anything that is not an allow-listed name — is refused
 * when the pipeline is saved. Evaluation walks closures built from that AST: no eval, Function or
 * vm, and no object is ever indexed by user text.
 *
 * Values are numbers or null. null propagates (as in SQL); division or modulo by zero, and any
 * result that is not finite (log(0), sqrt(-1), overflow), is null, never an exception.
 */

export type Value = number | null;

export class FormulaError extends Error {}

export const MAX_FORMULA_LENGTH = 1000;
const MAX_DEPTH = 64;
const MAX_NODES = 500;

type BinaryOp = '+' | '-' | '*' | '/' | '%' | '==' | '!=' | '<' | '<=' | '>' | '>=' | '&&' | '||' | '??';
type UnaryOp = '-' | '+' | '!';

export type FormulaNode =
  | { kind: 'number'; value: Value }
  | { kind: 'column'; name: string }
  | { kind: 'unary'; op: UnaryOp; arg: FormulaNode }
  | { kind: 'binary'; op: BinaryOp; left: FormulaNode; right: FormulaNode }
  | { kind: 'conditional'; test: FormulaNode; then: FormulaNode; else: FormulaNode }
  | { kind: 'call'; fn: FunctionName; args: FormulaNode[] };

const fin = (x: number): Value => (Number.isFinite(x) ? x : null);

/** round(x, digits): half away from zero, as PostgreSQL's round(numeric). */
function round(x: number, digits: number): Value {
  if (!Number.isInteger(digits) || digits < 0 || digits > 15) return null;
  const f = 10 ** digits;
  return fin((Math.sign(x) * Math.round(Math.abs(x) * f)) / f);
}

interface FunctionDef {
  min: number;
  max: number;
  /** Receives the evaluated arguments; most functions are null when any argument is. */
  apply: (args: Value[]) => Value;
  /** For those (null in, null out): the function itself, so calls need no argument array. */
  strict?: (...xs: number[]) => number | null;
  doc: string;
}

function strict(f: (...xs: number[]) => number | null): Pick<FunctionDef, 'apply' | 'strict'> {
  return {
    strict: f,
    apply: (args) => (args.some((x) => x === null) ? null : nullIfInfinite(f(...(args as number[])))),
  };
}
const nullIfInfinite = (r: number | null): Value => (r === null ? null : fin(r));

export const FUNCTIONS = {
  abs: { min: 1, max: 1, ...strict(Math.abs), doc: 'abs(x)' },
  sign: { min: 1, max: 1, ...strict(Math.sign), doc: 'sign(x)' },
  round: { min: 1, max: 2, ...strict((x, d = 0) => round(x, d)), doc: 'round(x[, digits 0-15])' },
  floor: { min: 1, max: 1, ...strict(Math.floor), doc: 'floor(x)' },
  ceil: { min: 1, max: 1, ...strict(Math.ceil), doc: 'ceil(x)' },
  sqrt: { min: 1, max: 1, ...strict(Math.sqrt), doc: 'sqrt(x)' },
  exp: { min: 1, max: 1, ...strict(Math.exp), doc: 'exp(x)' },
  log: { min: 1, max: 1, ...strict(Math.log), doc: 'log(x) (natural)' },
  log10: { min: 1, max: 1, ...strict(Math.log10), doc: 'log10(x)' },
  log2: { min: 1, max: 1, ...strict(Math.log2), doc: 'log2(x)' },
  pow: { min: 2, max: 2, ...strict(Math.pow), doc: 'pow(x, y)' },
  min: { min: 1, max: 32, ...strict(Math.min), doc: 'min(x, ...)' },
  max: { min: 1, max: 32, ...strict(Math.max), doc: 'max(x, ...)' },
  clamp: {
    min: 3,
    max: 3,
    ...strict((x, lo, hi) => (lo > hi ? null : Math.min(Math.max(x, lo), hi))),
    doc: 'clamp(x, low, high)',
  },
  coalesce: {
    min: 1,
    max: 32,
    apply: (args) => args.find((x) => x !== null) ?? null,
    doc: 'coalesce(x, ...): the first that is not null',
  },
} satisfies Record<string, FunctionDef>;

export type FunctionName = keyof typeof FUNCTIONS;
const FUNCTION_TABLE: ReadonlyMap<string, FunctionDef> = new Map(Object.entries(FUNCTIONS));
export const FUNCTION_NAMES = [...FUNCTION_TABLE.keys()];

const BINARY: ReadonlySet<string> = new Set<BinaryOp>([
  '+',
  '-',
  '*',
  '/',
  '%',
  '==',
  '!=',
  '<',
  '<=',
  '>',
  '>=',
  '&&',
  '||',
  '??',
]);
const UNARY: ReadonlySet<string> = new Set<UnaryOp>(['-', '+', '!']);
const HINTS: Readonly<Record<string, string>> = {
  '^': 'use pow(x, y) for powers',
  '**': 'use pow(x, y) for powers',
  '===': 'use ==',
  '!==': 'use !=',
  '|': 'use || for "or"',
  '&': 'use && for "and"',
};

export interface ParsedFormula {
  text: string;
  ast: FormulaNode;
  /** Column names the formula reads, in order of first use. */
  columns: string[];
}

/** Parses and checks a formula; throws FormulaError with a message a user can act on. */
export function parseFormula(text: unknown): ParsedFormula {
  if (typeof text !== 'string' || text.trim() === '') throw new FormulaError('must be a non-empty string');
  if (text.length > MAX_FORMULA_LENGTH) throw new FormulaError(`is longer than ${MAX_FORMULA_LENGTH} characters`);
  let tree: jsep.Expression;
  try {
    tree = jsep(text);
  } catch (err) {
    const e = err as { description?: string; index?: number; message?: string };
    if (err instanceof RangeError) throw new FormulaError('is nested too deeply');
    throw new FormulaError(
      `does not parse: ${e.description ?? e.message}${e.index !== undefined ? ` at character ${e.index + 1}` : ''}`,
    );
  }
  const columns: string[] = [];
  let nodes = 0;
  const build = (n: jsep.Expression, depth: number): FormulaNode => {
    if (++nodes > MAX_NODES) throw new FormulaError(`has more than ${MAX_NODES} terms`);
    if (depth > MAX_DEPTH) throw new FormulaError(`is nested more than ${MAX_DEPTH} levels deep`);
    switch (n.type) {
      case 'Literal': {
        const v = (n as jsep.Literal).value;
        if (typeof v === 'number') return { kind: 'number', value: fin(v) };
        if (typeof v === 'boolean') return { kind: 'number', value: v ? 1 : 0 };
        if (v === null) return { kind: 'number', value: null };
        throw new FormulaError(`${(n as jsep.Literal).raw}: only numbers are allowed, not strings`);
      }
      case 'Identifier': {
        const name = (n as jsep.Identifier).name;
        if (!columns.includes(name)) columns.push(name);
        return { kind: 'column', name };
      }
      case 'UnaryExpression': {
        const u = n as jsep.UnaryExpression;
        if (!UNARY.has(u.operator)) throw new FormulaError(`operator ${u.operator} is not allowed`);
        return { kind: 'unary', op: u.operator as UnaryOp, arg: build(u.argument, depth + 1) };
      }
      case 'BinaryExpression': {
        const b = n as jsep.BinaryExpression;
        if (!BINARY.has(b.operator))
          throw new FormulaError(
            `operator ${b.operator} is not allowed${HINTS[b.operator] ? `: ${HINTS[b.operator]}` : ''}`,
          );
        return {
          kind: 'binary',
          op: b.operator as BinaryOp,
          left: build(b.left, depth + 1),
          right: build(b.right, depth + 1),
        };
      }
      case 'ConditionalExpression': {
        const c = n as jsep.ConditionalExpression;
        return {
          kind: 'conditional',
          test: build(c.test, depth + 1),
          then: build(c.consequent, depth + 1),
          else: build(c.alternate, depth + 1),
        };
      }
      case 'CallExpression': {
        const c = n as jsep.CallExpression;
        if (c.callee.type !== 'Identifier')
          throw new FormulaError('only the allow-listed functions may be called, by name');
        const name = (c.callee as jsep.Identifier).name;
        const def = FUNCTION_TABLE.get(name);
        if (!def) throw new FormulaError(`unknown function ${name}(); allowed: ${FUNCTION_NAMES.join(', ')}`);
        if (c.arguments.length < def.min || c.arguments.length > def.max) {
          throw new FormulaError(
            `${name}() takes ${def.min === def.max ? def.min : `${def.min} to ${def.max}`} argument(s): ${def.doc}`,
          );
        }
        return { kind: 'call', fn: name as FunctionName, args: c.arguments.map((a) => build(a, depth + 1)) };
      }
      case 'MemberExpression':
        throw new FormulaError('property access (a.b, a[b]) is not allowed');
      case 'ThisExpression':
        throw new FormulaError('this is not allowed');
      case 'ArrayExpression':
        throw new FormulaError('arrays are not allowed');
      case 'Compound':
      case 'SequenceExpression':
        throw new FormulaError('must be one expression');
      default:
        throw new FormulaError(`${n.type} is not allowed`);
    }
  };
  const ast = build(tree, 0);
  return { text, ast, columns };
}

export type Compiled = (row: ReadonlyArray<Value>) => Value;

/** True for a condition: not null and not zero (as SQL's CASE WHEN treats null as false). */
export const truthy = (v: Value) => v !== null && v !== 0;

/**
 * Turns a checked formula into a function of a row, given where each column sits in the row.
 * Throws FormulaError for a column that is not in `slots`.
 */
export function compileFormula(f: ParsedFormula, slots: ReadonlyMap<string, number>): Compiled {
  const compile = (n: FormulaNode): Compiled => {
    switch (n.kind) {
      case 'number': {
        const v = n.value;
        return () => v;
      }
      case 'column': {
        const i = slots.get(n.name);
        if (i === undefined) throw new FormulaError(`names column ${n.name}, which no earlier stage produces`);
        return (r) => r[i] ?? null;
      }
      case 'unary': {
        const a = compile(n.arg);
        if (n.op === '+') return a;
        if (n.op === '-')
          return (r) => {
            const x = a(r);
            return x === null ? null : -x;
          };
        return (r) => {
          const x = a(r);
          return x === null ? null : x === 0 ? 1 : 0;
        };
      }
      case 'binary':
        return binary(n.op, compile(n.left), compile(n.right));
      case 'conditional': {
        const t = compile(n.test),
          a = compile(n.then),
          b = compile(n.else);
        return (r) => (truthy(t(r)) ? a(r) : b(r));
      }
      case 'call': {
        const def = FUNCTION_TABLE.get(n.fn)!;
        const args = n.args.map(compile);
        const f = def.strict;
        // The usual arities without an argument array per row.
        if (f && args.length === 1) {
          const [a] = args;
          return (r) => {
            const x = a(r);
            return x === null ? null : nullIfInfinite(f(x));
          };
        }
        if (f && args.length === 2) {
          const [a, b] = args;
          return (r) => {
            const x = a(r);
            if (x === null) return null;
            const y = b(r);
            return y === null ? null : nullIfInfinite(f(x, y));
          };
        }
        return (r) => def.apply(args.map((a) => a(r)));
      }
    }
  };
  return compile(f.ast);
}

function binary(op: BinaryOp, a: Compiled, b: Compiled): Compiled {
  const num =
    (f: (x: number, y: number) => number | null): Compiled =>
    (r) => {
      const x = a(r);
      if (x === null) return null;
      const y = b(r);
      if (y === null) return null;
      const z = f(x, y);
      return z === null ? null : fin(z);
    };
  switch (op) {
    case '+':
      return num((x, y) => x + y);
    case '-':
      return num((x, y) => x - y);
    case '*':
      return num((x, y) => x * y);
    case '/':
      return num((x, y) => (y === 0 ? null : x / y));
    case '%':
      return num((x, y) => (y === 0 ? null : x % y));
    case '==':
      return num((x, y) => (x === y ? 1 : 0));
    case '!=':
      return num((x, y) => (x !== y ? 1 : 0));
    case '<':
      return num((x, y) => (x < y ? 1 : 0));
    case '<=':
      return num((x, y) => (x <= y ? 1 : 0));
    case '>':
      return num((x, y) => (x > y ? 1 : 0));
    case '>=':
      return num((x, y) => (x >= y ? 1 : 0));
    case '??':
      return (r) => a(r) ?? b(r);
    // Three-valued logic as in SQL: false wins over null in AND, true wins over null in OR.
    case '&&':
      return (r) => {
        const x = a(r);
        if (x === 0) return 0;
        const y = b(r);
        if (y === 0) return 0;
        return x === null || y === null ? null : 1;
      };
    case '||':
      return (r) => {
        const x = a(r);
        if (x !== null && x !== 0) return 1;
        const y = b(r);
        if (y !== null && y !== 0) return 1;
        return x === null || y === null ? null : 0;
      };
  }
}

/** Convenience for one-off evaluation (tests, previews): columns by name. */
export function evaluateFormula(text: string, columns: Readonly<Record<string, Value>> = {}): Value {
  const f = parseFormula(text);
  const names = Object.keys(columns);
  const compiled = compileFormula(f, new Map(names.map((n, i) => [n, i])));
  return compiled(names.map((n) => columns[n]));
}
