import { Module } from '@nestjs/common';
import { WebController } from './web.controller.js';
import { WebService } from './web.service.js';

/** The live page: a browser view of one metric with its anomalies and live points (web/). */
@Module({ controllers: [WebController], providers: [WebService] })
export class WebModule {}
