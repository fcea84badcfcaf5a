import type { Flavour } from '../database/database.js';

/**
 * What storage can do on each flavour, for code outside storage that must say so (the runtime
 * configuration document). Pure. Everything else that differs between the flavours stays behind
 * storage's services (RollupReader, StorageCatalog, the writer, the rollup refresh, the jobs).
 */

/** TimescaleDB compresses old chunks of points; plain PostgreSQL has no such thing. */
export const compressesChunks = (flavour: Flavour): boolean => flavour === 'timescaledb';
