import WebSocket from 'ws';
import { waitFor } from './wait.js';

/** Real socket clients for the streaming tests: a WebSocket that records every message, and an SSE reader over fetch. */

export interface WsClient {
  ws: WebSocket;
  messages: any[];
  closed: Promise<{ code: number; reason: string }>;
  send(msg: unknown): void;
  /** Waits for the first message after `from` (an index into `messages`) that passes `pred`. */
  next(pred: (m: any) => boolean, from?: number, timeoutMs?: number): Promise<any>;
  close(): Promise<void>;
}

export async function wsClient(
  port: number,
  path = '/ws/metrics',
  headers: Record<string, string> = {},
): Promise<WsClient> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
  const messages: any[] = [];
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    messages,
    closed,
    send: (msg) => ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg)),
    next: (pred, from = 0, timeoutMs = 5_000) =>
      waitFor(() => messages.slice(from).find(pred), timeoutMs, 'a WebSocket message'),
    async close() {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
      await closed;
    },
  };
}

export interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  json?: any;
}

export interface SseClient {
  status: number;
  headers: Headers;
  events: SseEvent[];
  /** The body as text when the stream was refused (4xx/5xx). */
  body?: string;
  ended: Promise<void>;
  next(pred: (e: SseEvent) => boolean, from?: number, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
}

export async function sseClient(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  const events: SseEvent[] = [];
  const client: SseClient = {
    status: res.status,
    headers: res.headers,
    events,
    ended: Promise.resolve(),
    next: (pred, from = 0, timeoutMs = 5_000) =>
      waitFor(() => events.slice(from).find(pred), timeoutMs, 'an SSE event'),
    close: () => abort.abort(),
  };
  if (res.status !== 200) {
    client.body = await res.text();
    return client;
  }
  client.ended = (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const e: SseEvent = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const c = line.indexOf(':');
            const field = c < 0 ? line : line.slice(0, c);
            const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (field === 'data') e.data = e.data === undefined ? value : `${e.data}\n${value}`;
            else if (field === 'id' || field === 'event') e[field] = value;
          }
          if (e.data !== undefined) {
            try {
              e.json = JSON.parse(e.data);
            } catch {
              /* not JSON */
            }
            events.push(e);
          }
        }
      }
    } catch {
      /* aborted */
    }
  })();
  return client;
}
