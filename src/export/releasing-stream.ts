import { Readable } from 'node:stream';

/**
 * The bytes of `open(signal)` as a stream that calls `done` exactly once, however the stream ends:
 * read to the end, failed (a database error), or destroyed because the client went away — even
 * before it read anything, when the generator never started and so never runs its own `finally`.
 * Destroying it aborts `signal` at once, so a read waiting on the database stops instead of
 * holding on till the next row. `done` always follows the generator's clean-up (its connection
 * given back): Readable.from awaits that before it emits 'close'.
 */
export function releasingStream(open: (signal: AbortSignal) => AsyncGenerator<Buffer>, done: () => void): Readable {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    done();
  };
  const abort = new AbortController();
  const source = open(abort.signal);
  async function* guarded() {
    try {
      yield* source;
    } finally {
      release(); // before the end of the body reaches the client, so its next request finds the slot free
    }
  }
  const body = Readable.from(guarded(), { objectMode: false });
  const destroy = body._destroy.bind(body);
  body._destroy = (err, cb) => {
    abort.abort();
    destroy(err, cb);
  };
  body.once('close', release); // a generator destroyed before it started never runs its finally
  return body;
}
