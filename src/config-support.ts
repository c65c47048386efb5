// What the areas' configuration modules share: the error they refuse a value with, string enums
// declared the way ajv reports them, comma-separated lists and the https-except-loopback rule.
// src/config.ts composes the areas; it re-exports ConfigError for the process (src/server.ts).
import { Type, type TUnsafe } from '@sinclair/typebox'

/** A refused configuration: the message names the variable; src/server.ts exits with code 1. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * A string from a fixed list, as `{ type: 'string', enum }`: TypeBox's own Union of Literals
 * would make ajv say "must match a schema in anyOf" instead of "must be equal to one of the allowed values".
 */
export function StringEnum<const T extends readonly string[]> (values: T, options: { default?: T[number] } = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options })
}

/** `a, b,c` → `['a', 'b', 'c']` (blank items dropped). */
export function readList (value: string): string[] {
  return value.split(',').map(item => item.trim()).filter(Boolean)
}

/** https, except on loopback (local fakes and sidecars). */
export function requireHttps (name: string, value: string | undefined): void {
  if (value === undefined) return
  const url = URL.parse(value)
  if (url === null || url.hostname === '') throw new ConfigError(`invalid configuration: ${name} is not a valid URL`)
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname)
  if (url.protocol !== 'https:' && !loopback) throw new ConfigError(`invalid configuration: ${name} must be an https:// URL (plain http only on loopback)`)
}
