import { isCleanText, Json, Problems } from './common.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const FIELDS = ['name', 'description', 'enabled', 'pipeline', 'output', 'schedule'];
/** Fields of a pipeline as GET returns it that a PUT of that same document may carry back; ignored. */
const READ_ONLY = new Set([
  'id',
  'version',
  'created_at',
  'updated_at',
  'columns',
  'last_run',
  'state',
  'webhook_secret',
  'webhook_signed',
]);

/** The definition's own fields: no unknown ones, `name` (required), `description`, `enabled` (default true). */
export function parseHeader(
  body: Json,
  problems: Problems,
): { name: string; description: string | null; enabled: boolean } {
  for (const k of Object.keys(body)) {
    if (!FIELDS.includes(k) && !READ_ONLY.has(k))
      problems.add(k, 'unknown field (expected name, description, enabled, pipeline, output, schedule)');
  }
  const name = typeof body.name === 'string' ? body.name : '';
  if (!NAME.test(name))
    problems.add('name', 'is required: 1 to 100 letters, digits, _ . - starting with a letter or digit');
  let description: string | null = null;
  if (body.description !== undefined && body.description !== null) {
    if (typeof body.description !== 'string' || body.description.length > 1000 || !isCleanText(body.description))
      problems.add('description', 'must be text of at most 1000 characters');
    else description = body.description;
  }
  let enabled = true;
  if (body.enabled !== undefined) {
    if (typeof body.enabled !== 'boolean') problems.add('enabled', 'must be true or false');
    else enabled = body.enabled;
  }
  return { name, description, enabled };
}
