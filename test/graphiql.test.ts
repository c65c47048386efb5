// GET /graphiql in a real (Debian) Chromium: the page works offline under a strict CSP, and
// an upload picked in its file bar reaches the server as a GraphQL multipart request.
import type { IncomingMessage, ServerResponse } from 'node:http'
import t from 'tap'
import sharp from 'sharp'
import { chromium } from 'playwright-core'
import type { Page } from 'playwright-core'
import Fastify from 'fastify'
import graphiqlPlugin from '../src/graphiql/plugin.ts'
import { buildTestApp } from './helper.ts'

const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'"
const WAIT_MS = 20_000

t.test('GraphiQL page: offline, strict CSP, multipart upload', { timeout: 90_000 }, async (t) => {
  const app = await buildTestApp(t)

  // The app is already booted (no more Fastify hooks), so watch the HTTP server itself, ahead
  // of Fastify's own listener: record what reached POST /graphql, and give the GraphiQL page the
  // strict CSP unless the app sets its own (headers the app sets win over setHeader's).
  const received: Array<{ type: string, trace?: string, preflight?: string }> = []
  app.server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.startsWith('/graphiql')) res.setHeader('content-security-policy', CSP)
    if (req.method !== 'POST' || !req.url?.startsWith('/graphql')) return
    const h = req.headers
    received.push({ type: String(h['content-type']), trace: h['x-trace'] as string | undefined, preflight: h['graphql-require-preflight'] as string | undefined })
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })

  // A missing Chromium fails here: it is not skipped.
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: WAIT_MS
  })
  t.teardown(() => browser.close())
  const context = await browser.newContext()
  context.setDefaultTimeout(WAIT_MS)

  // Nothing may leave the machine: abort and record any request to a non-loopback host.
  const external: string[] = []
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url())
    if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') return route.continue()
    external.push(url.href)
    return route.abort()
  })

  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`))
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(`console: ${msg.text()}`) })
  page.on('requestfailed', (req) => errors.push(`requestfailed: ${req.url()} ${req.failure()?.errorText}`))
  // Report CSP violations explicitly (an init script is not subject to the page's CSP).
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`)
    })
  })

  const response = await page.goto(`${base}/graphiql`)
  t.equal(response?.status(), 200, 'GET /graphiql is 200')
  t.ok(response?.headers()['content-security-policy']?.includes("script-src 'self'"), 'page is served under a strict CSP')

  await page.locator('.graphiql-container').waitFor({ state: 'visible' })
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor({ state: 'visible' })
  t.match(await editorValue(page, '.graphiql-query-editor .CodeMirror'), /mutation Identify\(\$image: Upload!/, 'the editor shows the sample upload mutation')

  // A header typed in GraphiQL's headers editor must go out on both the multipart and JSON paths.
  await page.getByRole('button', { name: 'Headers' }).click()
  await setEditorValue(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror', '{"x-trace": "t-123"}')

  // The bar offers a picker for $image: pick a real JPEG and run.
  const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a6' } }).jpeg().toBuffer()
  await page.locator('#uploads input[type=file][data-variable="image"]').setInputFiles({ name: 'tractor.jpg', mimeType: 'image/jpeg', buffer: jpeg })
  await page.locator('.graphiql-execute-button').click()
  const result = await waitForResult(page, 'identifyVehicle')
  t.match(result, /"SIMULATED"/, 'result names the simulated backend')
  t.match(result, /"width": 64/, 'result has the image width')
  t.match(result, /"height": 48/, 'result has the image height')
  t.notMatch(result, /"errors"/, 'no GraphQL errors')
  const upload = received.find((r) => r.type.startsWith('multipart/form-data'))
  t.ok(upload, 'the server received a multipart request')
  t.equal(upload?.preflight, '1', 'multipart request carries graphql-require-preflight')
  t.equal(upload?.trace, 't-123', 'multipart request carries the typed header')

  // Without Upload variables the same page sends JSON, still with the typed header.
  await setEditorValue(page, '.graphiql-query-editor .CodeMirror', '{ vision { backend ready } }')
  await page.waitForTimeout(500) // GraphiQL picks up the new operation name after a 100 ms debounce
  await page.locator('.graphiql-execute-button').click()
  t.match(await waitForResult(page, '"ready"'), /"ready": true/, 'a plain query runs')
  const json = received.at(-1)
  t.match(json?.type, /^application\/json/, 'a plain query goes as JSON')
  t.equal(json?.trace, 't-123', 'JSON request carries the typed header')

  t.same(external, [], 'no request left the loopback interface')
  t.same(errors, [], 'no page errors, console errors, CSP violations or failed requests')
})

// GraphiQL's editors are CodeMirror 5 instances, reachable from their wrapper element.
type CodeMirrorElement = HTMLElement & { CodeMirror: { getValue (): string, setValue (v: string): void } }

function editorValue (page: Page, selector: string): Promise<string> {
  return page.locator(selector).first().evaluate((el) => (el as CodeMirrorElement).CodeMirror.getValue())
}

async function setEditorValue (page: Page, selector: string, value: string): Promise<void> {
  await page.locator(selector).first().evaluate((el, v) => { (el as CodeMirrorElement).CodeMirror.setValue(v) }, value)
}

async function waitForResult (page: Page, marker: string): Promise<string> {
  const pane = page.locator('.graphiql-response .CodeMirror')
  await page.waitForFunction((m) => {
    const el = document.querySelector('.graphiql-response .CodeMirror') as CodeMirrorElement | null
    return el?.CodeMirror.getValue().includes(m) ?? false
  }, marker, { timeout: WAIT_MS })
  return pane.evaluate((el) => (el as CodeMirrorElement).CodeMirror.getValue())
}

t.test('GraphiQL assets: allow-list, caching, no inline fonts', async (t) => {
  const app = Fastify()
  await app.register(graphiqlPlugin, { graphqlPath: '/api/graphql' })
  t.teardown(() => app.close())

  const page = await app.inject('/graphiql')
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, 'data-graphql-path="/api/graphql"', 'the page is told the GraphQL path')
  t.notMatch(page.body, /<script(?![^>]*\bsrc=)/, 'no inline script')

  for (const name of ['app.js', 'app.css', 'react.production.min.js', 'react-dom.production.min.js', 'graphiql.min.js', 'graphiql.min.css']) {
    const res = await app.inject(`/graphiql/assets/${name}`)
    t.equal(res.statusCode, 200, `${name} is served`)
    t.equal(res.headers['cache-control'], 'no-cache', `${name} is revalidated`)
    const again = await app.inject({ url: `/graphiql/assets/${name}`, headers: { 'if-none-match': String(res.headers.etag) } })
    t.equal(again.statusCode, 304, `${name} answers 304 to its ETag`)
  }

  const gz = await app.inject({ url: '/graphiql/assets/graphiql.min.js', headers: { 'accept-encoding': 'gzip, br' } })
  t.equal(gz.headers['content-encoding'], 'gzip', 'the big bundle is sent gzipped when accepted')

  const css = (await app.inject('/graphiql/assets/graphiql.min.css')).body
  t.notMatch(css, 'data:font/', 'no data: fonts left in the stylesheet')
  t.notMatch(css, 'sourceMappingURL', 'no source map reference')
  const font = /url\((fonts\/[0-9a-f]{16}\.woff2)\)/.exec(css)?.[1]
  t.ok(font, 'fonts are referenced as assets')
  const fontRes = await app.inject(`/graphiql/assets/${font}`)
  t.equal(fontRes.statusCode, 200, 'an extracted font is served')
  t.equal(fontRes.headers['content-type'], 'font/woff2')
  t.match(fontRes.headers['cache-control'], /immutable/)

  for (const url of ['/graphiql/assets/graphiql.js', '/graphiql/assets/../../package.json', '/graphiql/assets/%2e%2e/plugin.ts', '/graphiql/assets/react/package.json', '/graphiql/assets/']) {
    t.equal((await app.inject(url)).statusCode, 404, `${url} is not served`)
  }
})
