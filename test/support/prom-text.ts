/**
 * A strict reader of the Prometheus text exposition format 0.0.4, for tests: every line must be a
 * HELP, a TYPE, another comment, blank, or a valid sample; a family's TYPE comes before its
 * samples, which form one group; no sample twice; counters are finite and never negative;
 * histograms have increasing `le`, non-decreasing cumulative counts, a `+Inf` bucket equal to
 * `_count`, and a `_sum`. Throws naming the line on the first violation.
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string | undefined;
  samples: PromSample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** A sample value as Go's ParseFloat reads it (what Prometheus accepts). */
function parseValue(text: string, where: string): number {
  if (/^[+-]?Inf$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (/^NaN$/i.test(text)) return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text))
    throw new Error(`${where}: ${JSON.stringify(text)} is not a number`);
  return Number(text);
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new Error(`${where}: bad escape \\${c} in HELP`);
  });
}

/** Parses `name{a="x",b="y"} value [timestamp]`. */
function parseSample(line: string, where: string): PromSample {
  let i = 0;
  while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i])) i++;
  const name = line.slice(0, i);
  if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name ${JSON.stringify(name)}`);
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      if (line[i] === '}') {
        i++;
        break;
      }
      const start = i;
      while (i < line.length && /[a-zA-Z0-9_]/.test(line[i])) i++;
      const label = line.slice(start, i);
      if (!LABEL_NAME.test(label) || label.startsWith('__'))
        throw new Error(`${where}: bad label name ${JSON.stringify(label)}`);
      if (label in labels) throw new Error(`${where}: label ${label} twice`);
      if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`${where}: expected ="…" after label ${label}`);
      i += 2;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new Error(`${where}: unterminated label value`);
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          const e = line[i + 1];
          if (e === '\\') value += '\\';
          else if (e === '"') value += '"';
          else if (e === 'n') value += '\n';
          else throw new Error(`${where}: bad escape \\${e} in a label value`);
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      labels[label] = value;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`${where}: expected , or } after a label value`);
    }
  }
  if (line[i] !== ' ') throw new Error(`${where}: expected a space before the value`);
  const rest = line.slice(i + 1).split(' ');
  if (rest.length < 1 || rest.length > 2 || rest.some((r) => r === ''))
    throw new Error(`${where}: expected "value [timestamp]", got ${JSON.stringify(line.slice(i + 1))}`);
  const value = parseValue(rest[0], where);
  if (rest[1] !== undefined && !/^-?\d+$/.test(rest[1])) throw new Error(`${where}: bad timestamp ${rest[1]}`);
  return { name, labels, value };
}

/** The family a sample belongs to, given the declared types. */
function familyOf(name: string, types: Map<string, string>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const t = types.get(base);
      if (t === 'histogram' || (t === 'summary' && suffix !== '_bucket')) return base;
    }
  }
  return name;
}

const labelKey = (labels: Record<string, string>, without?: string) =>
  JSON.stringify(
    Object.keys(labels)
      .filter((k) => k !== without)
      .sort()
      .map((k) => [k, labels[k]]),
  );

export function parseExposition(text: string): Map<string, PromFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, PromFamily>();
  const types = new Map<string, string>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  let current: string | undefined;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line.trim() === '') return;
    const family = (name: string) => {
      let f = families.get(name);
      if (!f) families.set(name, (f = { name, type: 'untyped', help: undefined, samples: [] }));
      return f;
    };
    if (line.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) return; // another comment
      const [, kind, name, rest = ''] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name ${name} in ${kind}`);
      if (closed.has(name) || (families.get(name)?.samples.length ?? 0) > 0)
        throw new Error(`${where}: ${kind} of ${name} after its samples`);
      if (kind === 'HELP') {
        if (family(name).help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        family(name).help = unescapeHelp(rest, where);
      } else {
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${JSON.stringify(rest)} for ${name}`);
        if (types.has(name)) throw new Error(`${where}: second TYPE for ${name}`);
        types.set(name, rest);
        family(name).type = rest as PromFamily['type'];
      }
      return;
    }
    const sample = parseSample(line, where);
    const name = familyOf(sample.name, types);
    if (current !== name) {
      if (current !== undefined) closed.add(current);
      if (closed.has(name)) throw new Error(`${where}: samples of ${name} are not in one group`);
      current = name;
    }
    const key = `${sample.name}${labelKey(sample.labels)}`;
    if (seen.has(key)) throw new Error(`${where}: sample ${key} twice`);
    seen.add(key);
    const f = family(name);
    if (f.type === 'counter' && !(sample.value >= 0 && Number.isFinite(sample.value)))
      throw new Error(`${where}: counter ${sample.name} is ${sample.value}`);
    if (f.type === 'histogram' && sample.name === `${name}_bucket` && sample.labels.le === undefined)
      throw new Error(`${where}: bucket without le`);
    f.samples.push(sample);
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: PromFamily): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  const group = (labels: Record<string, string>) => {
    const k = labelKey(labels, 'le');
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { buckets: [] }));
    return g;
  };
  for (const s of f.samples) {
    if (s.name === `${f.name}_bucket`) group(s.labels).buckets.push([parseValue(s.labels.le, `${f.name} le`), s.value]);
    else if (s.name === `${f.name}_count`) group(s.labels).count = s.value;
    else if (s.name === `${f.name}_sum`) group(s.labels).sum = s.value;
  }
  for (const [k, g] of groups) {
    const where = `histogram ${f.name}${k}`;
    if (g.count === undefined || g.sum === undefined) throw new Error(`${where}: _count or _sum missing`);
    const last = g.buckets[g.buckets.length - 1];
    if (!last || last[0] !== Infinity) throw new Error(`${where}: no +Inf bucket last`);
    if (last[1] !== g.count) throw new Error(`${where}: +Inf bucket ${last[1]} is not _count ${g.count}`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i][0] > g.buckets[i - 1][0])) throw new Error(`${where}: le not increasing`);
      if (g.buckets[i][1] < g.buckets[i - 1][1]) throw new Error(`${where}: cumulative counts decrease`);
    }
  }
}

/** The value of one sample (labels must match exactly those given, others ignored), or undefined. */
export function sampleValue(
  families: Map<string, PromFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

/** Sum of every sample of `name` whose labels include `labels`. */
export function sampleSum(
  families: Map<string, PromFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  let n = 0;
  for (const f of families.values())
    for (const s of f.samples)
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) n += s.value;
  return n;
}
