import { OnGatewayConnection, WebSocketGateway } from '@nestjs/websockets';
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import { AppConfig } from '../config/config.js';
import { StreamHub } from './stream-hub.js';
import { WsClient } from './ws-client.js';
import { WS_MAX_MESSAGE_BYTES, WsSession } from './ws-session.js';

/** WebSocket /ws/metrics on the HTTP port (WsAdapter, set up in app.factory.ts). */
@WebSocketGateway({ path: '/ws/metrics', maxPayload: WS_MAX_MESSAGE_BYTES, perMessageDeflate: false })
export class MetricsGateway implements OnGatewayConnection {
  constructor(
    private readonly hub: StreamHub,
    private readonly config: AppConfig,
  ) {}

  handleConnection(socket: WebSocket, req: IncomingMessage): void {
    WsClient.openOrRefuse(socket, () => new WsSession(socket, req, this.hub, this.config));
  }
}
