import { Module } from '@nestjs/common';
import { ReaderService } from './reader.service.js';

/** The SQL reader role (Grafana): its grants on the timescope_read views and the statement watchdog. */
@Module({ providers: [ReaderService], exports: [ReaderService] })
export class ReaderModule {}
