import { Injectable } from '@nestjs/common';
import { notFound } from '../common/errors.js';
import { AppConfig } from '../config/config.js';
import { WebhookService } from '../webhooks/webhook.service.js';
import type { DefinitionLimits, ParsedPipeline, PipelinePlan } from './definition.js';
import { parsePipeline } from './parse-pipeline.js';
import { PipelineRow, PipelinesRepository } from './pipelines.repository.js';

/**
 * What the CRUD service and the runner share about definitions: checking one (parsing, and the
 * SSRF check of a webhook URL), finding a saved one by its id, and its plan, parsed once per version.
 */
@Injectable()
export class PipelineDefinitions {
  readonly limits: DefinitionLimits;
  private readonly plans = new Map<number, { version: number; plan: PipelinePlan }>();

  constructor(
    private readonly repo: PipelinesRepository,
    private readonly webhooks: WebhookService,
    config: AppConfig,
  ) {
    const i = config.ingest;
    this.limits = {
      maxNameLength: i.maxNameLength,
      maxTags: i.maxTags,
      maxTagKeyLength: i.maxTagKeyLength,
      maxTagValueLength: i.maxTagValueLength,
    };
  }

  /** Parses a definition; a webhook URL must also pass the SSRF guard (400 naming output.url). */
  async check(body: unknown): Promise<ParsedPipeline> {
    const parsed = parsePipeline(body, this.limits);
    const out = parsed.definition.output;
    if (out.destination === 'webhook') out.url = await this.webhooks.assertSafeUrl(out.url, 'output.url');
    return parsed;
  }

  /** The saved pipeline with this id (digits only), or a 404. */
  async find(id: string): Promise<PipelineRow> {
    const row = /^\d{1,15}$/.test(id) ? await this.repo.get(Number(id)) : undefined;
    if (!row) throw notFound(`No pipeline ${id}`, { pipeline_id: id });
    return row;
  }

  /** The plan of a stored definition, parsed once per version. */
  planOf(row: PipelineRow): PipelinePlan {
    const cached = this.plans.get(Number(row.id));
    if (cached && cached.version === row.version) return cached.plan;
    const plan = parsePipeline(row.definition, this.limits).plan;
    this.plans.set(Number(row.id), { version: row.version, plan });
    return plan;
  }

  /** The plan, or null when the stored definition no longer validates (a newer release is stricter). */
  planOrNull(row: PipelineRow): PipelinePlan | null {
    try {
      return this.planOf(row);
    } catch {
      return null;
    }
  }

  forget(id: number): void {
    this.plans.delete(id);
  }
}
