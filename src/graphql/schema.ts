// The SDL is the schema's one source of truth, read once at start-up: schema/*.graphql, then every
// *.graphql under src/ (the SDL each part keeps beside its code). codegen.ts reads the same files.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The project's root: schema/ and src/ are under it. */
export const PROJECT_ROOT = new URL('../../', import.meta.url)

/**
 * The SDL files, absolute paths in a fixed order: schema/*.graphql, then src/**\/*.graphql, each sorted by
 * path (readdirSync's order depends on the file system). A missing schema/ is skipped.
 */
export function schemaFiles (root: URL = PROJECT_ROOT): string[] {
  const path = fileURLToPath(root) // not root.pathname: that one is percent-encoded (spaces in the path)
  return ['schema', 'src'].flatMap(dir => graphqlFilesUnder(join(path, dir)))
}

export function loadSchemaSDL (root: URL = PROJECT_ROOT): string {
  const files = schemaFiles(root)
  if (files.length === 0) throw new Error(`no .graphql files in schema/ or src/ under ${fileURLToPath(root)}`)
  return files.map(file => readFileSync(file, 'utf8')).join('\n')
}

function graphqlFilesUnder (dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter(name => name.endsWith('.graphql'))
    .map(name => join(dir, name))
    .sort()
}
