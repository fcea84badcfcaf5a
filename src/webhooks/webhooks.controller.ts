import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { WebhookService } from './webhook.service.js';
import { Access } from '../auth/access.js';
import { Answer } from '../openapi/decorators.js';
import { WebhookDeliveries, WebhookDelivery } from '../openapi/schemas/control.js';

@ApiTags('webhooks')
@Controller('api/v1/webhooks/deliveries')
export class WebhooksController {
  constructor(private readonly webhooks: WebhookService) {}

  @Get()
  @Access('admin')
  @ApiOperation({ summary: 'Webhook deliveries, newest first, with every attempt' })
  @ApiQuery({ name: 'subject', required: false, description: 'e.g. alert:42 or pipeline:7' })
  @ApiQuery({ name: 'status', required: false, enum: ['pending', 'delivered', 'failed', 'refused'] })
  @ApiQuery({ name: 'limit', required: false })
  @Answer(200, WebhookDeliveries)
  async list(@Query() q: Record<string, unknown>) {
    const deliveries = await this.webhooks.list(q);
    return { deliveries, total: deliveries.length };
  }

  @Get(':id')
  @Access('admin')
  @ApiOperation({ summary: 'One webhook delivery' })
  @Answer(200, WebhookDelivery)
  get(@Param('id') id: string) {
    return this.webhooks.get(id);
  }
}
