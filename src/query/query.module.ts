import { Module } from '@nestjs/common';
import { QueryController } from './query.controller.js';
import { QueryRepository } from './query.repository.js';
import { QueryService } from './query.service.js';

@Module({ controllers: [QueryController], providers: [QueryRepository, QueryService], exports: [QueryService] })
export class QueryModule {}
