// pino options: JSON lines; credentials redacted wherever a header could end up in a log object.
import type { LoggerOptions } from 'pino'
import type { Config } from './config.ts'

const SECRET_HEADERS = ['authorization', 'x-api-key', 'x-identity-header', 'cookie', 'api-key']

export function loggerOptions (config: Pick<Config, 'logLevel'>): LoggerOptions {
  return {
    level: config.logLevel,
    redact: {
      paths: SECRET_HEADERS.flatMap(h => [`req.headers["${h}"]`, `headers["${h}"]`]),
      censor: '[redacted]'
    }
  }
}
