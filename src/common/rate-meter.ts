/** Counts events per second: the average over a sliding window of whole seconds, and the busiest second. */
export class RateMeter {
  private readonly buckets: Float64Array;
  private readonly stamps: Float64Array;
  private peakSeen = 0;
  private lastSec = -1;
  private lastCount = 0;
  total = 0;

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
    if (sec !== this.lastSec) {
      this.peakSeen = Math.max(this.peakSeen, this.lastCount);
      this.lastSec = sec;
      this.lastCount = 0;
    }
    this.lastCount += n;
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

  /** The most events counted in one completed second. */
  get peak(): number {
    const sec = Math.floor(this.now() / 1000);
    return Math.max(this.peakSeen, this.lastSec < sec ? this.lastCount : 0);
  }
}
