import { OnGatewayConnection, WebSocketGateway } from '@nestjs/websockets';
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import { toIso } from '../common/time.js';
import { StreamHub } from '../streaming/stream-hub.js';
import { WsClient } from '../streaming/ws-client.js';
import { WS_MAX_MESSAGE_BYTES } from '../streaming/ws-session.js';
import { CollectorService } from './collector.service.js';
import type { GpuSample, HostSample } from './samples.js';

export const MONITORING_WS_PATH = '/api/v1/monitoring/ws/metrics';

/**
 * monitoring-api.md "Real-time Metrics Stream" (`/ws/metrics` under its base /api/v1/monitoring):
 * the host's figures as the collector samples them (every live interval), one flat message each,
 * `{"type": "metric_update", "metric": "cpu_usage", "value": 45.2, "timestamp": "…"}`. Pure.
 */
export function monitoringUpdates(host: HostSample, gpu: GpuSample | undefined): string[] {
  const timestamp = toIso(host.time);
  const root = host.filesystems.find((f) => f.mount === '/') ?? host.filesystems[0];
  const gpus = (gpu?.gpus ?? []).map((g) => g.utilization).filter((v): v is number => v !== null);
  const figures: Array<[string, number | null | undefined]> = [
    ['cpu_usage', host.cpu.usage],
    ['memory_usage', host.memory.percent],
    ['disk_usage', root?.percent],
    ['load_average', host.cpu.loadAverage[0]],
    ['network_bytes_sent_per_sec', sumOrNull(host.network.map((n) => n.bytesSentPerSec))],
    ['network_bytes_received_per_sec', sumOrNull(host.network.map((n) => n.bytesReceivedPerSec))],
    ['gpu_usage', gpus.length ? gpus.reduce((a, b) => a + b, 0) / gpus.length : null],
  ];
  return figures
    .filter((f): f is [string, number] => typeof f[1] === 'number' && Number.isFinite(f[1]))
    .map(([metric, value]) => JSON.stringify({ type: 'metric_update', metric, value, timestamp }));
}

function sumOrNull(xs: Array<number | null>): number | null {
  const known = xs.filter((x): x is number => x !== null);
  return known.length ? known.reduce((a, b) => a + b, 0) : null;
}

/** One client of the monitoring stream: sent every sample, the latest one first; its messages are ignored. */
class MonitoringClient extends WsClient {
  accept(): void {} // never subscribed to committed points

  protected onMessage(): void {}

  send(messages: readonly string[]): void {
    const now = Date.now();
    for (const m of messages) if (!this.connection.deliver(m, now)) return;
  }
}

/** WebSocket /api/v1/monitoring/ws/metrics on the HTTP port, behind the front door like /ws/metrics (read). */
@WebSocketGateway({ path: MONITORING_WS_PATH, maxPayload: WS_MAX_MESSAGE_BYTES, perMessageDeflate: false })
export class MonitoringGateway implements OnGatewayConnection {
  private readonly clients = new Set<MonitoringClient>();
  private unsubscribe?: () => void;

  constructor(
    private readonly hub: StreamHub,
    private readonly collector: CollectorService,
  ) {}

  handleConnection(socket: WebSocket, req: IncomingMessage): void {
    const client = WsClient.openOrRefuse(socket, () => new MonitoringClient(socket, req, this.hub));
    if (!client) return;
    this.clients.add(client);
    socket.once('close', () => {
      this.clients.delete(client);
      if (this.clients.size === 0) this.stop();
    });
    this.unsubscribe ??= this.collector.collector.onSample((host, gpu) => this.broadcast(monitoringUpdates(host, gpu)));
    const host = this.collector.collector.latestHost;
    if (host && this.collector.enabled) client.send(monitoringUpdates(host, this.collector.collector.latestGpu));
  }

  private broadcast(messages: readonly string[]): void {
    for (const c of this.clients) if (!c.connection.closed) c.send(messages);
  }

  private stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}
