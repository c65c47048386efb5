// The SDL files the server and codegen read: every *.graphql under src/, in an order that does not depend on
// the file system, and nothing else.
import t, { type Test } from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { loadSchemaSDL, schemaFiles } from '../src/graphql/schema.ts'

function tree (t: Test, files: Record<string, string>): URL {
  const root = t.testdir({})
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true })
    writeFileSync(join(root, path), text)
  }
  return pathToFileURL(root + '/')
}

t.test('src/ recursively, sorted by path; other files and folders ignored', async t => {
  // Written out of order, so a directory listing's order would show.
  const root = tree(t, {
    'src/webhooks/webhooks.graphql': 'type W { w: Int }',
    'src/graphql/kernel.graphql': 'enum ErrorCode { X }',
    'src/a.graphql': 'type A { a: Int }',
    'src/graphql/notes.md': 'not SDL',
    'src/history/deep/nested/history.graphql': 'type H { h: Int }',
    'schema/z.graphql': 'type Z { z: Int }', // outside src/: not read (the SDL lived there once)
    'test/fixture.graphql': 'type T { t: Int }'
  })
  t.same(schemaFiles(root).map(file => relative(fileURLToPath(root), file)), [
    'src/a.graphql', 'src/graphql/kernel.graphql', 'src/history/deep/nested/history.graphql', 'src/webhooks/webhooks.graphql'
  ])
  t.equal(loadSchemaSDL(root), ['type A { a: Int }', 'enum ErrorCode { X }',
    'type H { h: Int }', 'type W { w: Int }'].join('\n'))
})

t.test('with no SDL at all it refuses to start', async t => {
  t.equal(loadSchemaSDL(tree(t, { 'src/graphql/kernel.graphql': 'type Query { q: Int }' })), 'type Query { q: Int }')
  t.throws(() => loadSchemaSDL(tree(t, { 'src/app.ts': '' })), /no \.graphql files/)
})
