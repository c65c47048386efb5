// The field app as the service serves it: the page, its strict CSP, its assets' caching, the public config it
// signs in with, the first screen's JavaScript budget, and what / says when the app was not built.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import Fastify from 'fastify'
import { loadConfig } from '../src/config.ts'
import webAppPlugin, { WEB_DIST } from '../src/webapp/plugin.ts'
import { buildTestApp } from './helper.ts'

const TENANT = '11111111-2222-3333-4444-555555555555'
const CLIENT = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee'

t.test('GET / serves the app under a CSP with no inline script or style', async t => {
  const app = await buildTestApp(t)
  const page = await app.inject('/')
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.equal(page.headers['cache-control'], 'no-cache', 'the page is revalidated: a new version shows at once')
  const csp = String(page.headers['content-security-policy'])
  t.match(csp, /script-src 'self'(;|$)/)
  t.match(csp, /style-src 'self'(;|$)/)
  t.notMatch(csp, /unsafe-inline|unsafe-eval/, 'nothing inline, no eval')
  t.match(csp, /img-src 'self' blob: data:/, 'thumbnails from here, the photo being prepared from a blob')
  t.match(csp, /connect-src 'self'(;|$)/)
  t.match(csp, /frame-src 'none'/)
  t.notMatch(page.body, /<script>|<style>| style=| on\w+=/, 'no inline script, style or handler in the page')

  const script = /src="(\/assets\/app-[\w-]+\.js)"/.exec(page.body)?.[1]
  const style = /href="(\/assets\/style-[\w-]+\.css)"/.exec(page.body)?.[1]
  t.ok(script && style, 'the page names its hashed script and stylesheet')
  const asset = await app.inject(script as string)
  t.equal(asset.statusCode, 200)
  t.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable', 'hashed assets are cached for good')
  t.match(asset.headers['content-type'], /javascript/)
  t.equal((await app.inject(style as string)).statusCode, 200)

  const worker = await app.inject('/sw.js')
  t.equal(worker.statusCode, 200)
  t.equal(worker.headers['cache-control'], 'no-cache', 'the service worker is checked every time')
  t.notMatch(worker.body, /graphql/, 'the worker caches the shell, never the API')
  const manifest = (await app.inject('/manifest.webmanifest')).json()
  t.match(manifest, { start_url: '/', display: 'standalone', icons: [{ sizes: '192x192' }, { sizes: '512x512' }] }, 'installable')
  t.equal((await app.inject('/icons/icon-512.png')).headers['content-type'], 'image/png')
  t.equal((await app.inject('/no-such-file.js')).statusCode, 404)
  t.equal((await app.inject('/graphiql')).statusCode, 200, 'GraphiQL stays at /graphiql')
})

t.test('the first screen\'s JavaScript is under 150 KB gzipped (MSAL is loaded only for an Entra sign-in)', async t => {
  const build = JSON.parse(readFileSync(join(WEB_DIST, 'build.json'), 'utf8')) as { firstScreenJsGzip: number, shell: string[] }
  t.comment(`first screen: ${(build.firstScreenJsGzip / 1024).toFixed(1)} KB of JavaScript gzipped`)
  t.ok(build.firstScreenJsGzip > 1000 && build.firstScreenJsGzip < 150 * 1024, `${build.firstScreenJsGzip} bytes`)
  t.ok(build.shell.includes('/'), 'the page is part of the cached shell')
})

t.test('/app-config.json: how to sign in, nothing secret', async t => {
  const anonymous = await buildTestApp(t)
  t.strictSame((await anonymous.inject('/app-config.json')).json(), { auth: { anonymous: true, apiKey: false, entra: null } })

  const keys = await buildTestApp(t, { env: { AUTH_MODE: 'apikey', API_KEY_HASHES: 'a'.repeat(64) } })
  t.strictSame((await keys.inject('/app-config.json')).json(), { auth: { anonymous: false, apiKey: true, entra: null } })
  t.equal((await keys.inject('/')).statusCode, 200, 'the page itself needs no credentials')

  const entra = await buildTestApp(t, {
    env: {
      AUTH_MODE: 'entra,apikey',
      API_KEY_HASHES: 'a'.repeat(64),
      ENTRA_TENANT_ID: TENANT,
      ENTRA_AUDIENCE: 'api://agrivision',
      WEB_APP_ENTRA_CLIENT_ID: CLIENT,
      WEB_APP_ENTRA_SCOPES: 'api://agrivision/Identify, api://agrivision/ReadHistory'
    }
  })
  t.strictSame((await entra.inject('/app-config.json')).json(), {
    auth: {
      anonymous: false,
      apiKey: true,
      entra: { clientId: CLIENT, authority: `https://login.microsoftonline.com/${TENANT}`, scopes: ['api://agrivision/Identify', 'api://agrivision/ReadHistory'] }
    }
  })
  const csp = String((await entra.inject('/')).headers['content-security-policy'])
  t.match(csp, /connect-src 'self' https:\/\/login\.microsoftonline\.com;/, 'MSAL may reach Entra')
  t.match(csp, /frame-src https:\/\/login\.microsoftonline\.com;/, 'and renew tokens in a hidden frame')
})

t.test('the Entra sign-in settings are checked at start-up', async t => {
  const refused = (env: Record<string, string>, pattern: RegExp) => t.throws(() => loadConfig(env), pattern, JSON.stringify(env))
  refused({ WEB_APP_ENTRA_SCOPES: 'api://x/Identify' }, /WEB_APP_ENTRA_SCOPES needs WEB_APP_ENTRA_CLIENT_ID/)
  refused({ WEB_APP_ENTRA_CLIENT_ID: CLIENT }, /needs WEB_APP_ENTRA_SCOPES/)
  refused({ WEB_APP_ENTRA_CLIENT_ID: CLIENT, WEB_APP_ENTRA_SCOPES: 'api://x/Identify' }, /needs ENTRA_TENANT_ID or WEB_APP_ENTRA_AUTHORITY/)
  refused({ WEB_APP_ENTRA_CLIENT_ID: 'not-a-guid', WEB_APP_ENTRA_SCOPES: 'api://x/Identify' }, /WEB_APP_ENTRA_CLIENT_ID/)
  refused({ WEB_APP_ENTRA_CLIENT_ID: CLIENT, WEB_APP_ENTRA_SCOPES: 'x', WEB_APP_ENTRA_AUTHORITY: 'http://login.example.com/t' }, /must be an https:\/\/ URL/)
  t.match(loadConfig({ WEB_APP_ENTRA_CLIENT_ID: CLIENT, WEB_APP_ENTRA_SCOPES: 'x', WEB_APP_ENTRA_AUTHORITY: 'https://login.microsoftonline.us/t/' }).webApp.entra,
    { authority: 'https://login.microsoftonline.us/t' }, 'another cloud')
})

t.test('WEB_APP=false: no app at /', async t => {
  const app = await buildTestApp(t, { env: { WEB_APP: 'false' } })
  t.equal((await app.inject('/')).statusCode, 404)
  t.equal((await app.inject('/app-config.json')).statusCode, 404)
})

t.test('not built: / says how to build it, and the service runs', async t => {
  const empty = mkdtempSync(join(tmpdir(), 'agrivision-no-web-'))
  t.teardown(() => rmSync(empty, { recursive: true, force: true }))
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(webAppPlugin, { webApp: { enabled: true, entra: null }, auth: { modes: [], entra: null, apiKeys: [] }, dist: empty })
  const res = await app.inject('/')
  t.equal(res.statusCode, 503)
  t.match(res.body, /npm run build:web/)
  t.equal((await app.inject('/app-config.json')).statusCode, 200)
})
