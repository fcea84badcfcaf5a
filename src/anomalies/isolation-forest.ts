import { prng } from './robust.js';

/**
 * Isolation forest (Liu, Ting & Zhou, "Isolation Forest", ICDM 2008), over a row-major feature
 * matrix in a Float64Array. Each tree is grown on a subsample of psi points drawn without
 * replacement, splitting on a random feature at a random value between the node's min and max,
 * up to the height limit ceil(log2 psi). A point's path length is the depth of the leaf it falls
 * in plus c(size) for the points that leaf did not isolate; its score is 2^(-E(h) / c(psi)):
 * near 1 isolated early (anomalous), near 0.5 or below ordinary.
 */

/** Average path length of an unsuccessful search in a binary search tree of n points: c(n). */
export function averagePathLength(n: number): number {
  if (n <= 1) return 0;
  if (n === 2) return 1;
  const harmonic = Math.log(n - 1) + 0.5772156649015329; // H(n-1) ≈ ln(n-1) + Euler's constant
  return 2 * harmonic - (2 * (n - 1)) / n;
}

export interface ForestOptions {
  trees: number;
  /** psi: points per tree (capped at the number of points). */
  subsample: number;
  seed: number;
}

interface Tree {
  /** Per node, two ints: split feature (-1 for a leaf) and the left child (the right one follows it). */
  links: Int32Array;
  /** Per node: split value (internal) or depth + c(size) already summed (leaf). */
  value: Float64Array;
}

export class IsolationForest {
  private readonly trees: Tree[] = [];
  readonly psi: number;
  readonly heightLimit: number;

  private constructor(
    psi: number,
    private readonly dims: number,
  ) {
    this.psi = psi;
    this.heightLimit = Math.ceil(Math.log2(Math.max(2, psi)));
  }

  /** Grows the forest on `data` (n rows of `dims` features, row-major). */
  static fit(data: Float64Array, dims: number, opts: ForestOptions): IsolationForest {
    const n = data.length / dims;
    const psi = Math.max(2, Math.min(opts.subsample, n));
    const forest = new IsolationForest(psi, dims);
    const rnd = prng(opts.seed);
    const indices = new Int32Array(n);
    for (let i = 0; i < n; i++) indices[i] = i;
    const sample = new Int32Array(psi);
    for (let t = 0; t < opts.trees; t++) {
      // Partial Fisher-Yates: psi distinct rows.
      for (let i = 0; i < psi; i++) {
        const j = i + Math.floor(rnd() * (n - i));
        const tmp = indices[i];
        indices[i] = indices[j];
        indices[j] = tmp;
        sample[i] = indices[i];
      }
      forest.trees.push(forest.grow(data, sample, rnd));
    }
    return forest;
  }

  private grow(data: Float64Array, rows: Int32Array, rnd: () => number): Tree {
    const maxNodes = 2 * rows.length;
    const links = new Int32Array(2 * maxNodes);
    for (let q = 0; q < maxNodes; q++) links[2 * q] = -1;
    const value = new Float64Array(maxNodes);
    const d = this.dims;
    let next = 0;
    // Iterative: (node, from, to, depth) over a scratch copy of the rows, partitioned in place.
    const work = Int32Array.from(rows);
    const stack: number[] = [next++, 0, work.length, 0];
    while (stack.length) {
      const depth = stack.pop()!,
        to = stack.pop()!,
        from = stack.pop()!,
        node = stack.pop()!;
      const size = to - from;
      if (depth >= this.heightLimit || size <= 1) {
        value[node] = depth + averagePathLength(size);
        continue;
      }
      // A random feature that still varies in this node (Liu et al. pick among all; a constant one cannot split).
      let f = -1,
        lo = 0,
        hi = 0;
      const start = Math.floor(rnd() * d);
      for (let a = 0; a < d && f < 0; a++) {
        const q = (start + a) % d;
        lo = Infinity;
        hi = -Infinity;
        for (let r = from; r < to; r++) {
          const x = data[work[r] * d + q];
          if (x < lo) lo = x;
          if (x > hi) hi = x;
        }
        if (hi > lo) f = q;
      }
      if (f < 0) {
        value[node] = depth + averagePathLength(size);
        continue;
      }
      const split = lo + rnd() * (hi - lo);
      let i = from,
        j = to - 1;
      while (i <= j) {
        if (data[work[i] * d + f] < split) i++;
        else {
          const tmp = work[i];
          work[i] = work[j];
          work[j] = tmp;
          j--;
        }
      }
      const l = next++,
        r = next++;
      links[2 * node] = f;
      links[2 * node + 1] = l;
      value[node] = split;
      stack.push(l, from, i, depth + 1, r, i, to, depth + 1);
    }
    return { links: links.slice(0, 2 * next), value: value.slice(0, next) };
  }

  /**
   * Anomaly score s(x, psi) = 2^(-E(h(x)) / c(psi)) of every row of `data`, or only of the given
   * rows (the others are left 0): a caller that needs the score of a few candidates skips the rest.
   */
  score(data: Float64Array, rows?: Int32Array): Float64Array {
    const d = this.dims;
    const n = data.length / d;
    const m = rows ? rows.length : n;
    const sum = new Float64Array(m);
    for (const tree of this.trees) {
      const { links, value } = tree;
      for (let k = 0; k < m; k++) {
        const base = (rows ? rows[k] : k) * d;
        let node = 0;
        let f = links[0];
        while (f >= 0) {
          node = links[2 * node + 1] + (data[base + f] < value[node] ? 0 : 1);
          f = links[2 * node];
        }
        sum[k] += value[node];
      }
    }
    const c = averagePathLength(this.psi);
    const t = this.trees.length;
    const out = new Float64Array(n);
    for (let k = 0; k < m; k++) out[rows ? rows[k] : k] = Math.pow(2, -sum[k] / t / c);
    return out;
  }
}
