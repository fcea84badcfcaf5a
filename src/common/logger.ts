import { ConsoleLogger, LogLevel } from '@nestjs/common';
import type { AppConfig } from '../config/config.js';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/**
 * The process's logger, from LOG_LEVEL and LOG_FORMAT. In a module of its own so that the
 * command-line tools (`make migrate`, `make key`) and main.ts's first steps take it without
 * loading the whole application.
 */
export function createLogger(config: AppConfig): ConsoleLogger {
  const upTo = LEVELS.indexOf(config.log.level);
  return new ConsoleLogger({
    json: config.log.format === 'json',
    logLevels: LEVELS.slice(0, upTo + 1),
    colors: config.log.format === 'text' && process.stdout.isTTY,
  });
}
