// The SDL in schema/*.graphql is the schema's one source of truth, read once at start-up.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export const SCHEMA_DIR = new URL('../../schema/', import.meta.url)

export function loadSchemaSDL (dir: URL = SCHEMA_DIR): string {
  const files = readdirSync(dir).filter(name => name.endsWith('.graphql')).sort()
  if (files.length === 0) throw new Error(`no .graphql files in ${dir.pathname}`)
  return files.map(name => readFileSync(join(dir.pathname, name), 'utf8')).join('\n')
}
