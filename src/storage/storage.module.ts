import { Global, Module } from '@nestjs/common';
import { PartitionService } from './partitions.js';
import { PointWriter } from './point-writer.js';
import { RollupReader } from './rollup-reader.js';
import { RollupService } from './rollups.js';
import { SeriesResolver } from './series-resolver.js';
import { StorageCatalog } from './storage-catalog.js';
import { SeriesRepository } from './series.repository.js';
import { StorageJobs } from './storage.jobs.js';

/** Series cache, the one point writer, partitions, rollups and the one read path over them. Global: every producer writes through it. */
@Global()
@Module({
  providers: [
    SeriesRepository,
    SeriesResolver,
    PartitionService,
    PointWriter,
    RollupService,
    RollupReader,
    StorageCatalog,
    StorageJobs,
  ],
  exports: [PointWriter, SeriesResolver, PartitionService, RollupService, RollupReader, StorageCatalog],
})
export class StorageModule {}
