/**
 * Server-Sent Events over fetch: EventSource cannot send an Authorization header, so the stream is
 * read from a fetch body and parsed here, as the HTML standard's "event stream interpretation" says.
 */

export interface SseMessage {
  /** `message` when the event named none. */
  event: string;
  data: string;
  /** The last event id at dispatch (carried over from earlier events when this one named none). */
  id: string | undefined;
}

/** Incremental parser: feed it decoded text in chunks of any size, get whole events back. */
export class SseParser {
  /**
   * The id of the last event completed (its blank line received), also of one without data: what
   * a reconnect sends as Last-Event-ID. An event cut short by a drop does not count.
   */
  lastEventId: string | undefined;
  private idBuffer: string | undefined;
  /** The last `retry:` the server sent, in ms. */
  retryMs: number | undefined;
  private pending = '';
  private pendingCr = false;
  private started = false;
  private data: string[] = [];
  private event = '';

  constructor(lastEventId?: string) {
    this.lastEventId = lastEventId;
    this.idBuffer = lastEventId;
  }

  /** A new connection: an event cut short by the drop is discarded; the last id and retry are kept. */
  reset(): void {
    this.pending = '';
    this.pendingCr = false;
    this.started = false;
    this.data = [];
    this.event = '';
    this.idBuffer = this.lastEventId;
  }

  push(text: string): SseMessage[] {
    const out: SseMessage[] = [];
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    // A CR ending the previous chunk was a line end; an LF opening this one belongs to it.
    if (this.pendingCr && text.startsWith('\n')) start = 1;
    this.pendingCr = false;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.pending + text.slice(start, i);
      this.pending = '';
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else this.pendingCr = true;
      }
      start = i + 1;
      this.line(line, out);
    }
    this.pending += text.slice(start);
    return out;
  }

  private line(line: string, out: SseMessage[]): void {
    if (line === '') {
      this.lastEventId = this.idBuffer;
      if (this.data.length > 0)
        out.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.lastEventId });
      this.data = [];
      this.event = '';
      return;
    }
    if (line.startsWith(':')) return; // a comment (the service's keep-alive)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        break;
      case 'event':
        this.event = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.idBuffer = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default: // unknown fields are ignored
    }
  }
}
