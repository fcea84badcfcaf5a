import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { ApiError, notFound } from '../common/errors.js';
import type { PipelinePlan } from './definition.js';
import { PipelineDefinitions } from './pipeline-definitions.js';
import { PipelineRunner } from './pipeline-runner.service.js';
import { PipelineRow, PipelinesRepository, RunRow } from './pipelines.repository.js';
import { pipelineView } from './views.js';

/**
 * Saved pipelines: create, replace, delete, list and get. A definition is validated at save
 * (nothing is stored unless all of it is well); a webhook output gets a signing secret, shown once.
 * Running them is PipelineRunner's.
 */
@Injectable()
export class PipelinesService {
  constructor(
    private readonly repo: PipelinesRepository,
    private readonly definitions: PipelineDefinitions,
    private readonly runner: PipelineRunner,
  ) {}

  async create(body: unknown) {
    const parsed = await this.definitions.check(body);
    const secret =
      parsed.definition.output.destination !== 'webhook'
        ? null
        : parsed.secret === undefined
          ? newSecret()
          : parsed.secret;
    let row: PipelineRow | undefined;
    try {
      row = await this.repo.insert(parsed.definition, secret);
    } catch (err) {
      throw uniqueName(err, parsed.definition.name);
    }
    if (!row) throw nameConflict(parsed.definition.name);
    this.runner.wake();
    const view = this.view(row, parsed.plan);
    // A secret Timescope made is shown once, here; afterwards only that deliveries are signed.
    return parsed.secret === undefined && secret ? { ...view, webhook_secret: secret } : view;
  }

  /** PUT: replaces the definition (validated as on creation); the schedule state stays. */
  async update(id: string, body: unknown) {
    const existing = await this.definitions.find(id);
    const parsed = await this.definitions.check(body);
    const wasWebhook = existing.definition.output.destination === 'webhook';
    const generated = parsed.definition.output.destination === 'webhook' && parsed.secret === undefined && !wasWebhook;
    const secret =
      parsed.definition.output.destination !== 'webhook'
        ? null
        : parsed.secret !== undefined
          ? parsed.secret
          : wasWebhook
            ? existing.webhook_secret
            : newSecret();
    if (await this.repo.nameTaken(parsed.definition.name, existing.id)) throw nameConflict(parsed.definition.name);
    let row: PipelineRow | undefined;
    try {
      row = await this.repo.update(existing.id, parsed.definition, secret);
    } catch (err) {
      throw uniqueName(err, parsed.definition.name);
    }
    if (!row) throw notFound(`No pipeline ${id}`);
    this.runner.wake();
    const view = this.view(row, parsed.plan);
    return generated ? { ...view, webhook_secret: secret } : view;
  }

  async get(id: string) {
    const row = await this.definitions.find(id);
    return this.view(row, this.definitions.planOrNull(row), (await this.repo.lastRuns([row.id])).get(row.id));
  }

  async list() {
    const rows = await this.repo.list();
    const last = await this.repo.lastRuns(rows.map((r) => r.id));
    const pipelines = rows.map((r) => this.view(r, this.definitions.planOrNull(r), last.get(r.id)));
    return { pipelines, total: pipelines.length };
  }

  async remove(id: string): Promise<void> {
    const row = await this.definitions.find(id);
    await this.repo.delete(row.id);
    this.definitions.forget(row.id);
  }

  private view(row: PipelineRow, plan: PipelinePlan | null, last?: RunRow) {
    return pipelineView(row, plan, this.runner.nextWindowEnd(row, plan), last);
  }
}

const newSecret = () => `whsec_${randomBytes(24).toString('base64url')}`;

const nameConflict = (name: string) =>
  new ApiError(409, 'CONFLICT', `A pipeline named ${name} already exists`, { field: 'name', name });

/** A unique violation that slipped past the check (two saves of one name at once) is the same 409. */
function uniqueName(err: unknown, name: string): unknown {
  return (err as { code?: string }).code === '23505' ? nameConflict(name) : err;
}
