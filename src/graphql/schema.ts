// The SDL is the schema's one source of truth: every *.graphql under src/, each beside the code of the part
// it belongs to. codegen.ts reads the same files; the graphql plugin checks at start-up that each one is in a
// part it composed; tests and the bench read them all at once.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The project's root: src/ is under it. */
export const PROJECT_ROOT = new URL('../../', import.meta.url)

/** The SDL files, src/**\/*.graphql as absolute paths sorted by path (readdirSync's order depends on the file system). */
export function schemaFiles (root: URL = PROJECT_ROOT): string[] {
  const path = fileURLToPath(root) // not root.pathname: that one is percent-encoded (spaces in the path)
  return graphqlFilesUnder(join(path, 'src'))
}

export function loadSchemaSDL (root: URL = PROJECT_ROOT): string {
  const files = schemaFiles(root)
  if (files.length === 0) throw new Error(`no .graphql files in src/ under ${fileURLToPath(root)}`)
  return files.map(file => readFileSync(file, 'utf8')).join('\n')
}

function graphqlFilesUnder (dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter(name => name.endsWith('.graphql'))
    .map(name => join(dir, name))
    .sort()
}
