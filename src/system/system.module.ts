import { Global, Module } from '@nestjs/common';
import { HealthAliasController, HealthController } from './health.controller.js';
import { HealthService } from './health.service.js';

@Global()
@Module({
  controllers: [HealthController, HealthAliasController],
  providers: [HealthService],
  exports: [HealthService],
})
export class SystemModule {}
