import { Global, Module } from '@nestjs/common';
import { ApiKeysRepository } from './api-keys.repository.js';
import { ApiKeysService } from './api-keys.service.js';
import { AuthController } from './auth.controller.js';
import { FrontDoor } from './front-door.js';

/** The front door: API keys, scopes, rate limits (installed on fastify in app.factory.ts). */
@Global()
@Module({
  controllers: [AuthController],
  providers: [ApiKeysRepository, ApiKeysService, FrontDoor],
  exports: [FrontDoor, ApiKeysService],
})
export class AuthModule {}
