// The field app at / (built into web/dist by `npm run build:web`, which npm ci runs through `prepare`), and
// GET /app-config.json, what the page needs to know to sign in. Its own content security policy: scripts and
// styles only from here (no inline), images from here or the photo being prepared (blob:), connections to this
// origin (and Entra's sign-in host when configured), the service worker from here.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import fastifyStatic from '@fastify/static'
import type { CallersConfig } from '../callers/config.ts'
import type { WebAppConfig } from './config.ts'

export const WEB_DIST = join(import.meta.dirname, '..', '..', 'web', 'dist')

export interface WebAppOptions {
  webApp: WebAppConfig
  auth: CallersConfig
  /** Where the built app is (tests point elsewhere). */
  dist?: string
}

export function webAppPolicy (webApp: WebAppConfig): string {
  const entra = webApp.entra === null ? '' : ` ${new URL(webApp.entra.authority).origin}`
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    `connect-src 'self'${entra}`,
    "worker-src 'self'",
    "manifest-src 'self'",
    `frame-src${entra || " 'none'"}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'"
  ].join('; ')
}

export default async function webAppPlugin (app: FastifyInstance, { webApp, auth, dist = WEB_DIST }: WebAppOptions): Promise<void> {
  const policy = webAppPolicy(webApp)
  // After the global security headers (helmet's document policy): this app's stricter one replaces it.
  app.addHook('onRequest', async (_request, reply) => { reply.header('content-security-policy', policy) })

  const publicConfig = {
    auth: {
      anonymous: auth.modes.length === 0,
      apiKey: auth.modes.includes('apikey'),
      entra: auth.modes.includes('entra') ? webApp.entra : null
    }
  }
  app.get('/app-config.json', async (_request, reply) => {
    reply.header('cache-control', 'no-cache')
    return publicConfig
  })

  if (!existsSync(join(dist, 'index.html'))) {
    app.log.warn({ dist }, 'the field app is not built: run `npm run build:web` (npm ci does it); / answers 503 until then')
    app.get('/', async (_request, reply) => await reply.code(503).type('text/plain; charset=utf-8')
      .send('The field app is not built: run `npm run build:web`. GraphiQL is at /graphiql.\n'))
    return
  }
  await app.register(fastifyStatic, {
    root: dist,
    prefix: '/',
    wildcard: false, // a route per file, found once at start-up: nothing else under / is looked up on disk
    index: ['index.html'],
    serveDotFiles: false,
    allowedPath: pathName => pathName !== '/build.json', // the build's own record (sizes, shell list), for tests and the bench
    cacheControl: false,
    setHeaders (reply, path) {
      // Hashed names never change; the page, worker and manifest are checked every time (a new version shows at once).
      reply.header('cache-control', path.startsWith(join(dist, 'assets')) ? 'public, max-age=31536000, immutable' : 'no-cache')
    }
  })
}
