import { Global, Module } from '@nestjs/common';
import { JobsController } from './jobs.controller.js';
import { JobsService } from './jobs.service.js';

@Global()
@Module({ providers: [JobsService], controllers: [JobsController], exports: [JobsService] })
export class JobsModule {}
