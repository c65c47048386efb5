// Which Azure OpenAI API versions the service can use: structured outputs (json_schema) are required.
import { ConfigError } from '../config-support.ts'

export const API_VERSION_PATTERN = '^(v1|\\d{4}-\\d{2}-\\d{2}(-preview)?)$'

/** The first dated API version with structured outputs (`response_format` of type `json_schema`) that is GA; `v1` has them too. */
export const MIN_DATED_API_VERSION = '2024-10-21'

/** Dated versions compare as strings: YYYY-MM-DD, a `-preview` suffix after the date. */
export function checkApiVersion (name: string, apiVersion: string): void {
  if (!new RegExp(API_VERSION_PATTERN).test(apiVersion)) {
    throw new ConfigError(`invalid configuration: ${name} must be v1 or a dated version (YYYY-MM-DD, optionally -preview)`)
  }
  if (apiVersion !== 'v1' && apiVersion.slice(0, 10) < MIN_DATED_API_VERSION) {
    throw new ConfigError(`invalid configuration: ${name}=${apiVersion} has no structured outputs (json_schema); ` +
      `use v1 (the default) or a dated version from ${MIN_DATED_API_VERSION}`)
  }
}
