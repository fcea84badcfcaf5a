import { Global, Module } from '@nestjs/common';
import { PartitionService } from './partitions.js';
import { PointWriter } from './point-writer.js';
import { RollupService } from './rollups.js';
import { SeriesResolver } from './series-resolver.js';
import { SeriesRepository } from './series.repository.js';
import { StorageJobs } from './storage.jobs.js';

/** Series cache, the one point writer, partitions and rollups. Global: every producer writes through it. */
@Global()
@Module({
  providers: [SeriesRepository, SeriesResolver, PartitionService, PointWriter, RollupService, StorageJobs],
  exports: [PointWriter, SeriesResolver, PartitionService, RollupService],
})
export class StorageModule {}
