// GET /graphiql, fully offline: our page and app.js, plus the React and GraphiQL UMD bundles read
// from node_modules through a fixed allow-list. Nothing loads from a CDN, and the page needs no
// inline script, eval or data: font, so it runs under a strict CSP (script-src 'self').
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

export interface GraphiqlOptions {
  /** Where the page sends GraphQL requests; default /graphql. */
  graphqlPath?: string
}

interface Asset {
  body: Buffer
  /** Precomputed, for the 3.5 MB graphiql.min.js (not actually minified) and the CSS. */
  gzip: Buffer | undefined
  type: string
  etag: string
  cacheControl: string
}

const require = createRequire(import.meta.url)
const packageDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`))
const publicDir = path.join(import.meta.dirname, 'public')

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff'
}

// Asset names carry no version, so browsers revalidate (a cheap 304) and pick up a new graphiql
// after an upgrade at once; the fonts are named by content hash and never change.
const REVALIDATE = 'no-cache'
const IMMUTABLE = 'public, max-age=31536000, immutable'

function makeAsset (name: string, body: Buffer, cacheControl = REVALIDATE): Asset {
  const type = TYPES[path.extname(name)] ?? 'application/octet-stream'
  return {
    body,
    gzip: type.startsWith('text/') && body.length > 1024 ? gzipSync(body) : undefined,
    type,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    cacheControl
  }
}

/**
 * graphiql.min.css inlines its fonts as data: URLs, which a CSP without `font-src data:` blocks
 * (font-src falls back to default-src 'self'). Serve each font as an asset of its own instead.
 */
function extractFonts (css: string, assets: Map<string, Asset>): string {
  return css.replace(
    /url\((["']?)data:font\/(woff2?);base64,([A-Za-z0-9+/=]+)\1\)/g,
    (_match, _quote: string, ext: string, base64: string) => {
      const body = Buffer.from(base64, 'base64')
      const name = `fonts/${createHash('sha256').update(body).digest('hex').slice(0, 16)}.${ext}`
      assets.set(name, makeAsset(name, body, IMMUTABLE))
      return `url(${name})` // relative to the stylesheet: /graphiql/assets/fonts/…
    }
  )
}

const escapeAttribute = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;')

function send (request: FastifyRequest, reply: FastifyReply, asset: Asset) {
  reply
    .header('content-type', asset.type)
    .header('cache-control', asset.cacheControl)
    .header('etag', asset.etag)
    .header('x-content-type-options', 'nosniff')
  if (asset.gzip) reply.header('vary', 'accept-encoding')
  if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send()
  if (asset.gzip && /\bgzip\b/.test(request.headers['accept-encoding'] ?? '')) {
    return reply.header('content-encoding', 'gzip').send(asset.gzip)
  }
  return reply.send(asset.body)
}

// The files never change while the process runs: read (and gzip) them once, for every app built.
let loaded: Promise<Map<string, Asset>> | undefined

async function loadAssets (): Promise<Map<string, Asset>> {
  const graphiqlDir = packageDir('graphiql')
  // The allow-list: name under /graphiql/assets/ → file. Nothing else is served.
  const files: Record<string, string> = {
    'app.js': path.join(publicDir, 'app.js'),
    'app.css': path.join(publicDir, 'app.css'),
    'react.production.min.js': path.join(packageDir('react'), 'umd/react.production.min.js'),
    'react-dom.production.min.js': path.join(packageDir('react-dom'), 'umd/react-dom.production.min.js'),
    'graphiql.min.js': path.join(graphiqlDir, 'graphiql.min.js'),
    'graphiql.min.css': path.join(graphiqlDir, 'graphiql.min.css')
  }

  const assets = new Map<string, Asset>()
  await Promise.all(Object.entries(files).map(async ([name, file]) => {
    let body = await readFile(file)
    if (name.startsWith('graphiql.')) {
      // Drop the source map comment: the .map files are not served.
      let text = body.toString('utf8').replace(/\n(\/\/|\/\*)# sourceMappingURL=[^\n]*\s*$/, '\n')
      if (name.endsWith('.css')) text = extractFonts(text, assets)
      body = Buffer.from(text)
    }
    assets.set(name, makeAsset(name, body))
  }))
  return assets
}

export default async function graphiqlPlugin (app: FastifyInstance, opts: GraphiqlOptions) {
  // A failed read is not cached: the next app tries again.
  loaded ??= loadAssets().catch((err: unknown) => { loaded = undefined; throw err })
  const assets = await loaded

  const html = (await readFile(path.join(publicDir, 'index.html'), 'utf8')).replace(
    'data-graphql-path="/graphql"',
    `data-graphql-path="${escapeAttribute(opts.graphqlPath ?? '/graphql')}"`
  )
  const page = makeAsset('index.html', Buffer.from(html))

  app.get('/graphiql', (request, reply) => send(request, reply, page))
  app.get<{ Params: { '*': string } }>('/graphiql/assets/*', (request, reply) => {
    const asset = assets.get(request.params['*'])
    return asset ? send(request, reply, asset) : reply.callNotFound()
  })
}
