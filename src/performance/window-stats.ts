/** Count and total of a measure (e.g. response times) over a sliding window of whole seconds. */
export class WindowStats {
  private readonly counts: Float64Array;
  private readonly sums: Float64Array;
  private readonly stamps: Float64Array;

  constructor(
    private readonly windowSeconds = 60,
    private readonly now: () => number = Date.now,
  ) {
    this.counts = new Float64Array(windowSeconds);
    this.sums = new Float64Array(windowSeconds);
    this.stamps = new Float64Array(windowSeconds).fill(-1);
  }

  add(value: number): void {
    const sec = Math.floor(this.now() / 1000);
    const i = sec % this.windowSeconds;
    if (this.stamps[i] !== sec) {
      this.stamps[i] = sec;
      this.counts[i] = 0;
      this.sums[i] = 0;
    }
    this.counts[i]++;
    this.sums[i] += value;
  }

  /** Events and their total over the last `windowSeconds` seconds, the current one included. */
  totals(): { count: number; sum: number } {
    const sec = Math.floor(this.now() / 1000);
    let count = 0,
      sum = 0;
    for (let k = 0; k < this.windowSeconds; k++) {
      const s = sec - k;
      const i = ((s % this.windowSeconds) + this.windowSeconds) % this.windowSeconds;
      if (this.stamps[i] === s) {
        count += this.counts[i];
        sum += this.sums[i];
      }
    }
    return { count, sum };
  }
}
