// GET /graphiql in a real (Debian) Chromium: the page works offline under a strict CSP, and
// an upload picked in its file bar reaches the server as a GraphQL multipart request.
import t from 'tap'
import sharp from 'sharp'
import { chromium } from 'playwright-core'
import type { Browser, Page } from 'playwright-core'
import Fastify from 'fastify'
import multipart from '@fastify/multipart'
import { buildSchema, graphql } from 'graphql'
import type { FastifyInstance } from 'fastify'
import graphiqlPlugin from '../src/graphiql/plugin.ts'

const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'"
const WAIT_MS = 20_000

// TEMPORARY stand-in for the real app until test/helper.ts exists.
async function buildTestApp (): Promise<FastifyInstance> {
  const schema = buildSchema(`
    scalar Upload
    type Image { sha256: String mimeType: String bytes: Int width: Int height: Int }
    type Usage { promptTokens: Int completionTokens: Int totalTokens: Int }
    type Identification { id: ID answer: String language: String backend: String model: String image: Image usage: Usage durationMs: Int createdAt: String }
    type Vision { backend: String deployment: String ready: Boolean }
    type Query { vision: Vision }
    type Mutation { identifyVehicle(image: Upload!, instructions: String, language: String): Identification }
  `)
  const rootValue = {
    vision: () => ({ backend: 'SIMULATED', deployment: null, ready: true }),
    identifyVehicle: async ({ image, language }: { image: Buffer, language?: string }) => {
      const m = await sharp(image).metadata()
      return { id: '1', answer: '[SIMULATED]', language: language ?? 'en', backend: 'SIMULATED', model: 'simulated', image: { sha256: 'x', mimeType: `image/${m.format}`, bytes: image.length, width: m.width, height: m.height }, usage: null, durationMs: 1, createdAt: new Date().toISOString() }
    }
  }
  const app = Fastify()
  await app.register(multipart)
  await app.register(graphiqlPlugin)
  app.post('/graphql', async (req) => {
    let body = req.body as { query: string, variables?: Record<string, unknown>, operationName?: string }
    if (req.isMultipart()) {
      const fields: Record<string, string> = {}
      const files: Record<string, Buffer> = {}
      for await (const part of req.parts()) {
        if (part.type === 'field') fields[part.fieldname] = String(part.value)
        else files[part.fieldname] = await part.toBuffer()
      }
      body = JSON.parse(fields.operations ?? '{}')
      const map = JSON.parse(fields.map ?? '{}') as Record<string, string[]>
      for (const [key, paths] of Object.entries(map)) {
        for (const p of paths) body.variables![p.split('.')[1]!] = files[key]
      }
    }
    return graphql({ schema, rootValue, source: body.query, variableValues: body.variables, operationName: body.operationName })
  })
  return app
}

let browser: Browser | undefined
t.teardown(async () => { await browser?.close() })

t.test('GraphiQL page: offline, strict CSP, multipart upload', { timeout: 90_000 }, async (t) => {
  const app = await buildTestApp()
  t.teardown(() => app.close())

  // What reached POST /graphql: content type, and the headers the page must send.
  const received: Array<{ type: string, trace?: string, preflight?: string }> = []
  app.addHook('onRequest', async (req) => {
    if (req.method !== 'POST' || !req.url.startsWith('/graphql')) return
    const h = req.headers
    received.push({ type: String(h['content-type']), trace: h['x-trace'] as string | undefined, preflight: h['graphql-require-preflight'] as string | undefined })
  })
  // Prove the page under the strict CSP, unless the app already sets one.
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.url.startsWith('/graphiql') && !reply.hasHeader('content-security-policy')) reply.header('content-security-policy', CSP)
    return payload
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })

  // A missing Chromium fails here: it is not skipped.
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: WAIT_MS
  })
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
  t.match(await editorValue(page, '.graphiql-query-editor'), /mutation Identify\(\$image: Upload!/, 'the editor shows the sample upload mutation')

  // A header typed in GraphiQL's headers editor must go out on both the multipart and JSON paths.
  await page.getByRole('button', { name: 'Headers' }).click()
  await setEditorValue(page, '.graphiql-editor-tool .CodeMirror-wrap:visible', '{"x-trace": "t-123"}')

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
  return page.locator(`${selector} .CodeMirror`).first().evaluate((el) => (el as CodeMirrorElement).CodeMirror.getValue())
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
