import { Global, Module } from '@nestjs/common';
import { WebhookRepository } from './webhook.repository.js';
import { WebhookService } from './webhook.service.js';
import { WebhooksController } from './webhooks.controller.js';

/** Signed, retried, SSRF-guarded outgoing webhooks, shared by alerts and pipelines. */
@Global()
@Module({
  providers: [WebhookRepository, WebhookService],
  controllers: [WebhooksController],
  exports: [WebhookService],
})
export class WebhooksModule {}
