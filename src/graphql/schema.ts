// The SDL in schema/*.graphql is the schema's one source of truth, read once at start-up.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const SCHEMA_DIR = new URL('../../schema/', import.meta.url)

export function loadSchemaSDL (dir: URL = SCHEMA_DIR): string {
  const path = fileURLToPath(dir) // not dir.pathname: that one is percent-encoded (spaces in the path)
  const files = readdirSync(path).filter(name => name.endsWith('.graphql')).sort()
  if (files.length === 0) throw new Error(`no .graphql files in ${path}`)
  return files.map(name => readFileSync(join(path, name), 'utf8')).join('\n')
}
