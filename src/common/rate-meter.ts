/** Counts events per second over a sliding window of whole seconds; also remembers the peak. */
export class RateMeter {
  private readonly buckets: Float64Array;
  private readonly stamps: Float64Array;
  total = 0;
  peak = 0;

  constructor(
    private readonly windowSeconds = 10,
    private readonly now: () => number = Date.now,
  ) {
    this.buckets = new Float64Array(windowSeconds);
    this.stamps = new Float64Array(windowSeconds).fill(-1);
  }

  add(n: number): void {
    const sec = Math.floor(this.now() / 1000);
    const i = sec % this.windowSeconds;
    if (this.stamps[i] !== sec) {
      this.stamps[i] = sec;
      this.buckets[i] = 0;
    }
    this.buckets[i] += n;
    this.total += n;
    const r = this.rate();
    if (r > this.peak) this.peak = r;
  }

  /** Events per second over the last full window (the current second excluded). */
  rate(): number {
    const sec = Math.floor(this.now() / 1000);
    let sum = 0;
    for (let k = 1; k <= this.windowSeconds; k++) {
      const s = sec - k;
      const i = ((s % this.windowSeconds) + this.windowSeconds) % this.windowSeconds;
      if (this.stamps[i] === s) sum += this.buckets[i];
    }
    return sum / this.windowSeconds;
  }
}
