import { Logger } from '@nestjs/common';
import { OnGatewayConnection, WebSocketGateway } from '@nestjs/websockets';
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import { AppConfig } from '../config/config.js';
import { StreamHub } from './stream-hub.js';
import { WS_MAX_MESSAGE_BYTES, WsSession } from './ws-session.js';

/** WebSocket /ws/metrics on the HTTP port (WsAdapter, set up in app.factory.ts). */
@WebSocketGateway({ path: '/ws/metrics', maxPayload: WS_MAX_MESSAGE_BYTES, perMessageDeflate: false })
export class MetricsGateway implements OnGatewayConnection {
  private readonly logger = new Logger('ws');

  constructor(
    private readonly hub: StreamHub,
    private readonly config: AppConfig,
  ) {}

  handleConnection(socket: WebSocket, req: IncomingMessage): void {
    try {
      new WsSession(socket, req, this.hub, this.config);
    } catch (err) {
      // Over STREAM_MAX_CONNECTIONS or shutting down: 1013 "Try Again Later".
      this.logger.debug(`refused a WebSocket client: ${(err as Error).message}`);
      socket.close(1013, (err as Error).message.slice(0, 120));
    }
  }
}
