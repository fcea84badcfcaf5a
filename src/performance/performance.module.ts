import { Module } from '@nestjs/common';
import { PerformanceController } from './performance.controller.js';
import { PerformanceRepository } from './performance.repository.js';
import { PerformanceService } from './performance.service.js';

@Module({ controllers: [PerformanceController], providers: [PerformanceRepository, PerformanceService] })
export class PerformanceModule {}
