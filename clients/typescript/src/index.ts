export { TimescopeClient, time } from './client.js';
export type { CallOptions, ClientOptions } from './client.js';
export {
  TimescopeApiError,
  TimescopeConnectionError,
  TimescopeError,
  TimescopeValidationError,
  TimescopeWriteError,
} from './errors.js';
export type { ErrorBody } from './errors.js';
export type { FetchLike, RetryEvent } from './http.js';
export { backoffDelay, DEFAULT_RETRY, parseRetryAfter, reconnectDelay, retryDelay } from './retry.js';
export type { RetryOptions } from './retry.js';
export { SseParser } from './sse.js';
export type { SseMessage } from './sse.js';
export { MetricStream } from './stream.js';
export { encodeBatch, PointWriter } from './writer.js';
export type { BatchSender, WriterOptions, WriterStats } from './writer.js';
export type * from './types.js';
